//! `training real`: see [`Args`] for what it does and its options.

use anyhow::Result;
use std::path::{Path, PathBuf};
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use training::data::real_photos::{Photo, RealPhotos, RealSplit, GROUPS, OTHER_KIND};
use training::eval::real::{answers, inputs, score, Answer};
use training::report::card::RealSection;
use training::report::plots::PageCell;

/// Score exported models (and their int8 siblings) on real photos, per group, into their model
/// cards: real-val (for choices) and real-train. The sender split is made on first use and saved.
#[derive(clap::Args)]
pub struct Args {
    /// A folder laid out like real-photos-dev (labels.csv, images/).
    #[arg(long, default_value = "../shared/data/real-photos-dev")]
    pub photos: PathBuf,
    /// The sender split; written when missing.
    #[arg(long, default_value = "models/real-split.json")]
    pub split: PathBuf,
    /// Float ONNX models; `<model>.int8.onnx` (or `.qdq.onnx`) is scored too when present.
    #[arg(long, required = true, num_args = 1..)]
    pub model: Vec<PathBuf>,
    /// Also draw a page of real-val photos with every model's answer.
    #[arg(long)]
    pub page: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let real = RealPhotos::load(&args.photos).map_err(training::error::data)?;
    let split = if args.split.is_file() {
        RealSplit::load(&args.split, &real).map_err(training::error::data)?
    } else {
        let s = RealSplit::create(&real, &args.photos.display().to_string());
        s.save(&args.split)?;
        eprintln!(
            "real-photo split written to {}: val {:?}, train {:?}",
            args.split.display(),
            s.val,
            s.train
        );
        s
    };
    let split_sha = training::data::split::Split::file_hash(&args.split)?;
    let parts: Vec<(&str, Vec<&Photo>)> = ["val", "train"]
        .into_iter()
        .map(|p| Ok((p, split.part(&real, p)?)))
        .collect::<Result<_>>()?;
    let prepared: Vec<_> = parts.iter().map(|(_, ph)| inputs(&real, ph)).collect();
    let mut page_models: Vec<PageModel> = vec![];
    for model in &args.model {
        let mut section = RealSection {
            split: args.split.display().to_string(),
            split_sha256: split_sha.clone(),
            reproduce: format!(
                "cargo run --release -p training -- real --photos {} --split {} --model {}",
                args.photos.display(),
                args.split.display(),
                model.display()
            ),
            ..Default::default()
        };
        for (key, path) in [
            ("float", model.clone()),
            ("int8", super::int8_sibling(model)),
        ] {
            if !path.is_file() {
                if key == "float" {
                    return Err(training::error::data(anyhow::anyhow!(
                        "{} not found: give an exported float model (`training export`)",
                        path.display()
                    )));
                }
                continue;
            }
            let m = Model::from_path(&path, BackendKind::Tract, 1)?;
            for ((part, photos), prepared) in parts.iter().zip(&prepared) {
                let a = answers(&m, prepared)?;
                let s = score(part, photos, &a, &m.info.labels);
                eprintln!("{} real-{part}: {}", path.display(), s.line());
                if key == "float" && *part == "val" {
                    section.confusion = Some(confusion_picture(model, &m, &s)?);
                    page_models.push(PageModel {
                        name: m.info.name.clone(),
                        labels: m.info.labels.clone(),
                        answers: a,
                    });
                }
                *match (key, *part) {
                    ("float", "val") => &mut section.float_val,
                    ("float", _) => &mut section.float_train,
                    (_, "val") => &mut section.int8_val,
                    _ => &mut section.int8_train,
                } = Some(s);
            }
        }
        match training::report::card::update(model, |c| c.real = Some(section))? {
            Some(card) => eprintln!("real-photo figures written to {}", card.display()),
            None => eprintln!("{} has no model card: figures not saved", model.display()),
        }
    }
    if let Some(page) = &args.page {
        answer_page(&parts[0].1, &prepared[0], &page_models, page)?;
        eprintln!("answer page written to {}", page.display());
    }
    Ok(())
}

/// One model's real-val answers, for the page.
struct PageModel {
    name: String,
    labels: Vec<String>,
    answers: Vec<Option<Answer>>,
}

fn confusion_picture(
    model: &Path,
    m: &Model,
    s: &training::eval::real::RealScores,
) -> Result<String> {
    let path = super::picture_path(model, &m.info.name, "real-confusion")?;
    let rows: Vec<&str> = s.confusion_rows.iter().map(String::as_str).collect();
    let cols: Vec<&str> = m.info.labels.iter().map(String::as_str).collect();
    let right = |r: usize, c: usize| match GROUPS.get(r) {
        Some(g) => g.1.contains(&cols[c]),
        None => cols[c] == "none",
    };
    training::report::plots::confusion_table(
        &rows,
        &cols,
        &s.confusion,
        right,
        &format!("{} on real-val photos (top-1)", m.info.name),
        &path,
    )?;
    Ok(path.display().to_string())
}

/// Six photos per group and of other kinds, spread over real-val, each with every model's
/// answer (label and confidence; an answer under the station threshold is marked `(quiet)`).
fn answer_page(
    photos: &[&Photo],
    prepared: &[Option<Vec<u8>>],
    models: &[PageModel],
    path: &Path,
) -> Result<()> {
    const PER_GROUP: usize = 6;
    let mut cells = vec![];
    let groups = GROUPS.iter().map(|g| g.0).chain([OTHER_KIND]);
    for (gi, group) in groups.enumerate() {
        let members: Vec<usize> = (0..photos.len())
            .filter(|&i| photos[i].group == group && prepared[i].is_some())
            .collect();
        let step = (members.len() / PER_GROUP).max(1);
        for &i in members.iter().step_by(step).take(PER_GROUP) {
            let chw = prepared[i].as_ref().expect("filtered");
            let small = training::scene::chw_to_rgb(chw);
            let picture = image::imageops::resize(
                &small,
                small.width() * 2,
                small.height() * 2,
                image::imageops::FilterType::Nearest,
            );
            let lines = models
                .iter()
                .filter_map(|pm| {
                    let a = pm.answers[i].as_ref()?;
                    let label = pm.labels[a.top1].as_str();
                    let right = match GROUPS.get(gi) {
                        Some(g) => g.1.contains(&label),
                        None => a.reported.is_none(),
                    };
                    let quiet = if a.reported.is_none() { " (quiet)" } else { "" };
                    Some((
                        format!("{}: {label} {:.2}{quiet}", pm.name, a.confidence),
                        right,
                    ))
                })
                .collect();
            cells.push(PageCell {
                picture,
                caption: format!("{group} ({})", photos[i].label),
                lines,
            });
        }
    }
    training::report::plots::answer_page(
        &cells,
        PER_GROUP,
        "Real-val photos as the models see them (60x80, shown at 2x) and their answers",
        path,
    )
}
