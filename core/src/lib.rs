//! The inference core of the fashion tagger: what `tag` and the training crate share, and
//! nothing else (no command line, no camera, no HTTP), so training does not compile the station.
//!
//! - [`preprocess`]: the single preprocessing path (decode, ROI, fit, normalise).
//! - [`metadata`]: what a model file says about itself (labels, normalisation, version).
//! - [`backend`]: tract (default) and onnxruntime (feature `ort`).
//! - [`format`]: ONNX and NNEF model files (NNEF needs no ONNX parser).
//! - [`model`]: loading a model file or bytes into a backend.
//! - [`classify`]: softmax, top-k, needs-review threshold, the `none` class.
//! - [`limits`]: bounded reads of untrusted files and tensors.
//! - [`collection`]: a station's collected frames and their labels on disk.
//! - [`fsio`]: the one atomic write (snapshots, model cards, checkpoints).
//! - [`machine`]: the host description written next to measured figures.

pub mod backend;
pub mod classify;
pub mod collection;
pub mod format;
pub mod fsio;
pub mod limits;
pub mod machine;
pub mod metadata;
pub mod model;
mod nnef_ops;
pub mod preprocess;

pub use tract_nnef;
/// Re-exported so the training crate writes ONNX with the very tract version `tag` runs.
#[cfg(feature = "onnx")]
pub use tract_onnx;
