//! `tag watch`: classify a live stream of frames, report each product once, keep going.
//!
//! [`run`] starts the outputs (`setup`: framebuffer, board, live page), then two threads:
//! `capture` reads the source into a one-frame [`mailbox`] (newest wins, so a slow model drops
//! frames instead of queueing them), `inference` takes the newest frame, classifies its region of
//! interest, debounces, draws the overlay and writes records.

pub mod board;
mod capture;
pub mod config;
pub mod debounce;
pub mod framebuffer;
pub mod http;
mod inference;
pub mod live;
pub mod mailbox;
pub mod overlay;
pub mod reload;
mod setup;
pub mod source;
pub mod stats;
pub mod yuyv;

use crate::model::Model;
use anyhow::Result;
use config::StationConfig;
use image::RgbImage;
use mailbox::{Mailbox, Take};
use serde_json::json;
use stats::Stats;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Totals for the end-of-run line.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub captured: u64,
    pub processed: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub verdicts: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rss_mb: f64,
    /// Why the source ended early, if it did.
    pub source_error: Option<String>,
    /// Publishing at the end of the run, when `[mqtt]` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::publish::PublishStatus>,
    /// Frames kept for review, when `[collect]` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collect: Option<crate::collect::CollectSummary>,
}

/// Everything `run` needs besides the model.
pub struct WatchOptions<'a> {
    pub config: &'a StationConfig,
    pub source: &'a str,
    pub max_frames: Option<u64>,
    pub stop: Arc<AtomicBool>,
    /// The model as verdict messages name it (`[mqtt]`).
    pub origin: crate::publish::Origin,
    /// Models to swap in while running ([`reload::spawn`]); None: the model stays.
    pub reload: Option<std::sync::mpsc::Receiver<reload::Loaded>>,
}

/// An annotated frame as JPEG: what snapshots, the page's thumbnails and `/stream.mjpg` send.
pub(crate) fn jpeg(frame: &RgbImage, quality: u8) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(frame)?;
    Ok(out)
}

/// Runs until the source ends, `max_frames` frames were captured, or `stop` is set.
pub fn run(model: Model, opts: &WatchOptions, out: &mut dyn Write) -> Result<Summary> {
    let cfg = opts.config;
    let src = source::open(opts.source, &cfg.source, opts.stop.clone())?;
    let mut outs = setup::Outputs::start(&model, opts, cfg)?;
    let mailbox = Arc::new(Mailbox::<capture::Frame>::default());
    let capture = capture::spawn(
        src,
        mailbox.clone(),
        opts.stop.clone(),
        opts.max_frames,
        outs.board.clone(),
    );

    let start = Instant::now();
    let interval = Duration::from_secs_f32(cfg.output.stats_interval_s);
    let mut inference = inference::Inference::new(model, opts.origin.model_sha256.clone(), cfg);
    while !opts.stop.load(Ordering::Relaxed) {
        let stats = &mut inference.stats;
        if stats.interval_s() >= interval.as_secs_f64() {
            stats_line(stats, mailbox.dropped(), cfg.output.stats_json, "stats");
        }
        if let Some(l) = opts.reload.as_ref().and_then(|r| r.try_recv().ok()) {
            let id = outs.board.model_swapped(&l.model, l.sha256.clone());
            if let Some(p) = outs.publisher.as_mut() {
                p.set_model(&id);
            }
            if let Some(c) = &outs.collector {
                c.model_swapped(&setup::manifest(&l.model, &l.sha256));
            }
            eprintln!(
                "tag watch: model swapped in: {} v{} ({}) from {}",
                id.name,
                id.version,
                &id.sha256[..12],
                l.model.source
            );
            inference.swap(l.model, l.sha256);
        }
        match mailbox.take(Duration::from_millis(100)) {
            Take::Item(frame) => inference.frame(frame, mailbox.dropped(), &mut outs, out)?,
            Take::Empty => continue,
            Take::Closed => break,
        }
    }

    let collected = outs.collector.as_ref().map(|c| c.stats.clone());
    let mqtt = outs.close();
    // A camera read can block for seconds; do not hold the exit hostage to it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !capture.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = &inference.stats;
    let (captured, source_error) = if capture.is_finished() {
        capture
            .join()
            .unwrap_or((0, Some("capture thread panicked".into())))
    } else {
        (stats.processed + mailbox.dropped() + stats.corrupt, None)
    };
    let (p50_ms, p99_ms) = stats.percentiles();
    Ok(Summary {
        captured,
        processed: stats.processed,
        dropped: mailbox.dropped(),
        corrupt: stats.corrupt,
        verdicts: stats.verdicts,
        seconds: start.elapsed().as_secs_f64(),
        p50_ms,
        p99_ms,
        rss_mb: stats::rss_mb(),
        source_error,
        mqtt,
        collect: collected.map(|c| c.summary()),
    })
}

fn stats_line(stats: &mut Stats, dropped: u64, as_json: bool, event: &str) {
    let fps = stats.take_fps();
    let (p50, p99) = stats.percentiles();
    let rss = stats::rss_mb();
    if as_json {
        eprintln!(
            "{}",
            json!({"event": event, "fps": fps, "p50_ms": p50, "p99_ms": p99,
                   "processed": stats.processed, "dropped": dropped, "corrupt": stats.corrupt,
                   "verdicts": stats.verdicts, "rss_mb": rss})
        );
    } else {
        eprintln!(
            "tag watch: {fps:.1} fps  p50 {p50:.2} ms  p99 {p99:.2} ms  processed {}  dropped {dropped}  corrupt {}  products {}  rss {rss:.1} MiB",
            stats.processed, stats.corrupt, stats.verdicts
        );
    }
}
