//! Per frame: classify the region of interest, debounce, draw the overlay where something shows
//! it, save the snapshot and write the record.

use super::board;
use super::capture::Frame;
use super::config::{StationConfig, WatchFormat};
use super::debounce::Debouncer;
use super::overlay::{self, Annotation};
use super::setup::Outputs;
use super::stats::Stats;
use crate::classify::{self, Tag, Verdict};
use crate::model::Model;
use crate::preprocess;
use anyhow::{Context, Result};
use image::RgbImage;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Best classes kept with a frame collected for review (a reviewer sees the top 3).
const TOP_K: usize = 5;

pub struct Inference<'a> {
    model: Model,
    /// The running model's file hash, in every JSON-lines record.
    sha256: String,
    cfg: &'a StationConfig,
    debouncer: Debouncer,
    pub stats: Stats,
    input: Vec<f32>,
    shape_checked: bool,
}

impl<'a> Inference<'a> {
    pub fn new(model: Model, sha256: String, cfg: &'a StationConfig) -> Self {
        Self {
            model,
            sha256,
            cfg,
            debouncer: Debouncer::new(cfg.verdict.debounce),
            stats: Stats::default(),
            input: vec![0f32; preprocess::IMAGE_LEN],
            shape_checked: false,
        }
    }

    /// Runs `model` from the next frame on (a model swapped in while the station runs).
    pub fn swap(&mut self, model: Model, sha256: String) {
        self.model = model;
        self.sha256 = sha256;
    }

    /// One frame, start to record; `dropped` is the capture's count so far. A corrupt frame is
    /// counted and skipped; only a failed model or verdict write is an error.
    pub fn frame(
        &mut self,
        frame: Frame,
        dropped: u64,
        outs: &mut Outputs,
        out: &mut dyn Write,
    ) -> Result<()> {
        let (cfg, model) = (self.cfg, &self.model);
        let (seq, captured) = (frame.seq, frame.captured);
        let image = match frame.pixels() {
            Ok(i) => i,
            Err(e) => {
                self.stats.corrupt += 1;
                outs.board.corrupt(self.stats.corrupt);
                eprintln!("tag watch: skipped {e}");
                return Ok(());
            }
        };
        let roi = cfg.roi;
        if !self.shape_checked {
            self.shape_checked = true;
            let (w, h) = image.dimensions();
            if let Some(w) = roi.aspect_warning(w, h) {
                eprintln!("tag watch: warning: {w}");
            }
        }
        let crop = image.roi(&roi);
        let chw = preprocess::to_chw_u8(&preprocess::fit(&crop));
        preprocess::normalize_into(&chw, &model.info.normalization, &mut self.input);
        let outputs = model.outputs(&self.input, 1)?;
        let v = classify::verdict(
            &outputs[0],
            &model.info.labels,
            TOP_K,
            cfg.verdict.threshold,
        );
        let rows: Vec<&[f32]> = outputs[1..].iter().map(Vec::as_slice).collect();
        let tags = classify::tags(&v, &rows, &model.info.heads, 1, classify::HEAD_THRESHOLD);
        let tags_text = classify::tags_text(&tags);
        if let Some(c) = outs.collector.as_mut() {
            if let Some(reason) = c.judge(&v.label, &v.top[0].label, v.confidence) {
                let record = collected(seq, reason, &v, &tags, model, &self.sha256, &roi, &image);
                c.keep(record, crop.to_rgb8(), image.to_rgb8());
            }
        }
        drop(crop);
        let latency_ms = captured.elapsed().as_secs_f64() * 1e3;
        self.stats.record(latency_ms);
        outs.board.frame(latency_ms, dropped, self.stats.corrupt);
        // `none` (an empty belt) counts as no product: nothing is reported, and the product
        // that arrives next is a new one.
        let confident = classify::is_product(&v.label);
        let report = self.debouncer.push(confident.then_some(v.label.as_str()));

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
        if let (Some(f), false) = (&mut outs.framebuffer, outs.framebuffer_failed) {
            let rgb = annotated.get_or_insert_with(&mut annotate);
            if let Err(e) = f.show(rgb) {
                eprintln!("tag watch: framebuffer write failed, not showing frames any more: {e}");
                outs.framebuffer_failed = true;
            }
        }
        if outs.http.is_some() && outs.view.wants_frame() {
            outs.view
                .offer(annotated.get_or_insert_with(&mut annotate).clone());
        }
        let mut snap = None;
        if report {
            self.stats.verdicts += 1;
            if let Some(dir) = &cfg.overlay.snapshots {
                let rgb = annotated.get_or_insert_with(&mut annotate);
                match snapshot(dir, seq, &v.label, rgb, outs.quality) {
                    Ok(p) => snap = Some(p.display().to_string()),
                    Err(e) => eprintln!("tag watch: {e:#}"),
                }
            }
            let thumbnail = outs
                .http
                .as_ref()
                .and_then(|_| thumbnail_jpeg(annotated.get_or_insert_with(&mut annotate)));
            let ts = timestamp();
            if let Some(p) = &outs.publisher {
                let mut fields = json!({"timestamp": ts, "frame": seq, "label": v.label,
                                        "confidence": v.confidence});
                if let Some(name) = snap.as_deref().and_then(|s| Path::new(s).file_name()) {
                    fields["snapshot"] = json!(name.to_string_lossy());
                }
                if !model.info.heads.is_empty() {
                    fields["tags"] = tags_json(&tags);
                }
                p.verdict(fields);
            }
            outs.board.verdict(board::Verdict {
                timestamp: ts,
                frame: seq,
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
                    let mut rec = jsonl(event, seq, &v, &tags, latency_ms, snap.as_deref(), model);
                    rec["model_sha256"] = json!(self.sha256);
                    rec.to_string()
                }
                WatchFormat::Human => format!(
                    "{}  frame {:>7}  {:<7}  {:<12} {:5.1}%  {:6.2} ms{}",
                    timestamp(),
                    seq,
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
        Ok(())
    }
}

/// A JSON-lines record: the verdict, and every head's tag for a multi-head model.
fn jsonl(
    event: &str,
    seq: u64,
    v: &Verdict,
    tags: &[Tag],
    latency_ms: f64,
    snapshot: Option<&str>,
    model: &Model,
) -> serde_json::Value {
    let mut rec = json!({
        "event": event,
        "timestamp": timestamp(),
        "frame": seq,
        "label": v.label,
        "confidence": v.confidence,
        "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
    });
    if let Some(s) = snapshot {
        rec["snapshot"] = json!(s);
    }
    if !model.info.heads.is_empty() {
        rec["tags"] = tags_json(tags);
    }
    rec
}

/// The record of a frame kept for review.
#[allow(clippy::too_many_arguments)]
fn collected(
    seq: u64,
    reason: crate::collect::policy::Reason,
    v: &Verdict,
    tags: &[Tag],
    model: &Model,
    sha256: &str,
    roi: &crate::preprocess::Roi,
    image: &super::capture::Pixels,
) -> crate::collect::store::Record {
    use crate::collect::store::{item_id, Guess, ModelRef, Record};
    let time = timestamp();
    let (w, h) = image.dimensions();
    Record {
        id: item_id(&time, seq),
        time,
        frame: seq,
        reason,
        model: ModelRef::new(model, sha256),
        label: v.label.clone(),
        confidence: v.confidence,
        top: v
            .top
            .iter()
            .map(|s| Guess {
                label: s.label.clone(),
                score: s.score,
            })
            .collect(),
        tags: (!model.info.heads.is_empty()).then(|| tags_json(tags)),
        roi: [roi.x, roi.y, roi.width, roi.height],
        frame_size: [w, h],
    }
}

/// Every head's tag: `{"articleType": {"label": ..., "confidence": ...}, ...}`.
fn tags_json(tags: &[Tag]) -> serde_json::Value {
    tags.iter()
        .map(|t| {
            (
                t.head.clone(),
                json!({"label": t.verdict.label, "confidence": t.verdict.confidence}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A 320-pixel-wide JPEG of an annotated frame for the page's verdict list (a few kB, kept for
/// the last dozen verdicts only).
fn thumbnail_jpeg(frame: &RgbImage) -> Option<std::sync::Arc<Vec<u8>>> {
    let w = frame.width().min(320);
    let h = (frame.height() as u64 * w as u64 / frame.width().max(1) as u64).max(1) as u32;
    let small = image::imageops::thumbnail(frame, w, h);
    super::jpeg(&small, 80).ok().map(std::sync::Arc::new)
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn snapshot(dir: &Path, seq: u64, label: &str, frame: &RgbImage, quality: u8) -> Result<PathBuf> {
    let jpeg = super::jpeg(frame, quality).context("cannot encode snapshot")?;
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{seq:09}-{safe}.jpg"));
    crate::fsio::write_atomic(&path, &jpeg)
        .with_context(|| format!("cannot write snapshot {}", path.display()))?;
    Ok(path)
}
