//! `training station`: see [`Args`] for what it does and its options.

use super::open_cache_with;
use anyhow::Result;
use std::path::{Path, PathBuf};
use training::data::negatives::Negatives;
use training::data::split::Split;

/// Score an exported model (and its int8 sibling) on station frames of val and test into
/// its model card: catalogue, mirrored, mild, hard, tray, empty frames, other kinds.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long, default_value = "models/negatives.json")]
    pub negatives: PathBuf,
    /// Float ONNX model; `<model>.int8.onnx` (or `.qdq.onnx`) is scored too when present.
    #[arg(long)]
    pub model: PathBuf,
    /// Empty frames per part.
    #[arg(long, default_value_t = 1000)]
    pub empties: usize,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        negatives,
        model,
        empties,
    } = args;
    let super::DataArgs {
        data,
        split: split_file,
        cache_dir,
    } = input;
    station_cmd(&data, &split_file, &negatives, &model, empties, &cache_dir)
}

/// `training station`: scores the float model and its int8 sibling on val and test station
/// frames and writes the figures into the model card's `station` section.
fn station_cmd(
    data: &Path,
    split_file: &Path,
    negatives: &Path,
    model: &Path,
    empties: usize,
    cache_dir: &Path,
) -> Result<()> {
    use tagger_core::backend::BackendKind;
    use training::eval::runner::score;
    let split = Split::load(split_file)?;
    let neg = Negatives::load(negatives, split_file)?;
    let cache = open_cache_with(data, cache_dir, &split, Some(&neg))?;
    let int8_path = super::int8_sibling(model);
    let mut section = training::report::card::StationSection::default();
    for (key, path) in [("float", model.to_path_buf()), ("int8", int8_path)] {
        if !path.is_file() {
            continue;
        }
        let m = tagger_core::model::Model::from_path(&path, BackendKind::Tract, 1)?;
        if !m.info.labels.starts_with(&split.labels) {
            return Err(training::error::data(anyhow::anyhow!(
                "{} was trained on other labels than {}",
                path.display(),
                split_file.display()
            )));
        }
        for part in ["val", "test"] {
            let entries = split.part(part);
            let started = std::time::Instant::now();
            let s = score(&m, part, entries, &neg.ids(part), empties, &cache)?;
            eprintln!(
                "{} {part}: catalogue {:.4} mirrored {:.4} mild {:.4} hard {:.4} tray {:.4} | \
                 empty as product {:.4} | other kinds unreported {} | right above {:.2}: {:.4} \
                 ({:.0}s)",
                path.display(),
                s.catalogue,
                s.mirrored,
                s.mild,
                s.hard,
                s.tray,
                s.empty_as_product,
                s.others_not_reported
                    .map_or("-".into(), |v| format!("{v:.4}")),
                s.threshold,
                s.catalogue_right_above_threshold,
                started.elapsed().as_secs_f64()
            );
            *match (key, part) {
                ("float", "val") => &mut section.float_val,
                ("float", _) => &mut section.float_test,
                (_, "val") => &mut section.int8_val,
                _ => &mut section.int8_test,
            } = Some(s);
        }
    }
    section.reproduce = Some(format!(
            "cargo run --release -p training -- station --data ../shared/data/fashion-product-images-small --split {} --negatives {} --model {} --empties {empties}",
            split_file.display(),
            negatives.display(),
            model.display()
    ));
    match training::report::card::update(model, |c| c.station = Some(section))? {
        Some(card) => eprintln!("station figures written to {}", card.display()),
        None => eprintln!("{} has no model card: figures not saved", model.display()),
    }
    Ok(())
}
