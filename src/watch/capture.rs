//! The capture thread (source -> one-frame mailbox) and the frame it hands to inference.

use super::board::Board;
use super::mailbox::Mailbox;
use super::source::{FrameData, FrameSource};
use super::yuyv;
use crate::preprocess;
use image::{DynamicImage, RgbImage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// A frame's pixels: decoded, or camera YUYV converted only where they are looked at (the ROI
/// for every frame, the whole frame only for the overlay, snapshots and the framebuffer).
pub enum Pixels {
    Decoded(DynamicImage),
    Yuyv(yuyv::YuyvFrame),
}

impl Pixels {
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Decoded(i) => (i.width(), i.height()),
            Pixels::Yuyv(f) => f.dimensions(),
        }
    }

    pub fn roi(&self, roi: &preprocess::Roi) -> std::borrow::Cow<'_, DynamicImage> {
        match self {
            Pixels::Decoded(i) => roi.crop(i),
            Pixels::Yuyv(f) => {
                let (w, h) = f.dimensions();
                let (x, y, rw, rh) = roi.pixels(w, h);
                std::borrow::Cow::Owned(DynamicImage::ImageRgb8(f.region_to_rgb(x, y, rw, rh)))
            }
        }
    }

    pub fn to_rgb8(&self) -> RgbImage {
        match self {
            Pixels::Decoded(i) => i.to_rgb8(),
            Pixels::Yuyv(f) => f.to_rgb(),
        }
    }
}

pub struct Frame {
    pub seq: u64,
    /// The file a replayed frame came from (named when it is corrupt).
    pub origin: Option<String>,
    pub captured: Instant,
    pub data: FrameData,
}

impl Frame {
    /// How log lines name the frame: its number, and the file it was replayed from.
    pub fn name(&self) -> String {
        match &self.origin {
            Some(file) => format!("frame {} ({file})", self.seq),
            None => format!("frame {}", self.seq),
        }
    }

    /// The frame's pixels, or why it cannot be read (a corrupt frame is skipped, not fatal).
    pub fn pixels(self) -> Result<Pixels, String> {
        let name = self.name();
        match self.data {
            FrameData::Yuyv(yuyv) => Ok(Pixels::Yuyv(yuyv)),
            FrameData::Encoded(bytes) => preprocess::decode(&bytes, &name)
                .map(Pixels::Decoded)
                .map_err(|e| e.to_string()),
            FrameData::Unreadable(why) => Err(format!("{name}: {why}")),
        }
    }
}

/// Reads `src` until it ends, `max` frames were read or `stop` is set: a live camera replaces
/// the frame waiting in the mailbox (frames are dropped, never queued), a replay waits for room.
/// Returns the frames read and why the source ended early, if it did.
pub fn spawn(
    mut src: Box<dyn FrameSource>,
    mailbox: Arc<Mailbox<Frame>>,
    stop: Arc<AtomicBool>,
    max: Option<u64>,
    board: Arc<Board>,
) -> JoinHandle<(u64, Option<String>)> {
    let live = src.is_live();
    std::thread::spawn(move || {
        let (mut seq, mut error) = (0u64, None);
        while !stop.load(Ordering::Relaxed) && max.is_none_or(|m| seq < m) {
            match src.next_frame() {
                Ok(Some(data)) => {
                    seq += 1;
                    board.reconnects(src.reconnects());
                    let frame = Frame {
                        seq,
                        origin: src.origin(),
                        captured: Instant::now(),
                        data,
                    };
                    if live {
                        mailbox.put_latest(frame);
                    } else if !mailbox.put_wait(frame) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        mailbox.close();
        (seq, error)
    })
}
