//! The `tag` application: the command line's libraries on top of the inference core
//! ([`tagger_core`], re-exported here under the same module names).
//!
//! - [`builtin`]: the model compiled into `tag`; [`convert`]: a model's NNEF form.
//! - [`inputs`], [`tagging`], [`output`]: files, folders and stdin tagged in batches, written as
//!   human text, JSON lines or CSV.
//! - [`advice`]: a warning when a model's form is the slow one on its runtime.
//! - [`bench`]: `tag bench`; [`measure`]: percentiles and memory, for it and the station.
//! - [`error`]: what went wrong, by kind (the `tag` binary maps kinds to exit codes).
//! - [`publish`]: verdicts to an MQTT broker through a durable outbox.
//! - [`collect`]: frames worth a person's look, kept by a station; [`review`]: labelling them
//!   in a browser.
//! - [`watch`]: camera stations (`tag watch`), with their TOML settings (`watch::config`) and
//!   the verdict drawn onto frames (`watch::overlay`).

pub use tagger_core::{
    backend, classify, format, fsio, limits, machine, metadata, model, preprocess,
};

pub mod advice;
pub mod bench;
pub mod builtin;
pub mod collect;
#[cfg(feature = "onnx")]
pub mod convert;
pub mod error;
pub mod inputs;
pub mod measure;
pub mod output;
pub mod publish;
pub mod review;
pub mod tagging;
pub mod watch;

/// Re-exported for benchmarks and examples that build tract graphs themselves.
#[cfg(feature = "onnx")]
pub use tagger_core::tract_onnx;
