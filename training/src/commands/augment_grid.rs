//! `training augment-grid`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::Result;
use std::path::PathBuf;
use training::data::split::Split;
use training::fit::augment::Augment;

/// Write a PNG grid of training images next to augmented copies of them.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long, default_value = "docs/img/augmentation.png")]
    pub out: PathBuf,
    /// Rows (one image each, taken from different classes).
    #[arg(long, default_value_t = 6)]
    pub rows: usize,
    #[arg(long, default_value_t = 5)]
    pub variants: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        out,
        rows,
        variants,
        seed,
    } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    let split = Split::load(&split)?;
    let cache = open_cache(&data, &cache_dir, &split)?;
    // The first training image of each of `rows` classes.
    let mut picked: Vec<&[u8]> = vec![];
    for class in 0..split.labels.len() {
        if picked.len() == rows {
            break;
        }
        if let Some(img) = split
            .train
            .iter()
            .find(|e| e.1 == class)
            .and_then(|e| cache.get(e.0))
        {
            picked.push(img);
        }
    }
    let grid = training::fit::augment::sample_grid(&picked, &Augment::default(), variants, seed);
    let mut png = vec![];
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    training::util::write_atomic(&out, &png)?;
    eprintln!("wrote {} (left column: originals)", out.display());
    Ok(())
}
