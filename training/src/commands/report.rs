//! `training report`: see [`Args`] for what it does and its options.

use anyhow::Result;
use std::path::PathBuf;

/// Write docs/REPORT.md (and its plots) from the model cards and the saved training logs.
#[derive(clap::Args)]
pub struct Args {
    /// Run folders to copy per-epoch logs from (missing runs: the copies in --data-dir).
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Where the per-epoch logs are kept in the repository.
    #[arg(long, default_value = "docs/data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "docs")]
    pub docs: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        runs,
        models,
        data_dir,
        docs,
    } = args;
    let copied = training::report::collect(&runs, &data_dir)?;
    eprintln!(
        "copied {copied} training logs from {} into {}",
        runs.display(),
        data_dir.display()
    );
    let out = training::report::write(&models, &data_dir, &docs)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
