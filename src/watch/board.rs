//! What the station's HTTP endpoints show: counters, recent verdicts and a latency histogram,
//! updated by the inference loop and read by the server threads. One short lock per frame; a
//! reader copies what it needs and renders outside the lock, so a slow client never holds it.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recent verdicts kept for `/verdicts` (bounded: a week-long run uses the same memory).
pub const RECENT: usize = 50;
/// Upper bounds (ms) of the latency histogram buckets, Prometheus-style (cumulative, + `+Inf`).
pub const LATENCY_BUCKETS_MS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0];
/// `/healthz` says 503 when no frame was classified for this long.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub timestamp: String,
    pub frame: u64,
    pub label: String,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
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
}

/// The live station state behind `/metrics`, `/healthz` and `/verdicts`.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
}

impl Board {
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
            s.last_frame = Some(Instant::now());
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
        })
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

    /// Prometheus text exposition format 0.0.4.
    pub fn metrics(&self) -> String {
        let (frames, dropped, corrupt, per_label, buckets, sum, up) = self.with(|s| {
            (
                s.frames,
                s.dropped,
                s.corrupt,
                s.per_label.clone(),
                s.buckets,
                s.latency_sum_ms,
                s.source_failed.is_none(),
            )
        });
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        };
        metric(
            "tag_frames_total",
            "counter",
            "Frames classified.",
            vec![format!("tag_frames_total {frames}")],
        );
        metric(
            "tag_frames_dropped_total",
            "counter",
            "Frames dropped because inference was busy with an earlier one.",
            vec![format!("tag_frames_dropped_total {dropped}")],
        );
        metric(
            "tag_frames_corrupt_total",
            "counter",
            "Frames skipped as undecodable.",
            vec![format!("tag_frames_corrupt_total {corrupt}")],
        );
        metric(
            "tag_verdicts_total",
            "counter",
            "Products reported, by label.",
            per_label
                .iter()
                .map(|(l, n)| format!("tag_verdicts_total{{label=\"{}\"}} {n}", escape(l)))
                .collect(),
        );
        let mut cumulative = 0;
        let mut lines: Vec<String> = LATENCY_BUCKETS_MS
            .iter()
            .zip(&buckets)
            .map(|(le, n)| {
                cumulative += n;
                format!("tag_latency_ms_bucket{{le=\"{le}\"}} {cumulative}")
            })
            .collect();
        lines.push(format!("tag_latency_ms_bucket{{le=\"+Inf\"}} {frames}"));
        lines.push(format!("tag_latency_ms_sum {sum}"));
        lines.push(format!("tag_latency_ms_count {frames}"));
        metric(
            "tag_latency_ms",
            "histogram",
            "Capture to verdict per frame, in milliseconds.",
            lines,
        );
        metric(
            "tag_source_up",
            "gauge",
            "1 while the frame source is usable, 0 once it failed for good.",
            vec![format!("tag_source_up {}", up as u8)],
        );
        out
    }
}

/// A label value as the exposition format wants it (backslash, quote and newline escaped).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        });
        let m = b.metrics();
        assert!(m.contains("tag_latency_ms_bucket{le=\"0.5\"} 1\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"1\"} 2\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"500\"} 3\n"), "{m}");
        assert!(m.contains("tag_latency_ms_bucket{le=\"+Inf\"} 4\n"), "{m}");
        assert!(m.contains("tag_latency_ms_count 4\n"), "{m}");
        assert!(m.contains("tag_frames_dropped_total 2\n"), "{m}");
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
            });
        }
        let v = b.verdicts();
        assert_eq!(v.len(), RECENT);
        assert_eq!(v[0].frame, 10, "oldest dropped first");
        assert!(b
            .metrics()
            .contains("tag_verdicts_total{label=\"Shoes\"} 60\n"));
    }
}
