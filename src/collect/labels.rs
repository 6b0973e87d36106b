//! `labels.csv` in a collection: the format lives in tagger-core (`collection`), which the
//! training crate reads too; the station writes decisions stamped with its clock.

pub use tagger_core::collection::{Decision, Labels, LABELS as FILE};
