//! Fitting beside the CNN training loop (train.rs): heads on fixed backbone features and
//! fine-tuning the pretrained backbone.

pub mod linear;
pub mod lite;
pub mod probe;
