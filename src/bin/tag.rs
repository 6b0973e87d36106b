//! `tag`: say what fashion product is in each photo.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use tagger::backend::BackendKind;
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
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Tract, global = true)]
    backend: BackendKind,
    /// Threads for inference.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
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
    /// How many of the best classes to report.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Below this confidence (0..1) the label is `unknown`: the needs-review path.
    #[arg(long, default_value_t = 0.0)]
    threshold: f32,
    /// Images per inference call when tagging many files.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure load time, latency percentiles, throughput, peak memory and model size.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// `human` or `json`.
        #[arg(long, default_value = "human")]
        format: String,
    },
}

fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let threads = args.threads.max(1);
    match &args.model {
        Some(p) => Model::from_path(p, args.backend, threads),
        None => Model::embedded(args.backend, threads),
    }
}

fn long_version() -> String {
    match model::read_info(model::DEFAULT_MODEL_BYTES) {
        Ok(i) => format!(
            "{} (built-in model: {} v{}, {} classes by {}, from {})",
            env!("CARGO_PKG_VERSION"),
            i.name,
            i.version,
            i.labels.len(),
            i.label_column,
            model::DEFAULT_MODEL_FILE
        ),
        Err(e) => format!(
            "{} (built-in model unreadable: {e})",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

fn main() {
    let matches = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(&*Box::leak(long_version().into_boxed_str()))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    std::process::exit(match cli.cmd {
        Some(Cmd::Bench {
            model,
            iterations,
            format,
        }) => bench(&model, iterations, &format),
        None => tag(cli.tag),
    });
}

fn bench(args: &ModelArgs, iterations: usize, format: &str) -> i32 {
    if format != "human" && format != "json" {
        eprintln!("tag: error: --format for bench is `human` or `json`, not `{format}`");
        return EXIT_USAGE;
    }
    let threads = args.threads.max(1);
    match tagger::bench::run(|| load_model(args), args.backend, threads, iterations) {
        Ok(r) => {
            if format == "json" {
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
    let inputs = tagger::inputs::expand(&args.inputs);
    if inputs.is_empty() {
        eprintln!("tag: error: no images found in the given folders (looked for .jpg .jpeg .png .webp .bmp)");
        return EXIT_SOME_FAILED;
    }
    let opts = TagOptions {
        top_k: args.top_k.max(1),
        threshold: args.threshold,
        batch_size: args.batch_size.max(1),
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
        if write_error.is_none() {
            bar.suspend(|| {
                if let Err(e) = out.write(&r, &ctx) {
                    write_error = Some(e);
                }
            });
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tag: error: cannot write output: {e}");
        }
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
