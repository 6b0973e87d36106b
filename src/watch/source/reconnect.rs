//! Live sources (streams, cameras) reopened with back-off when they are lost.

use super::sleep_unless_stopped;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A live connection (stream, camera) that is reopened with back-off when it is lost: the one
/// retry loop that the MJPEG and V4L2 sources share.
pub struct Reconnecting<S> {
    /// Named in log lines: the URL or device path.
    pub what: String,
    pub conn: Option<S>,
    backoff: Backoff,
    pub stop: Arc<AtomicBool>,
    /// Successful reopenings so far (`tag_source_reconnects_total`).
    pub reconnects: u64,
}

impl<S> Reconnecting<S> {
    pub fn new(what: String, conn: S, reconnect_max_s: f32, stop: Arc<AtomicBool>) -> Self {
        Self {
            what,
            conn: Some(conn),
            backoff: Backoff::new(reconnect_max_s),
            stop,
            reconnects: 0,
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
                    self.reconnects += 1;
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
}
