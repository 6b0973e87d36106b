//! Annotated frames for people watching the station (`/stream.mjpg`, the page at `/`).
//!
//! The inference loop offers a frame only while someone watches and at most [`MAX_FPS`] times a
//! second; one encoder thread turns the newest offer into a JPEG (a one-frame mailbox: offers
//! that arrive while it encodes replace each other, like camera frames) and every viewer gets the
//! same shared bytes. A viewer that reads slowly just skips frames; one that stops reading blocks
//! only its own thread (tiny_http has no write timeout), holding one shared frame, until it
//! disconnects: viewers are capped at [`MAX_VIEWERS`], so neither inference nor memory can be
//! held up by browsers.

use super::mailbox::{Mailbox, Take};
use image::RgbImage;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Streams served at once; more get 503.
pub const MAX_VIEWERS: usize = 4;
/// Frames per second offered to viewers at most (inference may run much faster).
pub const MAX_FPS: f64 = 10.0;
/// The multipart boundary of `/stream.mjpg`.
pub const BOUNDARY: &str = "tagframe";

#[derive(Default)]
struct Latest {
    seq: u64,
    jpeg: Option<Arc<Vec<u8>>>,
}

/// The shared state between inference, the encoder thread and the viewers.
pub struct Live {
    viewers: AtomicUsize,
    latest: Mutex<Latest>,
    fresh: Condvar,
    pending: Mailbox<RgbImage>,
    last_offer: Mutex<Option<Instant>>,
    closed: AtomicBool,
    quality: u8,
}

impl Live {
    pub fn new(quality: u8) -> Self {
        Self {
            viewers: AtomicUsize::new(0),
            latest: Mutex::default(),
            fresh: Condvar::new(),
            pending: Mailbox::default(),
            last_offer: Mutex::new(None),
            closed: AtomicBool::new(false),
            quality,
        }
    }

    /// Whether the inference loop should draw and offer this frame: someone watches and the
    /// last offer is at least 1 / [`MAX_FPS`] old. Cheap: an atomic load when nobody watches.
    pub fn wants_frame(&self) -> bool {
        if self.viewers.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut last = self.last_offer.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| t.elapsed().as_secs_f64() >= 1.0 / MAX_FPS);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Hands an annotated frame to the encoder; never blocks.
    pub fn offer(&self, frame: RgbImage) {
        self.pending.put_latest(frame);
    }

    /// Starts the encoder thread; it ends after [`Live::close`].
    pub fn start_encoder(self: &Arc<Self>) -> JoinHandle<()> {
        let live = self.clone();
        std::thread::spawn(move || loop {
            match live.pending.take(Duration::from_millis(200)) {
                Take::Item(rgb) => {
                    if let Ok(jpeg) = super::jpeg(&rgb, live.quality) {
                        live.publish(jpeg);
                    }
                }
                Take::Empty => {}
                Take::Closed => return,
            }
        })
    }

    fn publish(&self, jpeg: Vec<u8>) {
        let mut l = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        l.seq += 1;
        l.jpeg = Some(Arc::new(jpeg));
        self.fresh.notify_all();
    }

    /// Wakes every viewer and stops the encoder: the station is shutting down.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.pending.close();
        self.fresh.notify_all();
    }

    /// A frame newer than `seen`, waiting up to `timeout`; `None` on timeout or once closed.
    pub fn next_after(&self, seen: u64, timeout: Duration) -> Option<(u64, Arc<Vec<u8>>)> {
        let deadline = Instant::now() + timeout;
        let mut l = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return None;
            }
            if l.seq > seen {
                if let Some(j) = &l.jpeg {
                    return Some((l.seq, j.clone()));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            l = self
                .fresh
                .wait_timeout(l, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A viewer slot, or `None` when [`MAX_VIEWERS`] are already watching.
    pub fn join(self: &Arc<Self>) -> Option<Viewer> {
        self.viewers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_VIEWERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Viewer { live: self.clone() })
    }

    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }
}

/// One watching client; leaving (drop) frees its slot.
pub struct Viewer {
    live: Arc<Live>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.live.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Viewer {
    /// Writes an MJPEG stream (the response head, then one part per new frame) to `out` until
    /// the client goes away or the station stops.
    pub fn stream(self, out: &mut dyn Write) -> std::io::Result<()> {
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        )?;
        out.flush()?;
        let mut seen = 0;
        loop {
            match self.live.next_after(seen, Duration::from_secs(1)) {
                Some((seq, jpeg)) => {
                    seen = seq;
                    write!(
                        out,
                        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        jpeg.len()
                    )?;
                    out.write_all(&jpeg)?;
                    out.write_all(b"\r\n")?;
                    out.flush()?;
                }
                None if self.live.closed.load(Ordering::Relaxed) => return Ok(()),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_offered_only_to_viewers_and_at_most_max_fps() {
        let live = Arc::new(Live::new(80));
        assert!(!live.wants_frame(), "nobody watches");
        let v = live.join().unwrap();
        assert!(live.wants_frame());
        assert!(!live.wants_frame(), "too soon after the last offer");
        drop(v);
        assert_eq!(live.viewers(), 0);
    }

    #[test]
    fn viewers_are_capped() {
        let live = Arc::new(Live::new(80));
        let slots: Vec<Viewer> = (0..MAX_VIEWERS).map(|_| live.join().unwrap()).collect();
        assert!(live.join().is_none());
        drop(slots);
        assert!(live.join().is_some());
    }

    #[test]
    fn the_encoder_publishes_the_newest_frame_to_every_viewer() {
        let live = Arc::new(Live::new(80));
        let enc = live.start_encoder();
        live.offer(RgbImage::from_pixel(64, 48, image::Rgb([200, 30, 30])));
        let (seq, a) = live.next_after(0, Duration::from_secs(5)).unwrap();
        let (_, b) = live.next_after(0, Duration::from_secs(5)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one encoding shared by all viewers");
        assert_eq!(&a[..2], &[0xFF, 0xD8], "a JPEG");
        assert!(live.next_after(seq, Duration::from_millis(50)).is_none());
        live.close();
        enc.join().unwrap();
        assert!(
            live.next_after(0, Duration::from_secs(5)).is_none(),
            "closed"
        );
    }

    #[test]
    fn a_stream_is_multipart_jpeg_and_ends_when_the_station_stops() {
        let live = Arc::new(Live::new(80));
        live.publish(vec![0xFF, 0xD8, 1, 2, 0xFF, 0xD9]);
        let v = live.join().unwrap();
        let closer = {
            let live = live.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                live.close();
            })
        };
        let mut out = Vec::new();
        v.stream(&mut out).unwrap();
        closer.join().unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains(&format!("boundary={BOUNDARY}")));
        assert!(text.contains("Content-Length: 6\r\n\r\n"), "{text}");
        assert_eq!(live.viewers(), 0, "the slot is freed");
    }
}
