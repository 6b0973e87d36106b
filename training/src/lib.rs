//! Training side of the fashion tagger: data loading, split, decode-once cache, the burn CNNs,
//! the training loop, evaluation, plots, ONNX export and int8 quantization.
//!
//! Preprocessing is not here on purpose: it lives in the runtime crate (`tagger_core::preprocess`) so
//! training and `tag` cannot drift apart.

pub mod augment;
pub mod backbone;
pub mod backdrop;
pub mod cache;
pub mod card;
pub mod compare;
pub mod cutout;
pub mod data;
pub mod dataset;
pub mod distill;
pub mod ema;
pub mod error;
pub mod eval;
pub mod evaluate;
pub mod export;
pub mod fit;
pub mod frames;
pub mod heads;
pub mod heads_eval;
pub mod metrics;
pub mod model;
pub mod negatives;
pub mod onnx;
pub mod plots;
pub mod quantize;
pub mod report;
pub mod split;
pub mod station;
pub mod station_eval;
pub mod temperature;
pub mod train;
pub mod util;
