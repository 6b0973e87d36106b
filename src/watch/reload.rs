//! Swapping the model of a running station. When the model file changes, or on SIGHUP, the new
//! file is loaded and probed on this thread, beside the model that keeps running, and handed to
//! the inference loop, which swaps it in between two frames. A file that does not load or probe
//! is refused with one log line naming it, and the running model carries on.
//!
//! The file is polled (size and modification time, every [`POLL`]) rather than watched with
//! inotify: polling works on every file system, sees `cp` over the file as well as an atomic
//! rename, and a change is only acted on once the file stayed the same for one more poll, so a
//! copy still being written is never loaded.

use crate::backend::BackendKind;
use crate::model::Model;
use crate::preprocess::IMAGE_LEN;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const POLL: Duration = Duration::from_millis(500);

/// Which model a station runs, as the page, `/metrics` and verdict messages name it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ModelId {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// When this model started running (RFC 3339, UTC).
    pub since: String,
    /// Models swapped in since the station started.
    pub swaps: u64,
}

impl ModelId {
    pub fn new(model: &Model, sha256: String) -> Self {
        Self {
            name: model.info.name.clone(),
            version: model.info.version.clone(),
            sha256,
            since: crate::publish::timestamp(),
            swaps: 0,
        }
    }
}

/// A model loaded and probed, ready to swap in.
pub struct Loaded {
    pub model: Model,
    pub sha256: String,
}

/// SHA-256 of a model file's bytes, hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Watches `path` (the running model, `running` its hash) until `stop`; `hup` is set by SIGHUP
/// and asks for a reload even when the file looks unchanged.
pub fn spawn(
    path: PathBuf,
    kind: BackendKind,
    threads: usize,
    running: String,
    hup: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Receiver<Loaded> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("model-reload".into())
        .spawn(move || watch(&path, kind, threads, running, &hup, &stop, &tx))
        .expect("spawn the model reload thread");
    rx
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn watch(
    path: &Path,
    kind: BackendKind,
    threads: usize,
    mut running: String,
    hup: &AtomicBool,
    stop: &AtomicBool,
    tx: &Sender<Loaded>,
) {
    let mut seen = stamp(path);
    let mut pending = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let now = stamp(path);
        let asked = hup.swap(false, Ordering::Relaxed);
        let settled = now.is_some() && pending == Some(now);
        pending = (now != seen).then_some(now);
        if !(asked || settled) {
            continue;
        }
        seen = now;
        pending = None;
        match load(path, kind, threads) {
            Ok(l) if l.sha256 == running => {}
            Ok(l) => {
                running = l.sha256.clone();
                if tx.send(l).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!(
                "tag watch: model {} not swapped in: {e:#}; the running model ({}) carries on",
                path.display(),
                &running[..12.min(running.len())]
            ),
        }
    }
}

/// Loads the file and runs it once on a grey image: it must give one finite score per label.
fn load(path: &Path, kind: BackendKind, threads: usize) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path)?;
    let sha256 = sha256(&bytes);
    let model = Model::from_bytes(&bytes, path.display().to_string(), kind, threads)?;
    let outputs = model.outputs(&vec![0.0; IMAGE_LEN], 1)?;
    let scores = outputs.first().map_or(0, Vec::len);
    anyhow::ensure!(
        scores == model.info.labels.len() && outputs.iter().flatten().all(|x| x.is_finite()),
        "the probe gave {scores} scores for {} labels, or a value that is not finite",
        model.info.labels.len()
    );
    if let Some(w) = crate::advice::slow_form(&model) {
        eprintln!("tag watch: warning: {w}");
    }
    Ok(Loaded { model, sha256 })
}
