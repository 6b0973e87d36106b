//! Frames replayed from a folder: a recorded shift, or test input.

use super::{sleep_unless_stopped, FrameData, FrameSource};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
