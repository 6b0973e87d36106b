//! Data: the catalogue (`dataset`), its duplicate-aware split, the decode-once image cache,
//! the photos of other kinds used as negatives, the attribute heads' vocabularies, and the real
//! phone photos with their sender split, and a station's labelled photos.

pub mod cache;
pub mod dataset;
pub mod heads;
pub mod negatives;
pub mod real_photos;
pub mod split;
pub mod station_photos;
