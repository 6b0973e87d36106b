//! `tag`: say what fashion product is in each photo. This file parses the command line,
//! dispatches to one module per subcommand and turns their outcome into the exit code; the work
//! is in the `tagger` library.

mod bench;
#[cfg(feature = "onnx")]
mod convert;
mod files;
mod review;
mod shared;
mod watch;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use tagger::error::Error;
use tagger::model;

const EXAMPLES: &str = "\
Examples:
  tag examples/shoes.jpg                       tag one photo with the built-in model
  tag photos/ --format jsonl > verdicts.jsonl  every image under photos/, as JSON lines
  tag a.jpg b.png --top-k 3 --threshold 0.8    below 80% confidence the label is `unknown`
  cat frame.jpg | tag -                        image bytes on stdin
  tag --model models/tuned.onnx photos/        another exported model
  tag bench --iterations 500 --format json     latency, throughput, memory
  tag watch --source /dev/video0               a camera station (see tag watch --help)
  tag review collected/                        label what a station collected, in a browser
  tag convert models/my.onnx                   the NNEF form the station build runs

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
    tag: files::TagArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure load time, latency percentiles, throughput, peak memory and model size.
    Bench(bench::BenchArgs),
    /// Classify a camera stream continuously; report each product once (see firmware-config/).
    Watch(Box<watch::WatchArgs>),
    /// Label the frames a station collected (`tag watch --collect`) in a browser.
    Review(review::ReviewArgs),
    /// Write a model's NNEF form, which the station build of `tag` runs.
    #[cfg(feature = "onnx")]
    Convert(convert::ConvertArgs),
}

fn long_version() -> String {
    match tagger::builtin::bytes().and_then(model::read_info) {
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
                tagger::builtin::MODEL_FILE
            )
        }
        Err(_) if !cfg!(feature = "builtin") => format!(
            "{} (station build: no built-in model, {} models only)",
            env!("CARGO_PKG_VERSION"),
            if cfg!(feature = "onnx") {
                "ONNX and NNEF"
            } else {
                "NNEF"
            }
        ),
        Err(e) => format!("{} ({e:#})", env!("CARGO_PKG_VERSION")),
    }
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(&*Box::leak(long_version().into_boxed_str()))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let (who, outcome) = match cli.cmd {
        Some(Cmd::Bench(args)) => ("tag", bench::run(&args)),
        Some(Cmd::Watch(args)) => ("tag watch", watch::run(*args)),
        Some(Cmd::Review(args)) => ("tag review", review::run(args)),
        #[cfg(feature = "onnx")]
        Some(Cmd::Convert(args)) => ("tag convert", convert::run(args)),
        None => ("tag", files::run(cli.tag)),
    };
    exit_code(who, outcome)
}

/// The one place outcomes become exit codes: 0 all done, 1 some inputs failed (the rest were
/// done), 2 usage, configuration or model errors (README). Clap's own usage errors exit 2 too.
fn exit_code(who: &str, outcome: Result<(), Error>) -> ExitCode {
    let e = match outcome {
        Ok(()) => return ExitCode::SUCCESS,
        // A reader that closed the pipe got what it wanted: quiet success, like ripgrep.
        Err(e) if e.is_closed_pipe() => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    match &e {
        // Each failed input was reported as it happened; a count helps only for several.
        Error::Inputs { total, .. } if *total > 1 => eprintln!("{who}: {e}"),
        Error::Inputs { .. } => {}
        _ => eprintln!("{who}: error: {e}"),
    }
    ExitCode::from(e.exit_code())
}
