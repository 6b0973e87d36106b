//! Scoring exported models through the runtime on data beyond the catalogue split.

pub mod real;
