//! `tag bench`: load time, latency percentiles, throughput, peak memory.

use crate::shared::{load_model, parse_count, stop_on_signals, ModelArgs};
use tagger::backend::BackendKind;
use tagger::error::Error;
use tagger::limits;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Timed inferences (1 to 10,000,000).
    #[arg(long, default_value_t = 200, value_parser = parse_iterations)]
    iterations: usize,
    #[arg(long, value_enum, default_value_t = BenchFormat::Human)]
    format: BenchFormat,
}

/// `tag bench` output.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum BenchFormat {
    /// Aligned lines for people.
    Human,
    /// One JSON object.
    Json,
}

fn parse_iterations(s: &str) -> Result<usize, String> {
    parse_count(s, "--iterations", 1, limits::MAX_ITERATIONS)
}

pub fn run(a: &BenchArgs) -> Result<(), Error> {
    let (args, iterations, format) = (&a.model, a.iterations, a.format);
    let threads = args.threads.unwrap_or(1);
    let backend = args.backend.unwrap_or(BackendKind::Tract);
    // Ctrl-C ends the timing early and still prints the report of what was measured.
    let stop = stop_on_signals("tag bench", "Ctrl-C ends it without a report");
    let r = tagger::bench::run(|| load_model(args), backend, threads, iterations, &stop)
        .map_err(Error::Model)?;
    if r.iterations < iterations {
        eprintln!(
            "tag bench: stopped after {} of {iterations} iterations",
            r.iterations
        );
    }
    if format == BenchFormat::Json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
    } else {
        println!("model        {} ({} bytes)", r.model, r.model_bytes);
        println!("backend      {} x{} thread(s)", r.backend, r.threads);
        if let Some(k) = &r.kernels {
            println!("kernels      {k}");
        }
        println!("load         {:.1} ms", r.load_ms);
        println!(
            "latency      p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  ({} runs, batch 1)",
            r.p50_ms, r.p90_ms, r.p99_ms, r.iterations
        );
        println!("throughput   {:.0} images/s", r.images_per_s);
        println!("peak RSS     {:.1} MiB", r.peak_rss_mb);
    }
    Ok(())
}
