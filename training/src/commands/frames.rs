//! `training frames`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::Result;
use std::path::PathBuf;
use training::data::split::Split;

/// Render station frames from a split part as image files (deterministic per image): the
/// benchmark's levels at the network's size, whole camera frames with the product in a ROI,
/// a pass-by sequence for `tag watch`, or a picture of samples.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Split part: val (for choices) or test (for reported figures). Never train.
    #[arg(long, value_parser = ["val", "test"], default_value = "val")]
    pub part: String,
    #[arg(long, value_enum, default_value_t = training::scene::Level::Mild)]
    pub level: training::scene::Level,
    /// Folder to write `<id>.jpg` (or `.png`) files and `labels.csv` into.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Frames to write at most (empty: how many empty frames).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Whole WxH camera frames with the product inside this ROI (x,y,width,height
    /// fractions), e.g. `--whole 640x480 --roi 0.3,0.1,0.4,0.8`.
    #[arg(long)]
    pub whole: Option<String>,
    #[arg(long, default_value = "0.265625,0.0833,0.46875,0.8333")]
    pub roi: String,
    /// A pass-by sequence instead: each product for N frames, the empty belt between them
    /// (whole frames, one belt).
    #[arg(long)]
    pub sequence: Option<usize>,
    /// Empty-belt frames before, between and after the products of a sequence.
    #[arg(long, default_value_t = 4)]
    pub gap: usize,
    /// Write a PNG of sample frames (one row per class: catalogue, mirrored, mild, hard,
    /// tray, empty) instead.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Write a PNG of the training-only room scenes instead (one row per class; shoes,
    /// sandals and flip flops mostly as pairs).
    #[arg(long)]
    pub room_grid: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        part,
        level,
        out,
        limit,
        whole,
        roi,
        sequence,
        gap,
        grid,
        room_grid,
    } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    let split = Split::load(&split)?;
    let cache = open_cache(&data, &cache_dir, &split)?;
    let entries = split.part(&part);
    let opts = training::scene::frames::FrameOptions {
        part: &part,
        level,
        limit,
        whole: whole
            .as_deref()
            .map(training::scene::frames::parse_size)
            .transpose()?,
        roi: training::scene::frames::parse_roi(&roi)?,
        sequence,
        gap,
    };
    if let Some(path) = &room_grid {
        let png = training::scene::frames::room_grid(&cache, &split, entries, &part)?;
        training::util::write_atomic(path, &png)?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    if let Some(grid) = grid {
        let png = training::scene::frames::sample_grid(&cache, &split, entries, &part)?;
        training::util::write_atomic(&grid, &png)?;
        eprintln!("wrote {}", grid.display());
        return Ok(());
    }
    let Some(out) = out else {
        return Err(training::error::usage(anyhow::anyhow!(
            "pass --out DIR to write frames (or --grid FILE for a picture)"
        )));
    };
    let written = training::scene::frames::write(&cache, &split, entries, &opts, &out)?;
    eprintln!(
        "wrote {written} frames and labels.csv to {} ({} {} frames of {})",
        out.display(),
        part,
        level.name(),
        if opts.sequence.is_some() {
            "a pass-by sequence"
        } else {
            "the split"
        }
    );
    Ok(())
}
