//! `training split`: see [`Args`] for what it does and its options.

use anyhow::Result;
use std::path::PathBuf;
use training::data::split::{Split, SplitOptions};

/// Load the data, keep frequent classes and write a deterministic train/val/test split.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset directory: styles.csv + images/{id}.jpg (or train.csv + test.csv + images/).
    #[arg(long)]
    pub data: PathBuf,
    /// Column to classify by: subCategory, masterCategory or articleType.
    #[arg(long, default_value = "subCategory")]
    pub label_column: String,
    /// Keep classes with at least this many images (700 keeps the 13 largest subCategories
    /// in both the Kaggle set and this project's copy; see training/README.md).
    #[arg(long, default_value_t = 700)]
    pub min_images: usize,
    #[arg(long, default_value_t = 2024)]
    pub seed: u64,
    #[arg(long, default_value = "models/split.json")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        data,
        label_column,
        min_images,
        seed,
        out,
    } = args;
    let split = Split::create(
        &data,
        &SplitOptions {
            seed,
            label_column,
            min_images,
            val_fraction: 0.1,
            test_fraction: 0.1,
        },
    )?;
    split.save(&out)?;
    eprintln!(
        "split {}: {} classes, train {} / val {} / test {}; {} duplicate groups kept \
         together; skipped {} rows without image, {} bad rows, {} images of rare classes",
        out.display(),
        split.labels.len(),
        split.train.len(),
        split.val.len(),
        split.test.len(),
        split.duplicate_groups,
        split.missing_images,
        split.bad_rows,
        split.rare_class_images
    );
    let counts = Split::counts(&split.train, split.labels.len());
    for (l, c) in split.labels.iter().zip(counts) {
        eprintln!("  {l:<12} train {c}");
    }
    Ok(())
}
