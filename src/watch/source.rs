//! Where frames come from. Each source yields encoded images (JPEG from cameras and streams, any
//! image file from a folder) or raw YUYV (V4L2); decoding happens on the inference side so a
//! corrupt frame is skipped and counted there, like any other bad input.

use crate::config::SourceSection;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
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
}

/// Opens the source named by `uri`: `http://...` (MJPEG), `/dev/video*` (V4L2) or a folder.
pub fn open(uri: &str, cfg: &SourceSection, stop: Arc<AtomicBool>) -> Result<Box<dyn FrameSource>> {
    if uri.starts_with("http://") {
        return Ok(Box::new(super::mjpeg::MjpegSource::connect(
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
        return super::v4l2::open(Path::new(dev), cfg, stop);
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

/// Frames replayed from a folder in file-name order: a recorded shift, or test input.
pub struct FolderSource {
    files: Vec<PathBuf>,
    next: usize,
    interval: Option<Duration>,
    last: Option<std::time::Instant>,
    repeat: bool,
    /// Ends a paced wait early (a slow `--fps` must not delay Ctrl-C).
    stop: Arc<AtomicBool>,
}

impl FolderSource {
    pub fn new(dir: &Path, fps: Option<f32>, repeat: bool) -> Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot list source folder {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && crate::inputs::is_image_path(p))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "source folder {} holds no images (.jpg .jpeg .png .webp .bmp)",
                dir.display()
            );
        }
        Ok(Self {
            files,
            next: 0,
            interval: fps.map(|f| Duration::from_secs_f64(1.0 / f as f64)),
            last: None,
            repeat,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Waits between paced frames end when `stop` is set.
    pub fn stopped_by(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<FrameData>> {
        if self.next == self.files.len() {
            if !self.repeat {
                return Ok(None);
            }
            self.next = 0;
        }
        if let (Some(interval), Some(last)) = (self.interval, self.last) {
            if let Some(wait) = interval.checked_sub(last.elapsed()) {
                if !sleep_unless_stopped(wait, &self.stop) {
                    return Ok(None);
                }
            }
        }
        self.last = Some(std::time::Instant::now());
        let path = &self.files[self.next];
        self.next += 1;
        // An unreadable file is a bad frame, not the end of the replay.
        Ok(Some(
            match crate::limits::read_file(path, crate::limits::MAX_IMAGE_BYTES) {
                Ok(bytes) => FrameData::Encoded(bytes),
                Err(e) => FrameData::Unreadable(e),
            },
        ))
    }

    fn is_live(&self) -> bool {
        self.interval.is_some()
    }

    fn origin(&self) -> Option<String> {
        let i = self.next.checked_sub(1)?;
        self.files.get(i).map(|p| p.display().to_string())
    }
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

/// A live connection (stream, camera) that is reopened with back-off when it is lost: the one
/// retry loop that the MJPEG and V4L2 sources share.
pub struct Reconnecting<S> {
    /// Named in log lines: the URL or device path.
    pub what: String,
    pub conn: Option<S>,
    backoff: Backoff,
    pub stop: Arc<AtomicBool>,
}

impl<S> Reconnecting<S> {
    pub fn new(what: String, conn: S, reconnect_max_s: f32, stop: Arc<AtomicBool>) -> Self {
        Self {
            what,
            conn: Some(conn),
            backoff: Backoff::new(reconnect_max_s),
            stop,
        }
    }

    /// Reads one item with `read`; on failure logs, waits, reopens with `open` and tries again.
    /// `Ok(None)` once `stop` is set while waiting.
    pub fn next<T>(
        &mut self,
        mut read: impl FnMut(&mut S) -> Result<T>,
        mut open: impl FnMut() -> Result<S>,
    ) -> Result<Option<T>> {
        loop {
            if let Some(conn) = &mut self.conn {
                match read(conn) {
                    Ok(v) => {
                        self.backoff.reset();
                        return Ok(Some(v));
                    }
                    Err(_) if self.stop.load(Ordering::Relaxed) => return Ok(None),
                    Err(e) => {
                        eprintln!("tag watch: {} lost: {e:#}", self.what);
                        self.conn = None;
                    }
                }
            }
            let delay = self.backoff.next_delay();
            eprintln!(
                "tag watch: reconnecting to {} in {:.1} s",
                self.what,
                delay.as_secs_f32()
            );
            if !sleep_unless_stopped(delay, &self.stop) {
                return Ok(None);
            }
            match open() {
                Ok(c) => {
                    eprintln!("tag watch: reconnected to {}", self.what);
                    self.conn = Some(c);
                }
                Err(e) => eprintln!("tag watch: {e:#}"),
            }
        }
    }
}

/// Exponential back-off for reconnecting: 0.5 s, 1 s, 2 s, ... up to `max`.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max_s: f32) -> Self {
        let max = Duration::from_secs_f32(max_s);
        Self {
            next: Duration::from_millis(500).min(max),
            max,
        }
    }
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(500).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(3.0);
        let d: Vec<f32> = (0..5).map(|_| b.next_delay().as_secs_f32()).collect();
        assert_eq!(d, vec![0.5, 1.0, 2.0, 3.0, 3.0]);
        b.reset();
        assert_eq!(b.next_delay().as_secs_f32(), 0.5);
    }

    #[test]
    fn folder_replays_in_name_order_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.jpg", "a.png", "notes.txt", "c.bmp"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let mut src = FolderSource::new(dir.path(), None, true).unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            match src.next_frame().unwrap() {
                Some(FrameData::Encoded(b)) => got.push(String::from_utf8(b).unwrap()),
                _ => panic!("expected a frame"),
            }
        }
        assert_eq!(got, ["a.png", "b.jpg", "c.bmp", "a.png"]);
        assert!(!src.is_live());
        let mut once = FolderSource::new(dir.path(), Some(1000.0), false).unwrap();
        assert!(once.is_live());
        for _ in 0..3 {
            assert!(once.next_frame().unwrap().is_some());
        }
        assert!(once.next_frame().unwrap().is_none());
    }

    #[test]
    fn unreadable_file_is_a_bad_frame_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.jpg", "b.jpg"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let mut src = FolderSource::new(dir.path(), None, false).unwrap();
        // A file gone between listing and reading is a bad frame naming the file, not the end.
        std::fs::remove_file(dir.path().join("a.jpg")).unwrap();
        match src.next_frame().unwrap() {
            Some(FrameData::Unreadable(why)) => {
                assert!(
                    why.contains("a.jpg") && why.contains("cannot read"),
                    "{why}"
                )
            }
            _ => panic!("expected an unreadable frame"),
        }
        assert!(matches!(
            src.next_frame().unwrap(),
            Some(FrameData::Encoded(_))
        ));
        assert!(src.next_frame().unwrap().is_none());
    }

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
