//! `tag bench`: model load time, latency percentiles, throughput, peak memory and model size,
//! in the spirit of TFLite's benchmark_model.

use crate::backend::BackendKind;
use crate::measure::{peak_rss_mb, percentile};
use crate::model::Model;
use crate::preprocess::IMAGE_LEN;
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub backend: String,
    pub threads: usize,
    pub iterations: usize,
    pub load_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub images_per_s: f64,
    pub peak_rss_mb: f64,
    pub model_bytes: usize,
    /// The project's own kernels the backend ran (e.g. the depthwise convolution), if any.
    pub kernels: Option<String>,
}

/// Loads the model (timed) and runs `iterations` single-image inferences after a warm-up.
/// Loads with `load`, warms up, then times up to `iterations` single-image inferences; when
/// `stop` is set (Ctrl-C) the report covers the iterations done so far.
pub fn run(
    load: impl FnOnce() -> Result<Model>,
    kind: BackendKind,
    threads: usize,
    iterations: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<BenchReport> {
    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    let model = load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    // A fixed, image-like input: the values do not change the work a CNN does.
    let input: Vec<f32> = (0..IMAGE_LEN)
        .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
        .collect();
    for _ in 0..iterations.clamp(1, 20) {
        model.logits(&input, 1)?;
    }
    let mut times = Vec::with_capacity(iterations.min(1 << 20));
    for _ in 0..iterations.max(1) {
        if stopped() && !times.is_empty() {
            break;
        }
        let t = Instant::now();
        model.logits(&input, 1)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    times.sort_by(f64::total_cmp);
    Ok(BenchReport {
        model: model.source.clone(),
        backend: kind.to_string(),
        threads,
        iterations: times.len(),
        load_ms,
        p50_ms: percentile(&times, 50.0),
        p90_ms: percentile(&times, 90.0),
        p99_ms: percentile(&times, 99.0),
        images_per_s: 1e3 / mean,
        peak_rss_mb: peak_rss_mb(),
        model_bytes: model.bytes_len,
        kernels: model.kernels(),
    })
}
