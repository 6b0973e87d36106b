//! Running numbers for the stats line: fps, latency percentiles over a bounded window.

use crate::measure::percentile;
use std::collections::VecDeque;
use std::time::Instant;

/// Latencies kept for percentiles: bounded so a week-long run uses the same memory as a minute.
/// The live page (watch/board) uses the same window, so its p50/p99 match the stats line.
pub const WINDOW: usize = 1000;

pub struct Stats {
    latencies_ms: VecDeque<f64>,
    pub processed: u64,
    pub corrupt: u64,
    pub verdicts: u64,
    since: Instant,
    processed_at_since: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latencies_ms: VecDeque::with_capacity(WINDOW),
            processed: 0,
            corrupt: 0,
            verdicts: 0,
            since: Instant::now(),
            processed_at_since: 0,
        }
    }
}

impl Stats {
    pub fn record(&mut self, latency_ms: f64) {
        if self.latencies_ms.len() == WINDOW {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(latency_ms);
        self.processed += 1;
    }

    /// p50 and p99 of the last [`WINDOW`] frames, in ms.
    pub fn percentiles(&self) -> (f64, f64) {
        let mut v: Vec<f64> = self.latencies_ms.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 50.0), percentile(&v, 99.0))
    }

    /// Frames per second since the previous call, and restarts the interval.
    pub fn take_fps(&mut self) -> f64 {
        let secs = self.since.elapsed().as_secs_f64();
        let fps = (self.processed - self.processed_at_since) as f64 / secs.max(1e-9);
        self.since = Instant::now();
        self.processed_at_since = self.processed;
        fps
    }

    pub fn interval_s(&self) -> f64 {
        self.since.elapsed().as_secs_f64()
    }
}

/// Current resident memory (VmRSS) in MiB; 0 where /proc is unavailable.
pub fn rss_mb() -> f64 {
    crate::measure::proc_status_mb("VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_bounded_and_percentiles_follow_it() {
        let mut s = Stats::default();
        for i in 0..5000 {
            s.record(if i < 4000 { 100.0 } else { 1.0 });
        }
        assert_eq!(s.latencies_ms.len(), WINDOW);
        assert_eq!(s.percentiles(), (1.0, 1.0));
        assert_eq!(s.processed, 5000);
    }
}
