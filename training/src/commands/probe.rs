//! `training probe`: see [`Args`] for what it does and its options.

use anyhow::Result;
use std::path::PathBuf;
use training::backbone::efficientnet::{Lite, FEATURES};
use training::backbone::features::Extractor;
use training::backbone::graph;
use training::backbone::weights::{self, StateDict};
use training::data::negatives::Negatives;
use training::data::real_photos::{RealPhotos, RealSplit};
use training::data::split::Split;
use training::eval::real::score;
use training::fit::linear::{fit, LinearFit, Rows};
use training::fit::probe::*;
use training::scene::Level;

/// Train a head on the frozen pretrained EfficientNet-Lite0 (features of fixed views, cached in
/// runs/features) and write backbone + head as one ONNX model with `tag`'s input and metadata,
/// and its figures per epoch as `<out>.probe.json`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long, default_value = "models/negatives.json")]
    pub negatives: PathBuf,
    /// The real photos and their sender split (`training real` makes it).
    #[command(flatten)]
    pub real: super::RealArgs,
    /// Views of every catalogue training photo.
    #[arg(long, value_delimiter = ',', default_value = "catalogue,mild,hard")]
    pub views: Vec<View>,
    /// Size (HxW) the 80x60 input is enlarged to inside the network.
    #[arg(long, default_value = "224x168")]
    pub resize: String,
    /// Empty station frames trained towards `none`.
    #[arg(long, default_value_t = 3000)]
    pub empties: usize,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "runs/features")]
    pub features: PathBuf,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let resize = super::parse_resize(&args.resize).map_err(training::error::data)?;
    let split = Split::load(&args.input.split)?;
    let neg = Negatives::load(&args.negatives, &args.input.split)?;
    let cache =
        super::open_cache_with(&args.input.data, &args.input.cache_dir, &split, Some(&neg))?;
    let real = RealPhotos::load(&args.real.photos).map_err(training::error::data)?;
    let rsplit = RealSplit::load(&args.real.real_split, &real).map_err(training::error::data)?;
    let lite = Lite::from_state_dict(&StateDict::load(&weights::default_path())?)?;
    eprintln!("{}", describe(&lite, resize));
    let extractor = Extractor::new(&lite, resize)?;
    let feats = Features {
        extractor: &extractor,
        dir: &args.features,
        tag: format!("lite0-{}x{}", resize.0, resize.1),
    };
    let mut labels = split.labels.clone();
    labels.push("none".into());
    let products = split.labels.len();
    let mut rows = RowSet::new(labels.len(), products);

    let (train_ids, train_y) = present(split.part("train"), &cache);
    let targets: Vec<Option<usize>> = train_y.iter().map(|&y| Some(y)).collect();
    for view in &args.views {
        let f = feats.get(&format!("train-{}", view.name()), train_ids.len(), || {
            view.inputs("train", &train_ids, &cache)
        })?;
        rows.add(&f, &targets)?;
    }
    let empty = feats.get(
        &format!("train-empty{}", args.empties),
        args.empties,
        || {
            (0..args.empties as u64)
                .map(|i| training::scene::level_frame(Level::Empty, "train", i, None).to_chw())
                .collect()
        },
    )?;
    rows.add(&empty, &vec![Some(products); args.empties])?;
    let neg_ids: Vec<u64> = neg
        .ids("train")
        .into_iter()
        .filter(|&id| cache.get(id).is_some())
        .collect();
    let nf = feats.get("train-negatives", neg_ids.len(), || {
        View::Catalogue.inputs("train", &neg_ids, &cache)
    })?;
    rows.add(&nf, &vec![None; neg_ids.len()])?;

    // Real photos: real-train (trained on only when asked) and real-val (choices).
    let real_feats = |part: &str| -> Result<_> {
        let photos = rsplit.part(&real, part)?;
        let (photos, inputs) = real_inputs(&real, &photos);
        let f = feats.get(&format!("real-{part}"), inputs.len(), || inputs)?;
        Ok((photos, f))
    };
    let (rt_photos, rt_f) = real_feats("train")?;
    let mut real_rows = 0;
    for _ in 0..args.real.real_train_repeat {
        for (p, f) in rt_photos.iter().zip(rt_f.chunks(FEATURES)) {
            if let Some(t) = real_target(p, &labels) {
                rows.add(f, &[t])?;
                real_rows += 1;
            }
        }
    }
    let (rv_photos, rv_f) = real_feats("val")?;
    let (val_ids, val_y) = present(split.part("val"), &cache);
    let val = |view: View| {
        feats.get(&format!("val-{}", view.name()), val_ids.len(), || {
            view.inputs("val", &val_ids, &cache)
        })
    };
    let (val_cat, val_mild, val_hard) = (val(View::Catalogue)?, val(View::Mild)?, val(View::Hard)?);
    eprintln!(
        "head training rows: {} ({real_rows} of them real-train photos)",
        rows.len()
    );
    let cfg = LinearFit {
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: args.weight_decay,
        batch_size: 256,
        seed: args.seed,
    };
    let mut epochs = vec![];
    let head = fit(
        &Rows {
            x: &rows.x,
            t: &rows.t,
            dim: FEATURES,
            outputs: labels.len(),
        },
        &cfg,
        |epoch, loss, head| {
            let e = ProbeEpoch {
                epoch,
                loss,
                catalogue_val: accuracy(head, &val_cat, &val_y),
                mild_val: accuracy(head, &val_mild, &val_y),
                hard_val: accuracy(head, &val_hard, &val_y),
                real_val: score(
                    "val",
                    &rv_photos,
                    &real_answers(head, &rv_f, &labels),
                    &labels,
                ),
            };
            eprintln!(
                "epoch {epoch} loss {loss:.4} | val catalogue {:.4} mild {:.4} hard {:.4} | real-val {}",
                e.catalogue_val,
                e.mild_val,
                e.hard_val,
                e.real_val.line()
            );
            epochs.push(e);
        },
    )?;
    let bytes = graph::classifier_bytes(
        &lite,
        Some(resize),
        (&head.w, &head.b),
        &args.name,
        &labels,
        &split.label_column,
    );
    // The written model must give the head's logits on the cached features (tract end to end).
    let n = 8.min(val_ids.len());
    let want: Vec<f32> = val_cat
        .chunks(FEATURES)
        .take(n)
        .flat_map(|f| head.logits(f))
        .collect();
    let frames = View::Catalogue.inputs("val", &val_ids[..n], &cache);
    let worst = graph::check_export(&bytes, &frames, &want)?;
    training::util::write_atomic(&args.out, &bytes)?;
    let summary = ProbeSummary {
        name: args.name.clone(),
        onnx: args.out.display().to_string(),
        onnx_sha256: training::util::sha256_hex(&bytes),
        backbone: describe(&lite, resize),
        resize,
        macs: lite.macs(resize.0, resize.1),
        params: lite.params() + head.w.len() + head.b.len(),
        views: args.views.clone(),
        empties: args.empties,
        negatives: neg_ids.len(),
        real_train_rows: real_rows,
        rows: rows.len(),
        fit: cfg,
        epochs,
        export_check: worst,
        reproduce: training::util::reproduce(),
    };
    let summary_path = args.out.with_extension("probe.json");
    training::util::write_json(&summary_path, &summary)?;
    eprintln!(
        "wrote {} ({} bytes) and {}",
        args.out.display(),
        bytes.len(),
        summary_path.display()
    );
    Ok(())
}
