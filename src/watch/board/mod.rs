//! What the station's HTTP endpoints show: counters, recent verdicts and a latency histogram,
//! updated by the inference loop and read by the server threads. One short lock per frame; a
//! reader copies what it needs and renders outside the lock, so a slow client never holds it.

mod metrics;

use super::reload::ModelId;
use super::stats::WINDOW;
use crate::measure::percentile;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Recent verdicts kept for `/verdicts` (bounded: a week-long run uses the same memory).
pub const RECENT: usize = 50;
/// Upper bounds (ms) of the latency histogram buckets, Prometheus-style (cumulative, + `+Inf`).
pub const LATENCY_BUCKETS_MS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0];
/// `/healthz` says 503 when no frame was classified for this long.
pub const STALE_AFTER: Duration = Duration::from_secs(5);
/// Verdicts listed on the page (newest first); the JPEG thumbnails of older ones are dropped.
pub const PAGE_VERDICTS: usize = 12;

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub timestamp: String,
    pub frame: u64,
    pub label: String,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// A multi-head model's tags, `Casual Shoes, Black, Men` (empty otherwise).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tags: String,
    /// A small JPEG of the annotated frame, kept in memory for the page (`/verdicts/N.jpg`).
    #[serde(skip)]
    pub thumbnail: Option<Arc<Vec<u8>>>,
}

/// What the live page polls (`/status`): totals, rates and the newest verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub station: String,
    pub uptime_s: f64,
    pub healthy: bool,
    pub health: String,
    pub frames: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub reconnects: u64,
    /// People watching `/stream.mjpg` now (set by the server).
    pub viewers: usize,
    /// Frames classified per second over the last few seconds.
    pub fps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_label: BTreeMap<String, u64>,
    /// Newest first, with `image` set where a thumbnail is kept.
    pub recent: Vec<PageVerdict>,
    /// Verdicts to the broker, when `[mqtt]` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::publish::PublishStatus>,
    pub model: ModelId,
    /// Frames kept for review, when `[collect]` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collect: Option<CollectStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectStatus {
    /// Items in the collection.
    pub items: u64,
    /// Kept this run.
    pub kept: u64,
    /// Whether `/review` is served here.
    pub review: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageVerdict {
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Default)]
struct State {
    frames: u64,
    dropped: u64,
    corrupt: u64,
    per_label: BTreeMap<String, u64>,
    recent: VecDeque<Verdict>,
    /// Count per bucket of [`LATENCY_BUCKETS_MS`] (not cumulative), then the overflow bucket.
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_ms: f64,
    last_frame: Option<Instant>,
    source_failed: Option<String>,
    reconnects: u64,
    /// Arrival time and latency (ms) of the last [`WINDOW`] frames.
    window: VecDeque<(Instant, f32)>,
    started: Option<Instant>,
    station: String,
}

/// The live station state behind `/metrics`, `/healthz` and `/verdicts`.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
    publisher: OnceLock<crate::publish::Monitor>,
    /// The collection's counters, and whether `/review` is served.
    collector: OnceLock<(Arc<crate::collect::CollectStats>, bool)>,
    model: Mutex<ModelId>,
}

impl Board {
    /// A board for a station described by `station` (model, source, ROI: shown on the page)
    /// running `model`.
    pub fn new(station: String, model: ModelId) -> Self {
        Self {
            state: Mutex::new(State {
                started: Some(Instant::now()),
                station,
                ..State::default()
            }),
            publisher: OnceLock::new(),
            collector: OnceLock::new(),
            model: Mutex::new(model),
        }
    }

    /// `model` (file hash `sha256`) runs from now on; what the page and `/metrics` now name.
    pub fn model_swapped(&self, model: &crate::model::Model, sha256: String) -> ModelId {
        let mut id = self.model.lock().unwrap_or_else(|e| e.into_inner());
        *id = ModelId {
            swaps: id.swaps + 1,
            ..ModelId::new(model, sha256)
        };
        id.clone()
    }

    /// Publishing to a broker runs: its counters join `/metrics` and `/status`.
    pub fn publishing(&self, monitor: crate::publish::Monitor) {
        let _ = self.publisher.set(monitor);
    }

    /// Frames are collected for review: their counters join `/metrics` and `/status`, and the
    /// page links to `/review` when it is served.
    pub fn collecting(&self, stats: Arc<crate::collect::CollectStats>, review: bool) {
        let _ = self.collector.set((stats, review));
    }

    /// The counters a `metrics` message carries.
    pub fn summary(&self) -> serde_json::Value {
        let st = self.status();
        serde_json::json!({"timestamp": crate::publish::timestamp(), "uptime_s": st.uptime_s,
            "frames": st.frames, "dropped": st.dropped, "corrupt": st.corrupt,
            "verdicts": st.per_label.values().sum::<u64>(), "fps": st.fps, "p50_ms": st.p50_ms,
            "p99_ms": st.p99_ms, "healthy": st.healthy, "mqtt": st.mqtt})
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock cannot leave counters half-updated in a harmful way.
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One classified frame, with the totals of dropped and corrupt frames so far.
    pub fn frame(&self, latency_ms: f64, dropped: u64, corrupt: u64) {
        self.with(|s| {
            s.frames += 1;
            s.dropped = dropped;
            s.corrupt = corrupt;
            let i = LATENCY_BUCKETS_MS
                .iter()
                .position(|&b| latency_ms <= b)
                .unwrap_or(LATENCY_BUCKETS_MS.len());
            s.buckets[i] += 1;
            s.latency_sum_ms += latency_ms;
            let now = Instant::now();
            s.last_frame = Some(now);
            if s.window.len() == WINDOW {
                s.window.pop_front();
            }
            s.window.push_back((now, latency_ms as f32));
        })
    }

    pub fn corrupt(&self, corrupt: u64) {
        self.with(|s| s.corrupt = corrupt)
    }

    pub fn verdict(&self, v: Verdict) {
        self.with(|s| {
            *s.per_label.entry(v.label.clone()).or_default() += 1;
            if s.recent.len() == RECENT {
                s.recent.pop_front();
            }
            s.recent.push_back(v);
            // Thumbnails only for what the page lists: memory stays at a dozen small JPEGs.
            let n = s.recent.len();
            if n > PAGE_VERDICTS {
                s.recent[n - PAGE_VERDICTS - 1].thumbnail = None;
            }
        })
    }

    /// Total successful reconnections of the source so far.
    pub fn reconnects(&self, total: u64) {
        self.with(|s| s.reconnects = total)
    }

    /// The thumbnail of the verdict on `frame`, while the page lists it.
    pub fn thumbnail(&self, frame: u64) -> Option<Arc<Vec<u8>>> {
        self.with(|s| {
            s.recent
                .iter()
                .rev()
                .find(|v| v.frame == frame)
                .and_then(|v| v.thumbnail.clone())
        })
    }

    /// What the live page shows.
    pub fn status(&self) -> Status {
        let health = self.health();
        let (mut status, window) = self.with(|s| {
            let recent = s
                .recent
                .iter()
                .rev()
                .take(PAGE_VERDICTS)
                .map(|v| PageVerdict {
                    image: v
                        .thumbnail
                        .as_ref()
                        .map(|_| format!("verdicts/{}.jpg", v.frame)),
                    verdict: v.clone(),
                })
                .collect();
            let status = Status {
                station: s.station.clone(),
                uptime_s: s.started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                healthy: false,
                health: String::new(),
                frames: s.frames,
                dropped: s.dropped,
                corrupt: s.corrupt,
                reconnects: s.reconnects,
                viewers: 0,
                fps: 0.0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                per_label: s.per_label.clone(),
                recent,
                mqtt: None,
                model: self.model.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                collect: self.collector.get().map(|(c, review)| {
                    let c = c.summary();
                    CollectStatus {
                        items: c.items,
                        kept: c.kept.values().sum(),
                        review: *review,
                    }
                }),
            };
            (status, s.window.clone())
        });
        (status.healthy, status.health) = match health {
            Ok(h) => (true, h),
            Err(h) => (false, h),
        };
        // fps over the frames of the last 5 s (none when the stream stalled).
        let now = Instant::now();
        let fresh: Vec<&(Instant, f32)> = window
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= STALE_AFTER)
            .collect();
        if let (Some(first), Some(last)) = (fresh.first(), fresh.last()) {
            let span = last.0.duration_since(first.0).as_secs_f64();
            if span > 0.0 {
                status.fps = (fresh.len() - 1) as f64 / span;
            }
        }
        // The same percentile as the stats line on stderr and `tag bench`.
        let mut lat: Vec<f64> = window.iter().map(|w| w.1 as f64).collect();
        lat.sort_by(f64::total_cmp);
        (status.p50_ms, status.p99_ms) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
        status.mqtt = self.publisher.get().map(|m| m.status());
        status
    }

    /// The source is gone for good: `/healthz` answers 503 from now on.
    pub fn source_failed(&self, why: &str) {
        self.with(|s| s.source_failed = Some(why.to_string()))
    }

    /// `Ok` with a short status while frames arrive, `Err` with the reason otherwise.
    pub fn health(&self) -> Result<String, String> {
        self.with(|s| {
            if let Some(why) = &s.source_failed {
                return Err(format!("source failed: {why}"));
            }
            match s.last_frame {
                Some(t) if t.elapsed() <= STALE_AFTER => {
                    Ok(format!("ok: {} frames classified", s.frames))
                }
                Some(t) => Err(format!("no frame for {:.1} s", t.elapsed().as_secs_f64())),
                None => Err("no frame yet".into()),
            }
        })
    }

    /// The recent verdicts, oldest first.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.with(|s| s.recent.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_every_frame() {
        let b = Board::default();
        for ms in [0.3, 0.7, 3.0, 900.0] {
            b.frame(ms, 2, 1);
        }
        b.verdict(Verdict {
            timestamp: "t".into(),
            frame: 1,
            label: "Flip \"Flops\"".into(),
            confidence: 0.9,
            snapshot: None,
            thumbnail: None,
            tags: String::new(),
        });
        let m = b.metrics();
        assert!(m.contains("tag_latency_ms_bucket{le=\"0.5\"} 1\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"1\"} 2\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"500\"} 3\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"+Inf\"} 4\n"), "{m}");
        assert!(m.contains("tag_latency_ms_count 4\n"), "{m}");
        assert!(m.contains("tag_frames_dropped_total 2\n"), "{m}");
        let st = b.status();
        assert_eq!((st.p50_ms as f32, st.p99_ms), (0.7, 900.0), "nearest rank");
        assert_eq!((st.frames, st.dropped, st.corrupt), (4, 2, 1));
        assert_eq!(st.per_label.values().sum::<u64>(), 1);
        assert!(m.contains("tag_source_reconnects_total 0\n"), "{m}");
        assert!(
            m.contains("tag_verdicts_total{label=\"Flip \\\"Flops\\\"\"} 1\n"),
            "{m}"
        );
    }

    #[test]
    fn health_follows_the_frames_and_the_source() {
        let b = Board::default();
        assert!(b.health().is_err(), "no frame yet");
        b.frame(1.0, 0, 0);
        assert!(b.health().is_ok());
        b.source_failed("camera unplugged");
        assert!(b.health().unwrap_err().contains("camera unplugged"));
        assert!(b.metrics().contains("tag_source_up 0\n"));
    }

    #[test]
    fn recent_verdicts_are_bounded() {
        let b = Board::default();
        for i in 0..(RECENT as u64 + 10) {
            b.verdict(Verdict {
                timestamp: "t".into(),
                frame: i,
                label: "Shoes".into(),
                confidence: 0.9,
                snapshot: None,
                thumbnail: Some(Arc::new(vec![i as u8])),
                tags: String::new(),
            });
        }
        let v = b.verdicts();
        assert_eq!(v.len(), RECENT);
        // Thumbnails only for the verdicts the page lists.
        let last = RECENT as u64 + 9;
        assert_eq!(b.thumbnail(last).unwrap()[0], last as u8);
        assert!(b.thumbnail(last - PAGE_VERDICTS as u64 + 1).is_some());
        assert!(b.thumbnail(last - PAGE_VERDICTS as u64).is_none());
        let st = b.status();
        assert_eq!(st.recent.len(), PAGE_VERDICTS);
        assert_eq!(st.recent[0].verdict.frame, last, "newest first");
        assert_eq!(
            st.recent[0].image.as_deref(),
            Some(&*format!("verdicts/{last}.jpg"))
        );
        assert_eq!(v[0].frame, 10, "oldest dropped first");
        assert!(b
            .metrics()
            .contains("tag_verdicts_total{label=\"Shoes\"} 60\n"));
    }
}
