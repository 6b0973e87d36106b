//! Fitting beside the CNN training loop (train.rs): heads on fixed backbone features.

pub mod linear;
pub mod probe;
