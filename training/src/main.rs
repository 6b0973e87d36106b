//! `training`: the command line of the training crate. This file parses and dispatches; each
//! subcommand is a module in commands/.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Train, evaluate, export and quantize the fashion tagger CNNs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the data, keep frequent classes and write a deterministic train/val/test split.
    Split(commands::split::Args),
    /// Train one model on a split; checkpoints every epoch, `--resume` continues a killed run.
    Train(commands::train::Args),
    /// Score a run's best checkpoint on train/val/test: metrics.json, curves and confusion PNGs.
    Evaluate(commands::evaluate::Args),
    /// Export a run's best checkpoint to ONNX (BN folded, metadata, checked against tract) and
    /// write its model card `<out>.json`; plots are copied to docs/img.
    Export(commands::export::Args),
    /// Split the products of other kinds (every class the split leaves out) train/val/test, for
    /// station training (negatives) and for measuring how often they stay unreported.
    Negatives(commands::negatives::Args),
    /// Render station frames from a split part as image files (deterministic per image): the
    /// benchmark's levels at the network's size, whole camera frames with the product in a ROI,
    /// a pass-by sequence for `tag watch`, or a picture of samples.
    Frames(commands::frames::Args),
    /// Score an exported model (and its int8 sibling) on station frames of val and test into
    /// its model card: catalogue, mirrored, mild, hard, tray, empty frames, other kinds.
    Station(commands::station::Args),
    /// Score a multi-head model's extra heads (article type, colour, gender, usage) on test
    /// photos and station frames into its model card, with the article-type confusion matrix.
    Heads(commands::heads::Args),
    /// Fit a temperature on val station frames (lowest NLL) and fold it into a float model's head
    /// (onnx/temperature.rs); the card gets a `temperature` section. Run after `export`, before
    /// `quantize` and `station`.
    Calibrate(commands::calibrate::Args),
    /// Write a PNG grid of training images next to augmented copies of them.
    AugmentGrid(commands::augment_grid::Args),
    /// Write docs/REPORT.md (and its plots) from the model cards and the saved training logs.
    Report(commands::report::Args),
    /// Train a head on the frozen pretrained EfficientNet-Lite0 (cached features of fixed views
    /// of the training photos) and write backbone and head as one ONNX model.
    Probe(commands::probe::Args),
    /// Fine-tune the pretrained EfficientNet-Lite0 (all but its first blocks) on station frames,
    /// catalogue photos and optionally real-train photos; checkpoints every epoch (`--resume`).
    Lite(commands::lite::Args),
    /// Adapt an exported EfficientNet-Lite0 model to a station's labelled photos (a collection
    /// labelled in `tag review`, or a real-photo folder) mixed with the usual training data;
    /// before/after card, refuses a model that lost more than a margin on catalogue photos.
    Finetune(commands::finetune::Args),
    /// Score exported models (and their int8 siblings) on real photos per group (Topwear,
    /// Bottomwear, Footwear, other kinds) into their cards; splits the photos by sender on first
    /// use (models/real-split.json).
    Real(commands::real::Args),
    /// Quantize an exported float model to int8 (QLinearConv), calibrated on training images,
    /// then score float and int8 side by side on val and test (into the model card).
    Quantize(commands::quantize::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.cmd {
        Cmd::Split(args) => commands::split::run(args),
        Cmd::Train(args) => commands::train::run(args),
        Cmd::Evaluate(args) => commands::evaluate::run(args),
        Cmd::Export(args) => commands::export::run(args),
        Cmd::Negatives(args) => commands::negatives::run(args),
        Cmd::Frames(args) => commands::frames::run(args),
        Cmd::Station(args) => commands::station::run(args),
        Cmd::Heads(args) => commands::heads::run(args),
        Cmd::Calibrate(args) => commands::calibrate::run(args),
        Cmd::AugmentGrid(args) => commands::augment_grid::run(args),
        Cmd::Report(args) => commands::report::run(args),
        Cmd::Quantize(args) => commands::quantize::run(args),
        Cmd::Real(args) => commands::real::run(args),
        Cmd::Probe(args) => commands::probe::run(args),
        Cmd::Lite(args) => commands::lite::run(args),
        Cmd::Finetune(args) => commands::finetune::run(args),
    };
    // The one place outcomes become exit codes: 0 done, 2 usage or data errors (the message
    // says what to fix), 1 anything else. Clap's own usage errors exit 2 too.
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(training::error::exit_code(&e))
        }
    }
}
