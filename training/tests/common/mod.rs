//! Shared by the tests that need the pretrained backbone.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pretrained weights (training/scripts/pretrained.sh), or None with a SKIPPED line. CI
/// sets TAG_REQUIRE_PRETRAINED=1, so there a missing file fails instead.
pub fn pretrained_path() -> Option<PathBuf> {
    use training::backbone::weights;
    let path = root().join(weights::default_path());
    let path = if path.is_file() {
        path
    } else {
        weights::default_path()
    };
    if !path.is_file() {
        assert!(
            std::env::var_os("TAG_REQUIRE_PRETRAINED").is_none(),
            "{} missing: run training/scripts/pretrained.sh",
            path.display()
        );
        eprintln!("SKIPPED: no pretrained weights at {}", path.display());
        return None;
    }
    Some(path)
}
