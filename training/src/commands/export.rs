//! `training export`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use training::data::split::Split;
use training::fit::{RunPaths, TrainConfig};
use training::model::Layer;
use training::report::card::ModelCard;

/// Export a run's best checkpoint to ONNX (BN folded, metadata, checked against tract) and
/// write its model card `<out>.json`; plots are copied to docs/img.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long)]
    pub run: PathBuf,
    /// ONNX file to write, e.g. models/baseline.onnx.
    #[arg(long)]
    pub out: PathBuf,
    /// Version stored in the model's metadata.
    #[arg(long, default_value = "1")]
    pub version: String,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        run,
        out,
        version,
    } = args;
    let super::DataArgs {
        data,
        split: split_file,
        cache_dir,
    } = input;
    let split = Split::load(&split_file)?;
    let cache = open_cache(&data, &cache_dir, &split)?;
    let paths = RunPaths::new(&run);
    let metrics: training::eval::metrics::SplitMetrics =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).with_context(|| {
            format!(
                "{} has no metrics.json: run `training evaluate --run {}` first",
                run.display(),
                run.display()
            )
        })?)?;
    let check = training::eval::evaluate::export(&paths, &version, &split, &cache, &out)?;
    eprintln!(
        "wrote {}: tract matches burn within {:.2e} on {} test images",
        out.display(),
        check.max_abs_logit_diff_tract_vs_burn,
        check.images
    );
    let (cfg, _) = paths.read()?;
    let reproduce = reproduce_commands(&cfg, &split_file, &run, &out);
    let card = training::eval::evaluate::model_card(
        &paths,
        &version,
        &split,
        &split_file,
        &out,
        metrics,
        check,
        reproduce,
    )?;
    let card_path = ModelCard::path_for(&out);
    let previous = if card_path.is_file() {
        Some(ModelCard::load(&card_path)?)
    } else {
        None
    };
    let (card, redo) = ModelCard::exported(card, previous);
    for command in redo {
        eprintln!(
            "{}: the model changed, its `{command}` figures are dropped: run `training {command}` again",
            card_path.display()
        );
    }
    card.save(&card_path)?;
    for (from, to) in [
        ("curves.png", "curves"),
        ("confusion_test.png", "confusion"),
    ] {
        let src = run.join(from);
        if src.is_file() {
            std::fs::copy(&src, super::picture_path(&out, &cfg.name, to)?)?;
        }
    }
    eprintln!("wrote {}", card_path.display());
    Ok(())
}

fn reproduce_commands(cfg: &TrainConfig, split: &Path, run: &Path, out: &Path) -> Vec<String> {
    let t = "cargo run --release -p training --";
    let data = "--data ../shared/data/fashion-product-images-small";
    let shape = if cfg.arch.layers.is_empty() {
        let channels: Vec<String> = cfg.arch.channels.iter().map(usize::to_string).collect();
        format!(
            "--channels {} --convs-per-stage {}",
            channels.join(","),
            cfg.arch.convs_per_stage
        )
    } else {
        let layers: Vec<String> = cfg.arch.layers.iter().map(Layer::to_string).collect();
        format!("--layers {}", layers.join(","))
    };
    vec![
        format!("{t} split {data} --out {}", split.display()),
        format!(
            "{t} train {data} --split {} --name {} --out {} --epochs {} --batch-size {} --lr {} \
             --weight-decay {} {shape} --dropout {} --seed {}{}",
            split.display(),
            cfg.name,
            run.display(),
            cfg.epochs,
            cfg.recipe.batch_size,
            cfg.recipe.lr,
            cfg.recipe.weight_decay,
            cfg.arch.dropout,
            cfg.recipe.seed,
            if cfg.recipe.augment.is_some() {
                " --augment".to_string()
            } else if let Some(st) = &cfg.recipe.station {
                format!(
                    " --station{}{}{}{}{}{}{}",
                    st.negatives
                        .as_ref()
                        .map(|n| format!(" --negatives {n}"))
                        .unwrap_or_default(),
                    if st.cut_jitter { " --cut-jitter" } else { "" },
                    if st.catalogue_share != 0.25 {
                        format!(" --catalogue-share {}", st.catalogue_share)
                    } else {
                        String::new()
                    },
                    if cfg.recipe.label_smoothing > 0.0 {
                        format!(" --label-smoothing {}", cfg.recipe.label_smoothing)
                    } else {
                        String::new()
                    },
                    if cfg.recipe.warmup_epochs > 0 {
                        format!(" --warmup-epochs {}", cfg.recipe.warmup_epochs)
                    } else {
                        String::new()
                    },
                    cfg.recipe
                        .ema
                        .map(|d| format!(" --ema {d}"))
                        .unwrap_or_default(),
                    cfg.recipe
                        .distill
                        .as_ref()
                        .map(|d| format!(
                            " --teacher {} --distill-weight {} --distill-temperature {}",
                            d.teachers.join(","),
                            d.weight,
                            d.temperature
                        ))
                        .unwrap_or_default()
                )
            } else {
                String::new()
            } + &if cfg.recipe.heads.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = cfg.recipe.heads.iter().map(|h| h.name.as_str()).collect();
                format!(
                    " --heads {} --head-weight {}",
                    names.join(","),
                    cfg.recipe.heads[0].weight
                )
            } + &cfg
                .recipe
                .init_from
                .as_ref()
                .map(|p| format!(" --init-from {p}"))
                .unwrap_or_default()
        ),
        format!(
            "{t} evaluate {data} --split {} --run {}",
            split.display(),
            run.display()
        ),
        format!(
            "{t} export {data} --split {} --run {} --out {}",
            split.display(),
            run.display(),
            out.display()
        ),
    ]
}
