//! `training heads`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::Result;
use std::path::PathBuf;
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use training::data::heads::Attributes;
use training::data::split::Split;
use training::report::card::HeadsSection;

/// Score a multi-head model's extra heads (and its int8 sibling's) on the test split's catalogue
/// photos and mild and hard station frames: accuracy and macro-F1 per head into the model card,
/// and the article-type confusion matrix as a picture in docs/img.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Float ONNX model with extra heads; `<model>.int8.onnx` (or `.qdq.onnx`) is scored too when present.
    #[arg(long)]
    pub model: PathBuf,
    /// Split part to score (`val` for choices, `test` to report).
    #[arg(long, default_value = "test")]
    pub part: String,
}

pub fn run(args: Args) -> Result<()> {
    let super::DataArgs {
        data,
        split: split_file,
        cache_dir,
    } = args.input;
    if !["val", "test"].contains(&args.part.as_str()) {
        return Err(training::error::usage(anyhow::anyhow!(
            "--part must be val or test, not `{}`",
            args.part
        )));
    }
    let split = Split::load(&split_file)?;
    let attrs = Attributes::load(&data).map_err(training::error::data)?;
    let cache = open_cache(&data, &cache_dir, &split)?;
    let mut section = HeadsSection::default();
    let int8 = super::int8_sibling(&args.model);
    for (key, path) in [("float", args.model.clone()), ("int8", int8)] {
        if !path.is_file() {
            continue;
        }
        let m = Model::from_path(&path, BackendKind::Tract, 1)?;
        let started = std::time::Instant::now();
        let (scores, catalogue) =
            training::eval::heads::score(&m, &attrs, &args.part, split.part(&args.part), &cache)?;
        for s in &scores {
            eprintln!(
                "{} {} {:<11} {:<9}: accuracy {:.4} macro-F1 {:.4} (n {})",
                path.display(),
                args.part,
                s.head,
                s.frames,
                s.accuracy,
                s.macro_f1,
                s.n
            );
        }
        eprintln!("({:.0}s)", started.elapsed().as_secs_f64());
        if key == "float" {
            section.float = scores;
            if let Some((i, _)) = m
                .info
                .heads
                .iter()
                .enumerate()
                .find(|(_, h)| h.name == "articleType")
            {
                let img = super::picture_path(&args.model, &m.info.name, "articletype-confusion")?;
                training::report::plots::confusion(
                    &catalogue[i],
                    &format!("{}: article type, {} photos", m.info.name, args.part),
                    &img,
                )?;
                eprintln!("wrote {}", img.display());
                section.article_type_confusion = Some(img.display().to_string());
            }
        } else {
            section.int8 = scores;
        }
    }
    section.reproduce = format!(
        "cargo run --release -p training -- heads --data ../shared/data/fashion-product-images-small --split {} --model {} --part {}",
        split_file.display(),
        args.model.display(),
        args.part
    );
    match training::report::card::update(&args.model, |c| c.heads = Some(section))? {
        Some(card) => eprintln!("head figures written to {}", card.display()),
        None => eprintln!(
            "{} has no model card: figures not saved",
            args.model.display()
        ),
    }
    Ok(())
}
