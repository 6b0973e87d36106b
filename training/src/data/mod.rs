//! Data sets beside the catalogue: real photos and their sender split.

pub mod real_photos;
