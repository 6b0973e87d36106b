//! The input policy, in one place (README "Inputs and limits"): how many bytes any input may
//! bring (files, stdin, models, stream lines and parts), how much decoded image memory may be in
//! use at once across parallel decodes, which files a folder contributes, how long a camera may
//! keep us waiting, and the range of every numeric setting.
//!
//! Hand-written: a bounded read is `Read::take` plus a check, the decode budget a counting
//! semaphore (Mutex + Condvar); neither is worth a dependency.

use std::io::Read;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Largest image file, stdin image or replayed frame: a 24 MP JPEG is ~15 MiB.
pub const MAX_IMAGE_BYTES: u64 = 64 * MIB;
/// Largest station config (TOML): the shipped ones are under 4 KiB.
pub const MAX_CONFIG_BYTES: u64 = MIB;
/// Largest model file: the shipped ones are under 2 MiB.
pub const MAX_MODEL_BYTES: u64 = 256 * MIB;
/// Largest MJPEG part (one frame): a 4K JPEG is a few MiB.
pub const MAX_STREAM_PART: u64 = 32 * MIB;
/// Longest HTTP status or header line of a stream.
pub const MAX_STREAM_LINE: u64 = 8 * 1024;
/// Most header lines in a response or a part.
pub const MAX_STREAM_HEADERS: usize = 100;
/// Decoded image memory in use at once, summed over the images being decoded in parallel. One
/// image may use up to [`crate::preprocess::MAX_ALLOC`] of it; others wait for their share.
pub const DECODE_BUDGET: u64 = 1024 * MIB;

/// Largest tensor a model may make while running (one node's output, whole batch).
pub const MAX_TENSOR_BYTES: u64 = 512 * MIB;

/// TCP connect to a camera.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Status line and headers of a camera's answer, all together.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// One whole frame of a stream: a camera that takes longer is treated as lost.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// How often a blocking read wakes up to look for Ctrl-C / SIGTERM.
pub const STOP_POLL: Duration = Duration::from_millis(200);

/// Inference threads: more than this only costs memory and start-up.
pub const MAX_THREADS: usize = 64;
/// Images per inference call.
pub const MAX_BATCH: usize = 4096;
/// `tag bench` iterations.
pub const MAX_ITERATIONS: usize = 10_000_000;
/// Durations in seconds (stats interval, reconnect back-off): a day.
pub const MAX_SECONDS: f32 = 86_400.0;
/// Replay pace in frames/s.
pub const FPS_RANGE: (f32, f32) = (0.001, 1000.0);
/// Framebuffer width or height in pixels.
pub const MAX_FRAMEBUFFER_SIDE: u32 = 8192;

/// What a path is when it is not a regular file, for error messages.
fn kind_of(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The metadata of `path` (symlinks followed) when it is a regular file; otherwise why not,
/// naming it as `what`.
fn regular(path: &Path, what: &str) -> Result<std::fs::Metadata, String> {
    let md = std::fs::metadata(path).map_err(|e| format!("cannot read {what}: {e}"))?;
    if md.is_file() {
        Ok(md)
    } else {
        Err(format!("{what} is {}, not a regular file", kind_of(&md)))
    }
}

/// Why `path` cannot be read as a regular file, or None when it can (symlinks followed).
pub fn not_regular(path: &Path) -> Option<String> {
    regular(path, &path.display().to_string())
        .err()
        .map(|why| format!("{why}; skipped"))
}

/// Reads at most `limit` bytes from `r`; more is an error naming `what`.
pub fn read_bounded(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > limit {
        return Err(too_large(what, limit));
    }
    Ok(buf)
}

fn too_large(what: &str, limit: u64) -> String {
    format!(
        "{what} is larger than {} MiB, the limit for this kind of input; give a smaller file",
        limit / MIB
    )
}

/// Reads a regular file of at most `limit` bytes. FIFOs, devices and sockets are refused before
/// they are opened (opening a FIFO would block, reading /dev/zero would never end).
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    read_file_as(path, limit, "")
}

/// [`read_file`] with what the file is for in the messages (`model`).
pub fn read_file_as(path: &Path, limit: u64, kind: &str) -> Result<Vec<u8>, String> {
    let what = if kind.is_empty() {
        path.display().to_string()
    } else {
        format!("{kind} {}", path.display())
    };
    let md = regular(path, &what)?;
    if md.len() > limit {
        return Err(too_large(&what, limit));
    }
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {what}: {e}"))?;
    read_bounded(f, limit, &what)
}

/// Decoded image memory handed out across threads; see [`DECODE_BUDGET`].
pub struct DecodeBudget {
    total: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A share of the decode budget, returned when dropped.
pub struct Reservation<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    pub const fn new(total: u64) -> Self {
        Self {
            total,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits until `bytes` fit next to what other decodes hold. A request over the whole budget
    /// is clamped to it (the per-image limit refuses real bombs before this).
    pub fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.total);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > self.total {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The process-wide budget every decode draws from.
pub static DECODES: DecodeBudget = DecodeBudget::new(DECODE_BUDGET);

/// A numeric setting outside its range: the message names the setting and the range.
pub fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, String> {
    // Written so NaN fails too.
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be between {min} and {max}, got {value}"
        ))
    }
}

/// A duration in seconds within [`MAX_SECONDS`] (and at least `min`).
pub fn check_seconds(name: &str, value: f32, min: f32) -> Result<Duration, String> {
    check_range(name, value, min, MAX_SECONDS).map(Duration::from_secs_f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bounded_reads_refuse_what_is_too_long() {
        assert_eq!(read_bounded(&b"abc"[..], 3, "x").unwrap(), b"abc");
        let e = read_bounded(std::io::repeat(0), 1000, "stdin").unwrap_err();
        assert!(e.contains("stdin is larger than"), "{e}");
    }

    #[test]
    fn devices_and_folders_are_not_read() {
        let e = read_file(Path::new("/dev/zero"), MAX_IMAGE_BYTES).unwrap_err();
        assert!(e.contains("a device"), "{e}");
        let e = read_file(Path::new("/tmp"), MAX_IMAGE_BYTES).unwrap_err();
        assert!(e.contains("a folder"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.jpg");
        std::fs::write(&p, vec![0u8; 2000]).unwrap();
        assert!(read_file(&p, 1000).unwrap_err().contains("larger than"));
        assert_eq!(read_file(&p, 2000).unwrap().len(), 2000);
    }

    #[test]
    fn ranges_refuse_nan_and_extremes() {
        assert!(check_range("--fps", f32::NAN, 0.1, 10.0).is_err());
        assert!(check_range("--fps", 1e-30, FPS_RANGE.0, FPS_RANGE.1).is_err());
        assert!(check_seconds("--stats-interval", 1e30, 0.0).is_err());
        assert_eq!(
            check_seconds("x", 1.5, 0.0).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(check_range("--threads", 0usize, 1, MAX_THREADS).is_err());
    }

    #[test]
    fn the_budget_makes_decodes_wait_their_turn() {
        let b = Arc::new(DecodeBudget::new(100));
        let first = b.reserve(70);
        assert_eq!(b.in_use(), 70);
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            let _r = b2.reserve(50);
            b2.in_use()
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(b.in_use(), 70, "the second decode must wait");
        drop(first);
        assert_eq!(waiter.join().unwrap(), 50);
        assert_eq!(b.in_use(), 0);
        // Clamped: a request over the budget still runs, alone.
        drop(b.reserve(1000));
    }
}
