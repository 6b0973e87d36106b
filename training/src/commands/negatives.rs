//! `training negatives`: see [`Args`] for what it does and its options.

use anyhow::Result;
use std::path::PathBuf;
use training::data::negatives::Negatives;
use training::data::split::Split;

/// Split the products of other kinds (every class the split leaves out) train/val/test, for
/// station training (negatives) and for measuring how often they stay unreported.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "models/split.json")]
    pub split: PathBuf,
    #[arg(long, default_value_t = 2024)]
    pub seed: u64,
    #[arg(long, default_value = "models/negatives.json")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        data,
        split: split_file,
        seed,
        out,
    } = args;
    let split = Split::load(&split_file)?;
    let n = Negatives::create(&data, &split, &split_file, seed)?;
    n.save(&out)?;
    eprintln!(
        "negatives {}: {} kinds, train {} / val {} / test {}; {} left out (same bytes as a \
         split image)",
        out.display(),
        n.kinds.len(),
        n.train.len(),
        n.val.len(),
        n.test.len(),
        n.shared_with_split
    );
    Ok(())
}
