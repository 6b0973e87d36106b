//! `tag watch`: classify a live stream of frames, report each product once, keep going.
//!
//! Two threads: capture reads the source into a one-frame [`mailbox`] (newest wins, so a slow
//! model drops frames instead of queueing them), inference takes the newest frame, classifies its
//! region of interest, debounces, writes records and draws the overlay.

pub mod board;
pub mod debounce;
pub mod framebuffer;
pub mod http;
pub mod live;
pub mod mailbox;
pub mod source;
pub mod stats;
pub mod yuyv;

use crate::classify;
use crate::config::{StationConfig, WatchFormat};
use crate::model::Model;
use crate::overlay::{self, Annotation};
use crate::preprocess;
use anyhow::{Context, Result};
use debounce::Debouncer;
use image::{DynamicImage, RgbImage};
use mailbox::{Mailbox, Take};
use serde_json::json;
use source::FrameData;
use stats::Stats;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A frame's pixels: decoded, or camera YUYV converted only where they are looked at (the ROI
/// for every frame, the whole frame only for the overlay, snapshots and the framebuffer).
enum Pixels {
    Decoded(DynamicImage),
    Yuyv(yuyv::YuyvFrame),
}

impl Pixels {
    fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Decoded(i) => (i.width(), i.height()),
            Pixels::Yuyv(f) => f.dimensions(),
        }
    }

    fn roi(&self, roi: &preprocess::Roi) -> std::borrow::Cow<'_, DynamicImage> {
        match self {
            Pixels::Decoded(i) => roi.crop(i),
            Pixels::Yuyv(f) => {
                let (w, h) = f.dimensions();
                let (x, y, rw, rh) = roi.pixels(w, h);
                std::borrow::Cow::Owned(DynamicImage::ImageRgb8(f.region_to_rgb(x, y, rw, rh)))
            }
        }
    }

    fn to_rgb8(&self) -> RgbImage {
        match self {
            Pixels::Decoded(i) => i.to_rgb8(),
            Pixels::Yuyv(f) => f.to_rgb(),
        }
    }
}

struct Frame {
    seq: u64,
    /// The file a replayed frame came from (named when it is corrupt).
    origin: Option<String>,
    captured: Instant,
    data: FrameData,
}

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
}

/// Everything `run` needs besides the model.
pub struct WatchOptions<'a> {
    pub config: &'a StationConfig,
    pub source: &'a str,
    pub max_frames: Option<u64>,
    pub stop: Arc<AtomicBool>,
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// An annotated frame as JPEG: what snapshots, the page's thumbnails and `/stream.mjpg` send.
fn jpeg(frame: &RgbImage, quality: u8) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(frame)?;
    Ok(out)
}

fn snapshot(dir: &Path, seq: u64, label: &str, frame: &RgbImage, quality: u8) -> Result<PathBuf> {
    let jpeg = jpeg(frame, quality).context("cannot encode snapshot")?;
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{seq:09}-{safe}.jpg"));
    crate::fsio::write_atomic(&path, &jpeg)
        .with_context(|| format!("cannot write snapshot {}", path.display()))?;
    Ok(path)
}

/// Runs until the source ends, `max_frames` frames were captured, or `stop` is set.
pub fn run(model: &Model, opts: &WatchOptions, out: &mut dyn Write) -> Result<Summary> {
    let cfg = opts.config;
    let mut src = source::open(opts.source, &cfg.source, opts.stop.clone())?;
    let live = src.is_live();
    let mut fb = match &cfg.overlay.framebuffer {
        Some(p) => Some(framebuffer::Framebuffer::open(
            p,
            cfg.overlay.framebuffer_geometry,
        )?),
        None => None,
    };
    // The HTTP endpoints read the board; the loop below writes it whether or not they run.
    let board = Arc::new(board::Board::new(format!(
        "{} model · {} · ROI x {} y {} w {} h {} · threshold {}",
        model.info.name,
        opts.source,
        cfg.roi.x,
        cfg.roi.y,
        cfg.roi.width,
        cfg.roi.height,
        cfg.verdict.threshold
    )));
    let quality = cfg.overlay.jpeg_quality.unwrap_or(85);
    let view = Arc::new(live::Live::new(quality));
    let (http, encoder) = match cfg.http.bind()? {
        Some(addr) => {
            let server =
                http::HttpServer::start(addr, cfg.http.token.clone(), board.clone(), view.clone())?;
            eprintln!(
                "tag watch: serving the live page on http://{}/ (also /stream.mjpg, /metrics, /healthz, /verdicts){}",
                server.addr,
                if cfg.http.token.is_some() {
                    " (token required)"
                } else {
                    ""
                }
            );
            (Some(server), Some(view.start_encoder()))
        }
        None => (None, None),
    };
    if let Some(dir) = &cfg.overlay.snapshots {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create snapshot folder {}", dir.display()))?;
    }

    let mailbox = Arc::new(Mailbox::<Frame>::default());
    let capture = {
        let (mailbox, stop, max, board) = (
            mailbox.clone(),
            opts.stop.clone(),
            opts.max_frames,
            board.clone(),
        );
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
    };

    let start = Instant::now();
    let labels = &model.info.labels;
    let (threshold, roi) = (cfg.verdict.threshold, cfg.roi);
    let interval = Duration::from_secs_f32(cfg.output.stats_interval_s);
    let mut debouncer = Debouncer::new(cfg.verdict.debounce);
    let mut stats = Stats::default();
    let mut fb_failed = false;
    let mut input = vec![0f32; preprocess::IMAGE_LEN];
    let mut shape_checked = false;
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        if stats.interval_s() >= interval.as_secs_f64() {
            stats_line(
                &mut stats,
                mailbox.dropped(),
                cfg.output.stats_json,
                "stats",
            );
        }
        let frame = match mailbox.take(Duration::from_millis(100)) {
            Take::Item(f) => f,
            Take::Empty => continue,
            Take::Closed => break,
        };
        let name = match &frame.origin {
            Some(file) => format!("frame {} ({file})", frame.seq),
            None => format!("frame {}", frame.seq),
        };
        let image = match frame.data {
            FrameData::Yuyv(yuyv) => Ok(Pixels::Yuyv(yuyv)),
            FrameData::Encoded(bytes) => preprocess::decode(&bytes, &name)
                .map(Pixels::Decoded)
                .map_err(|e| e.to_string()),
            FrameData::Unreadable(why) => Err(format!("{name}: {why}")),
        };
        let image = match image {
            Ok(i) => i,
            Err(e) => {
                stats.corrupt += 1;
                board.corrupt(stats.corrupt);
                eprintln!("tag watch: skipped {e}");
                continue;
            }
        };
        if !shape_checked {
            shape_checked = true;
            let (w, h) = image.dimensions();
            if let Some(w) = roi.aspect_warning(w, h) {
                eprintln!("tag watch: warning: {w}");
            }
        }
        let chw = preprocess::to_chw_u8(&preprocess::fit(&image.roi(&roi)));
        preprocess::normalize_into(&chw, &model.info.normalization, &mut input);
        let outputs = model.outputs(&input, 1)?;
        let v = classify::verdict(&outputs[0], labels, 1, threshold);
        let rows: Vec<&[f32]> = outputs[1..].iter().map(Vec::as_slice).collect();
        let tags = classify::tags(&v, &rows, &model.info.heads, 1, classify::HEAD_THRESHOLD);
        let tags_text = classify::tags_text(&tags);
        let latency_ms = frame.captured.elapsed().as_secs_f64() * 1e3;
        stats.record(latency_ms);
        board.frame(latency_ms, mailbox.dropped(), stats.corrupt);
        // `none` (an empty belt) counts as no product: nothing is reported, and the product
        // that arrives next is a new one.
        let confident = classify::is_product(&v.label);
        let report = debouncer.push(confident.then_some(v.label.as_str()));

        let mut annotated = None;
        let mut annotate = || {
            let mut rgb = image.to_rgb8();
            overlay::draw(
                &mut rgb,
                &roi,
                &Annotation {
                    label: &classify::with_tags(&v.label, &tags),
                    confidence: v.confidence,
                    uncertain: !confident,
                },
            );
            rgb
        };
        if let (Some(f), false) = (&mut fb, fb_failed) {
            let rgb = annotated.get_or_insert_with(&mut annotate);
            if let Err(e) = f.show(rgb) {
                eprintln!("tag watch: framebuffer write failed, not showing frames any more: {e}");
                fb_failed = true;
            }
        }
        if http.is_some() && view.wants_frame() {
            view.offer(annotated.get_or_insert_with(&mut annotate).clone());
        }
        let mut snap = None;
        let mut thumbnail = None;
        if report {
            stats.verdicts += 1;
            if let Some(dir) = &cfg.overlay.snapshots {
                let rgb = annotated.get_or_insert_with(&mut annotate);
                match snapshot(dir, frame.seq, &v.label, rgb, quality) {
                    Ok(p) => snap = Some(p.display().to_string()),
                    Err(e) => eprintln!("tag watch: {e:#}"),
                }
            }
            if http.is_some() {
                thumbnail = thumbnail_jpeg(annotated.get_or_insert_with(&mut annotate));
            }
        }
        if report {
            board.verdict(board::Verdict {
                timestamp: timestamp(),
                frame: frame.seq,
                label: v.label.clone(),
                confidence: v.confidence,
                snapshot: snap.clone(),
                thumbnail,
                tags: tags_text.clone(),
            });
        }
        if report || cfg.output.all_frames {
            let event = if report { "verdict" } else { "frame" };
            let line = match cfg.output.format {
                WatchFormat::Jsonl => {
                    let mut rec = json!({
                        "event": event,
                        "timestamp": timestamp(),
                        "frame": frame.seq,
                        "label": v.label,
                        "confidence": v.confidence,
                        "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
                    });
                    if let Some(s) = &snap {
                        rec["snapshot"] = json!(s);
                    }
                    if !model.info.heads.is_empty() {
                        rec["tags"] = tags
                            .iter()
                            .map(|t| {
                                (
                                    t.head.clone(),
                                    json!({"label": t.verdict.label, "confidence": t.verdict.confidence}),
                                )
                            })
                            .collect::<serde_json::Map<_, _>>()
                            .into();
                    }
                    rec.to_string()
                }
                WatchFormat::Human => format!(
                    "{}  frame {:>7}  {:<7}  {:<12} {:5.1}%  {:6.2} ms{}",
                    timestamp(),
                    frame.seq,
                    event,
                    v.label,
                    v.confidence * 100.0,
                    latency_ms,
                    if tags_text.is_empty() {
                        String::new()
                    } else {
                        format!("  ({tags_text})")
                    }
                ),
            };
            // Flushed per record: a killed or power-cut device keeps every verdict written.
            writeln!(out, "{line}")
                .and_then(|_| out.flush())
                .context("cannot write verdicts")?;
        }
    }

    view.close();
    if let Some(e) = encoder {
        let _ = e.join();
    }
    drop(http);
    // A camera read can block for seconds; do not hold the exit hostage to it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !capture.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
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
    })
}

/// A 320-pixel-wide JPEG of an annotated frame for the page's verdict list (a few kB, kept for
/// the last dozen verdicts only).
fn thumbnail_jpeg(frame: &RgbImage) -> Option<Arc<Vec<u8>>> {
    let w = frame.width().min(320);
    let h = (frame.height() as u64 * w as u64 / frame.width().max(1) as u64).max(1) as u32;
    let small = image::imageops::thumbnail(frame, w, h);
    jpeg(&small, 80).ok().map(Arc::new)
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
