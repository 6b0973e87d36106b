//! `training evaluate`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::Result;
use std::path::PathBuf;
use training::data::split::Split;
use training::fit::RunPaths;

/// Score a run's best checkpoint on train/val/test: metrics.json, curves and confusion PNGs.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Run directory written by `train`.
    #[arg(long)]
    pub run: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args { input, run } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    let split = Split::load(&split)?;
    let cache = open_cache(&data, &cache_dir, &split)?;
    let m = training::eval::evaluate::evaluate(&RunPaths::new(&run), &split, &cache)?;
    eprintln!("{:<6} {:>9} {:>9}", "split", "accuracy", "macro-F1");
    for (name, x) in [("train", &m.train), ("val", &m.val), ("test", &m.test)] {
        eprintln!("{name:<6} {:>9.4} {:>9.4}", x.accuracy, x.macro_f1);
    }
    eprintln!("metrics and plots written to {}", run.display());
    Ok(())
}
