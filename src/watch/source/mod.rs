//! Where frames come from. Each source yields encoded images (JPEG from cameras and streams, any
//! image file from a folder) or raw YUYV (V4L2); decoding happens on the inference side so a
//! corrupt frame is skipped and counted there, like any other bad input.

pub mod folder;
pub mod mjpeg;
pub mod reconnect;
pub mod v4l2;

pub use folder::FolderSource;
pub use reconnect::{Backoff, Reconnecting};

use crate::watch::config::SourceSection;
use anyhow::{bail, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub enum FrameData {
    Encoded(Vec<u8>),
    /// Raw camera pixels, converted to RGB only where they are used (the ROI, the overlay).
    Yuyv(super::yuyv::YuyvFrame),
    /// A frame that arrived but cannot be used (an unreadable file, a short camera buffer):
    /// counted as corrupt and skipped with this reason, the stream goes on.
    Unreadable(String),
}

pub trait FrameSource: Send {
    /// The next frame; `Ok(None)` when a finite source (a folder) is done. Live sources retry a
    /// lost camera themselves and only return an error when retrying makes no sense.
    fn next_frame(&mut self) -> Result<Option<FrameData>>;
    /// True for cameras and streams (frames are dropped when inference lags), false for a
    /// folder replayed as fast as inference goes (nothing dropped).
    fn is_live(&self) -> bool;
    /// Where the last frame came from, when that helps an operator (a replayed file).
    fn origin(&self) -> Option<String> {
        None
    }
    /// Times a lost camera or stream was reopened.
    fn reconnects(&self) -> u64 {
        0
    }
}

/// Opens the source named by `uri`: `http://...` (MJPEG), `/dev/video*` (V4L2) or a folder.
pub fn open(uri: &str, cfg: &SourceSection, stop: Arc<AtomicBool>) -> Result<Box<dyn FrameSource>> {
    if uri.starts_with("http://") {
        return Ok(Box::new(mjpeg::MjpegSource::connect(
            uri,
            cfg.reconnect_max_s,
            stop,
        )?));
    }
    if uri.starts_with("https://") {
        bail!("source {uri}: https is not supported; cameras on the local network serve MJPEG over plain http://");
    }
    let path = Path::new(uri);
    if uri.starts_with("/dev/video") || uri.starts_with("v4l2:") {
        let dev = uri.strip_prefix("v4l2:").unwrap_or(uri);
        return v4l2::open(Path::new(dev), cfg, stop);
    }
    if path.is_dir() {
        return Ok(Box::new(
            FolderSource::new(path, cfg.fps, cfg.repeat)?.stopped_by(stop),
        ));
    }
    if path.exists() {
        bail!("source {uri} is a file; give a folder of frames, an http:// MJPEG stream or a /dev/video* camera");
    }
    bail!("source {uri} does not exist; give a folder of frames, an http://host:port/path MJPEG stream or a /dev/video* camera")
}

/// Sleeps up to `d`, returning early (false) when `stop` is set.
pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
    !stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sources_are_explained() {
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = SourceSection::default();
        let e = open("/no/such/folder", &cfg, stop.clone()).err().unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path().to_str().unwrap(), &cfg, stop.clone())
            .err()
            .unwrap();
        assert!(e.to_string().contains("holds no images"), "{e}");
        let e = open("https://cam/stream", &cfg, stop).err().unwrap();
        assert!(e.to_string().contains("https"), "{e}");
    }
}
