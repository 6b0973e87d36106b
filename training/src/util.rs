//! Small helpers shared by the training commands: atomic writes, hashing, progress bars.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::path::Path;

/// [`tagger_core::fsio::write_atomic`] (the one atomic write `tag` uses too), with the path in
/// the error: a crash or kill never leaves a half-written checkpoint, model or report behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    tagger_core::fsio::write_atomic(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Pretty JSON, written atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal (logs stay clean).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// This command line as `cargo run` reruns it, for the summaries and cards it writes.
pub fn reproduce() -> String {
    std::iter::once("cargo run --release -p training --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}
