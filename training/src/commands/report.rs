//! `training report`: see [`Args`] for what it does and its options.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// Write docs/REPORT.md (and its plots) and README's model table from the model cards and the
/// saved training logs.
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
    /// The README whose model table is rewritten (between its marker lines).
    #[arg(long, default_value = "README.md")]
    pub readme: PathBuf,
    /// The model compiled into `tag` (src/builtin.rs), marked in the table.
    #[arg(long, default_value = "lite0-distilled-112-e16-seed2")]
    pub builtin: String,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        runs,
        models,
        data_dir,
        docs,
        readme,
        builtin,
    } = args;
    let copied = training::report::collect(&runs, &data_dir)?;
    eprintln!(
        "copied {copied} training logs from {} into {}",
        runs.display(),
        data_dir.display()
    );
    let out = training::report::write(&models, &data_dir, &docs)?;
    eprintln!("wrote {}", out.display());
    let cards = training::report::readme::shipped(&models)?;
    let table = training::report::readme::table(&cards, &builtin)?;
    let text = std::fs::read_to_string(&readme)
        .with_context(|| format!("cannot read {}", readme.display()))?;
    training::util::write_atomic(
        &readme,
        training::report::readme::splice(&text, &table)?.as_bytes(),
    )?;
    eprintln!("wrote the model table of {}", readme.display());
    Ok(())
}
