//! `tag`: say what fashion product is in each photo.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use tagger::backend::BackendKind;
use tagger::config::{StationConfig, WatchFormat};
use tagger::limits;
use tagger::model::{self, Model};
use tagger::output::{Format, RecordContext, Writer};
use tagger::tagging::{tag_inputs, TagOptions};

/// Exit code when every input was tagged.
const EXIT_OK: i32 = 0;
/// Exit code when some inputs failed (each is reported; the others were still tagged).
const EXIT_SOME_FAILED: i32 = 1;
/// Exit code for usage errors and unusable models.
const EXIT_USAGE: i32 = 2;

const EXAMPLES: &str = "\
Examples:
  tag examples/shoes.jpg                       tag one photo with the built-in model
  tag photos/ --format jsonl > verdicts.jsonl  every image under photos/, as JSON lines
  tag a.jpg b.png --top-k 3 --threshold 0.8    below 80% confidence the label is `unknown`
  cat frame.jpg | tag -                        image bytes on stdin
  tag --model models/tuned.onnx photos/        another exported model
  tag bench --iterations 500 --format json     latency, throughput, memory
  tag watch --source /dev/video0               a camera station (see tag watch --help)

Exit status: 0 all tagged, 1 some inputs failed (the rest are still tagged), 2 usage or model error.";

#[derive(Parser)]
#[command(
    name = "tag",
    about = "Tag fashion product photos (Topwear, Shoes, Bags, Watches, ...) on-device, offline.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    tag: TagArgs,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// ONNX model exported by the training crate (default: the model built into `tag`).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// Inference backend [default: tract].
    #[arg(long, value_enum, global = true)]
    backend: Option<BackendKind>,
    /// Threads for inference, 1 to 64 [default: 1].
    #[arg(long, global = true, value_parser = parse_threads)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
struct TagArgs {
    /// Image files, folders (searched recursively) or `-` for image bytes on stdin.
    inputs: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// How many of the best classes to report (1 to the model's number of classes).
    #[arg(long, default_value_t = 1, value_parser = parse_top_k)]
    top_k: usize,
    /// Below this confidence (0..1) the label is `unknown`: the needs-review path.
    #[arg(long, default_value_t = 0.0)]
    threshold: f32,
    /// Images per inference call when tagging many files (1 to 4096).
    #[arg(long, default_value_t = 32, value_parser = parse_batch_size)]
    batch_size: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure load time, latency percentiles, throughput, peak memory and model size.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Timed inferences (1 to 10,000,000).
        #[arg(long, default_value_t = 200, value_parser = parse_iterations)]
        iterations: usize,
        #[arg(long, value_enum, default_value_t = BenchFormat::Human)]
        format: BenchFormat,
    },
    /// Classify a camera stream continuously; report each product once (see firmware-config/).
    Watch(Box<WatchArgs>),
}

/// `tag bench` output.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum BenchFormat {
    /// Aligned lines for people.
    Human,
    /// One JSON object.
    Json,
}

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tag watch --source /dev/video0 --config firmware-config/raspberry-pi-5.toml
  tag watch --source http://10.0.0.7:8080/video.mjpg --format human
  tag watch --source recorded-shift/ --max-frames 1000 --snapshots snaps/

Command-line options override the config file. Stops cleanly on Ctrl-C or SIGTERM.")]
struct WatchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Frames: /dev/videoN (V4L2), http://host:port/path (MJPEG stream) or a folder of frames
    /// replayed in name order.
    #[arg(long)]
    source: Option<String>,
    /// Station settings (one TOML per device in firmware-config/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop after this many frames from the source.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Output format [default: jsonl].
    #[arg(long, value_enum)]
    format: Option<WatchFormat>,
    /// Confidence (0..1) a frame needs to count towards a product [default: 0.6].
    #[arg(long)]
    threshold: Option<f32>,
    /// Consecutive agreeing frames before a product is reported [default: 3].
    #[arg(long)]
    debounce: Option<usize>,
    /// Region of interest `x,y,width,height` as fractions of the frame, e.g. `0.25,0,0.5,1`.
    #[arg(long)]
    roi: Option<tagger::preprocess::Roi>,
    /// Pace of a folder replay in frames/s (frames are then dropped when inference lags).
    #[arg(long)]
    fps: Option<f32>,
    /// Replay a folder source again and again.
    #[arg(long)]
    repeat: bool,
    /// Save an annotated JPEG of each reported product into this folder.
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Show annotated frames on this Linux framebuffer (e.g. /dev/fb0).
    #[arg(long)]
    framebuffer: Option<PathBuf>,
    /// Write a record for every classified frame, not only for reported products.
    #[arg(long)]
    all_frames: bool,
    /// Seconds between stats lines on stderr [default: 10].
    #[arg(long)]
    stats_interval: Option<f32>,
    /// Stats and summary lines on stderr as JSON.
    #[arg(long)]
    stats_json: bool,
}

/// A whole number within limits.rs's range for `name`.
fn parse_count(s: &str, name: &str, min: usize, max: usize) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    limits::check_range(name, v, min, max)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    parse_count(s, "--threads", 1, limits::MAX_THREADS)
}

fn parse_top_k(s: &str) -> Result<usize, String> {
    // The model's class count is checked once it is loaded.
    parse_count(s, "--top-k", 1, 1000)
}

fn parse_batch_size(s: &str) -> Result<usize, String> {
    parse_count(s, "--batch-size", 1, limits::MAX_BATCH)
}

fn parse_iterations(s: &str) -> Result<usize, String> {
    parse_count(s, "--iterations", 1, limits::MAX_ITERATIONS)
}

/// A flag that Ctrl-C and SIGTERM set (the one handler for the process); if it cannot be
/// installed, `who` warns what is lost.
fn stop_on_signals(who: &str, lost: &str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) =
        ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed))
    {
        eprintln!("{who}: warning: cannot catch Ctrl-C/SIGTERM ({e}); {lost}");
    }
    stop
}

fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let threads = args.threads.unwrap_or(1);
    let backend = args.backend.unwrap_or(BackendKind::Tract);
    match &args.model {
        Some(p) => Model::from_path(p, backend, threads),
        None => Model::embedded(backend, threads),
    }
}

fn long_version() -> String {
    match model::read_info(model::DEFAULT_MODEL_BYTES) {
        Ok(i) => {
            let none = i.labels.iter().any(|l| l == tagger::classify::NONE);
            format!(
                "{} (built-in model: {} v{}, {} classes by {}{}, from {})",
                env!("CARGO_PKG_VERSION"),
                i.name,
                i.version,
                i.labels.len() - none as usize,
                i.label_column,
                if none { " + none (no product)" } else { "" },
                model::DEFAULT_MODEL_FILE
            )
        }
        Err(e) => format!(
            "{} (built-in model unreadable: {e})",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(&*Box::leak(long_version().into_boxed_str()))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // The one place outcomes become exit codes (0/1/2, see EXIT_*).
    let code = match cli.cmd {
        Some(Cmd::Bench {
            model,
            iterations,
            format,
        }) => bench(&model, iterations, format),
        Some(Cmd::Watch(args)) => watch(*args),
        None => tag(cli.tag),
    };
    std::process::ExitCode::from(code as u8)
}

fn bench(args: &ModelArgs, iterations: usize, format: BenchFormat) -> i32 {
    let threads = args.threads.unwrap_or(1);
    let backend = args.backend.unwrap_or(BackendKind::Tract);
    // Ctrl-C ends the timing early and still prints the report of what was measured.
    let stop = stop_on_signals("tag bench", "Ctrl-C ends it without a report");
    match tagger::bench::run(|| load_model(args), backend, threads, iterations, &stop) {
        Ok(r) => {
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
                println!("load         {:.1} ms", r.load_ms);
                println!(
                    "latency      p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  ({} runs, batch 1)",
                    r.p50_ms, r.p90_ms, r.p99_ms, r.iterations
                );
                println!("throughput   {:.0} images/s", r.images_per_s);
                println!("peak RSS     {:.1} MiB", r.peak_rss_mb);
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("tag: error: {e:#}");
            EXIT_USAGE
        }
    }
}

fn tag(args: TagArgs) -> i32 {
    if args.inputs.is_empty() {
        eprintln!("tag: error: no input given; name image files, folders or `-` (see tag --help)");
        return EXIT_USAGE;
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        eprintln!("tag: error: --threshold must be between 0 and 1");
        return EXIT_USAGE;
    }
    let model = match load_model(&args.model) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tag: error: {e:#}");
            return EXIT_USAGE;
        }
    };
    if args.top_k > model.classes() {
        eprintln!(
            "tag: error: --top-k {} is more than the model's {} classes",
            args.top_k,
            model.classes()
        );
        return EXIT_USAGE;
    }
    let inputs = tagger::inputs::expand(&args.inputs);
    if inputs.is_empty() {
        eprintln!("tag: error: no images found in the given folders (looked for .jpg .jpeg .png .webp .bmp)");
        return EXIT_SOME_FAILED;
    }
    let opts = TagOptions {
        top_k: args.top_k,
        threshold: args.threshold,
        batch_size: args.batch_size,
    };
    let ctx = RecordContext {
        model: &format!("{} v{}", model.info.name, model.info.version),
        backend: model.backend_name(),
    };
    let stdout = std::io::stdout();
    let mut out = match Writer::new(stdout.lock(), args.format) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("tag: error: cannot write output: {e}");
            return EXIT_SOME_FAILED;
        }
    };
    let bar = if inputs.len() > 1 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(inputs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut failed, mut write_error) = (0usize, None);
    tag_inputs(&model, &inputs, &opts, |r| {
        if r.outcome.is_err() {
            failed += 1;
        }
        bar.suspend(|| {
            if let Err(e) = out.write(&r, &ctx) {
                write_error = Some(e);
            }
        });
        bar.inc(1);
        // Nobody reads any more (`tag photos/ | head -1`, a full disk): stop working.
        if write_error.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        // A reader that closed the pipe got what it wanted: quiet success, like ripgrep.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return EXIT_OK;
        }
        eprintln!("tag: error: cannot write output: {e}");
        return EXIT_SOME_FAILED;
    }
    if failed > 0 {
        if inputs.len() > 1 {
            eprintln!("tag: {failed} of {} inputs failed", inputs.len());
        }
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

/// The config file, then the command line on top (config.rs), validated once both apply.
fn watch_config(args: &WatchArgs) -> anyhow::Result<StationConfig> {
    let m = &args.model;
    StationConfig::resolve(
        args.config.as_deref(),
        tagger::config::Overrides {
            model: m.model.clone(),
            backend: m.backend,
            threads: m.threads,
            source: args.source.clone(),
            fps: args.fps,
            repeat: args.repeat,
            format: args.format,
            all_frames: args.all_frames,
            stats_json: args.stats_json,
            stats_interval_s: args.stats_interval,
            threshold: args.threshold,
            debounce: args.debounce,
            snapshots: args.snapshots.clone(),
            framebuffer: args.framebuffer.clone(),
            roi: args.roi,
        },
    )
}

fn watch(args: WatchArgs) -> i32 {
    let cfg = match watch_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tag watch: error: {e:#}");
            return EXIT_USAGE;
        }
    };
    let Some(source) = cfg.source.uri.clone() else {
        eprintln!("tag watch: error: no frame source; give --source (/dev/video0, http://..., a folder) or source.uri in the config");
        return EXIT_USAGE;
    };
    let model_args = ModelArgs {
        model: cfg.model.path.clone(),
        backend: Some(cfg.model.backend),
        threads: Some(cfg.model.threads),
    };
    let model = match load_model(&model_args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tag watch: error: {e:#}");
            return EXIT_USAGE;
        }
    };
    // Ctrl-C and SIGTERM: finish the frame in hand, flush, print the summary, exit 0.
    let stop = stop_on_signals("tag watch", "a stop may lose the last line");
    let mut out: Box<dyn std::io::Write> = match &cfg.output.path {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("tag watch: error: cannot open output {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    eprintln!(
        "tag watch: {} v{} on {} x{}, source {}",
        model.info.name,
        model.info.version,
        model.backend_name(),
        cfg.model.threads,
        tagger::watch::mjpeg::redacted(&source)
    );
    let opts = tagger::watch::WatchOptions {
        config: &cfg,
        source: &source,
        max_frames: args.max_frames,
        stop,
    };
    match tagger::watch::run(&model, &opts, &mut out) {
        Ok(s) => {
            if cfg.output.stats_json {
                let mut v = serde_json::to_value(&s).expect("summary serialises");
                v["event"] = "summary".into();
                eprintln!("{v}");
            } else {
                eprintln!(
                    "tag watch: done: {} frames captured, {} classified, {} dropped, {} corrupt, {} products in {:.1} s (p50 {:.2} ms, p99 {:.2} ms)",
                    s.captured, s.processed, s.dropped, s.corrupt, s.verdicts, s.seconds, s.p50_ms, s.p99_ms
                );
            }
            match s.source_error {
                Some(e) => {
                    eprintln!("tag watch: error: source failed: {e}");
                    EXIT_SOME_FAILED
                }
                None => EXIT_OK,
            }
        }
        Err(e) => {
            eprintln!("tag watch: error: {e:#}");
            EXIT_USAGE
        }
    }
}
