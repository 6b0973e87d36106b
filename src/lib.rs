//! The fashion tagger runtime: load an exported ONNX classifier, prepare images exactly as in
//! training, and turn logits into labelled verdicts.
//!
//! - [`preprocess`]: the single preprocessing path (shared with the training crate).
//! - [`metadata`]: what a model file says about itself (labels, normalisation, version).
//! - [`backend`]: tract (default) and onnxruntime (feature `ort`).
//! - [`model`]: loading a model, embedded default included.
//! - [`classify`]: softmax, top-k, needs-review threshold.
//! - [`watch`], [`config`], [`overlay`]: camera stations (`tag watch`), their TOML settings and
//!   the verdict drawn onto frames.

pub mod backend;
pub mod bench;
pub mod classify;
pub mod config;
pub mod inputs;
pub mod limits;
pub mod metadata;
pub mod model;
pub mod output;
pub mod overlay;
pub mod preprocess;
pub mod tagging;
pub mod watch;

/// Re-exported so the training crate writes ONNX with the very tract version `tag` runs.
pub use tract_onnx;
