//! Training side of the fashion tagger, by stage: `data` (catalogue, split, cache, negatives,
//! real photos) -> `scene` (station frames rendered from catalogue photos) -> `model` and
//! `backbone` (the burn networks) -> `fit` (training loops) -> `onnx` (export, int8,
//! temperature) -> `eval` (scoring, through the runtime where a model ships) -> `report` (cards,
//! plots, docs/REPORT.md). `commands` (in the binary) parses flags and calls these.
//!
//! Preprocessing is not here on purpose: it lives in the runtime crate (`tagger_core::preprocess`) so
//! training and `tag` cannot drift apart.

pub mod backbone;
pub mod data;
pub mod error;
pub mod eval;
pub mod fit;
pub mod model;
pub mod onnx;
pub mod report;
pub mod scene;
pub mod util;
