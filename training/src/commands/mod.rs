//! One module per `training` subcommand, each with its clap `Args` and its `run`; main.rs
//! parses and dispatches.

use anyhow::Result;
use std::path::{Path, PathBuf};
use training::data::cache::ImageCache;
use training::data::negatives::Negatives;
use training::data::split::Split;

pub mod augment_grid;
pub mod calibrate;
pub mod evaluate;
pub mod export;
pub mod finetune;
pub mod frames;
pub mod heads;
pub mod lite;
pub mod negatives;
pub mod probe;
pub mod quantize;
pub mod real;
pub mod report;
pub mod split;
pub mod station;
pub mod train;

/// The options of every command that reads the data set's images: the data set, the split and
/// where decoded images are cached.
#[derive(clap::Args)]
pub struct DataArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "models/split.json")]
    pub split: PathBuf,
    /// Where decoded images are cached.
    #[arg(long, default_value = "runs/cache")]
    pub cache_dir: PathBuf,
}

/// The real photos and their sender split (`training real` makes it), for commands that train.
#[derive(clap::Args)]
pub struct RealArgs {
    #[arg(long, default_value = "../shared/data/real-photos-dev")]
    pub photos: PathBuf,
    #[arg(long, default_value = "models/real-split.json")]
    pub real_split: PathBuf,
    /// Train on the real-train photos too, each this many times (0: not at all).
    #[arg(long, default_value_t = 0)]
    pub real_train_repeat: usize,
}

/// `--resize HxW`: the size the 80x60 input is enlarged to inside the network.
pub fn parse_resize(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--resize `{s}`: expected HxW, e.g. 224x168, each 32 to 640");
    let (h, w) = s.split_once('x').ok_or_else(bad)?;
    let (h, w): (usize, usize) = (h.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
    if !(32..=640).contains(&h) || !(32..=640).contains(&w) {
        return Err(bad());
    }
    Ok((h, w))
}

/// Where a command draws the pictures of the model `name` stored at `model` (an ONNX path): a
/// shipped model (one in models/) gets `docs/img/<name>-<what>.png`, the file the report links;
/// any other gets `<stem>-<what>.png` beside it, so an experiment exported or scored elsewhere
/// cannot overwrite a shipped model's pictures.
pub fn picture_path(model: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let dir = model.parent().unwrap_or(Path::new(""));
    let (dir, base) = if dir.file_name().is_some_and(|d| d == "models") {
        (PathBuf::from("docs/img"), name.to_string())
    } else {
        let stem = model
            .file_stem()
            .map_or(name.into(), |s| s.to_string_lossy());
        (dir.to_path_buf(), stem.into_owned())
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("{base}-{what}.png")))
}

/// The int8 sibling a command scores beside a float model: `<model>.int8.onnx` (QLinearConv),
/// or `<model>.qdq.onnx` where only that form exists (the fine-tuned backbone's).
pub fn int8_sibling(model: &Path) -> PathBuf {
    let qlinear = model.with_extension("int8.onnx");
    let qdq = model.with_extension("qdq.onnx");
    if !qlinear.is_file() && qdq.is_file() {
        qdq
    } else {
        qlinear
    }
}

/// The cache of the split's images.
pub fn open_cache(data: &Path, cache_dir: &Path, split: &Split) -> Result<ImageCache> {
    open_cache_with(data, cache_dir, split, None)
}

/// The cache of the split's images, plus the other kinds when given.
pub fn open_cache_with(
    data: &Path,
    cache_dir: &Path,
    split: &Split,
    negatives: Option<&Negatives>,
) -> Result<ImageCache> {
    let mut ids: Vec<u64> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .map(|e| e.0)
        .collect();
    if let Some(n) = negatives {
        ids.extend(n.train.iter().chain(&n.val).chain(&n.test).map(|e| e.0));
    }
    let cache = ImageCache::open(data, cache_dir, &ids)?;
    eprintln!(
        "image cache {}: {} images{}, {} corrupt (skipped)",
        cache.path.display(),
        cache.len(),
        if cache.rebuilt { " (decoded now)" } else { "" },
        cache.corrupt.len()
    );
    for (id, why) in cache.corrupt.iter().take(5) {
        eprintln!("  skipped {id}: {why}");
    }
    Ok(cache)
}
