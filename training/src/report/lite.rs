//! The report's fine-tuning section: the `training lite` runs kept in `docs/data/lite/`
//! (copied from `runs/lite/` by `collect`) and the shipped ones in `models/`: the kept epoch's
//! figures and real-val per epoch.

use super::{pct, Inputs};
use crate::fit::lite::{LiteEpoch, LiteSummary};
use crate::report::card::ModelCard;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A fine-tuning run: its summary and, when kept, its model card (test figures, and the
/// station and real sections that `training station` and `training real` add).
pub struct LiteRun {
    pub summary: LiteSummary,
    pub card: Option<ModelCard>,
}

/// The fine-tuning runs in `dir` (`<model>.lite.json` and `<model><card>`, the card's suffix),
/// sorted by name.
fn read_in(dir: &Path, card: &str) -> Result<Vec<LiteRun>> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".lite.json") {
                let summary: LiteSummary = serde_json::from_slice(&std::fs::read(&p)?)
                    .with_context(|| format!("{} is not a fine-tuning summary", p.display()))?;
                let card_path = PathBuf::from(format!("{stem}{card}"));
                let card = card_path
                    .is_file()
                    .then(|| ModelCard::load(&card_path))
                    .transpose()?;
                out.push(LiteRun { summary, card });
            }
        }
    }
    out.sort_by(|a, b| a.summary.name.cmp(&b.summary.name));
    Ok(out)
}

/// The runs kept in `data` (`<model>.card.json`) and the shipped ones in `models` (their cards
/// `<model>.json`, which `training station` and `training real` complete there), by name.
pub fn read(data: &Path, models: &Path) -> Result<Vec<LiteRun>> {
    let mut runs = read_in(data, ".card.json")?;
    let shipped = read_in(models, ".json")?;
    runs.retain(|r| !shipped.iter().any(|s| s.summary.name == r.summary.name));
    runs.extend(shipped);
    runs.sort_by(|a, b| a.summary.name.cmp(&b.summary.name));
    Ok(runs)
}

/// Copies `runs/lite/<model>.lite.json` and the model's card `<model>.json` into `data/lite/`
/// (the card as `<model>.card.json`).
pub fn collect(runs: &Path, data: &Path) -> Result<usize> {
    let mut n = super::copy_summaries(runs, data, "lite", ".lite.json")?;
    if let Ok(entries) = std::fs::read_dir(runs.join("lite")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".lite.json") {
                let card = runs.join("lite").join(format!("{stem}.json"));
                let to = data.join("lite").join(format!("{stem}.card.json"));
                n += super::copy_if_present(&card, &to)? as usize;
            }
        }
    }
    Ok(n)
}

const PICTURE: &str = "lite-real-val.png";

/// Draws real-val balanced and station hard accuracy per epoch of every run into `img`, one
/// panel each.
pub fn plot(inp: &Inputs, img: &Path) -> Result<()> {
    if inp.lites.is_empty() {
        return Ok(());
    }
    let (mut real, mut hard) = (vec![], vec![]);
    for s in inp.lites.iter().map(|r| &r.summary) {
        let per = |f: fn(&LiteEpoch) -> f64| -> Vec<(f64, f64)> {
            s.state
                .history
                .iter()
                .map(|e| (e.epoch as f64, f(e)))
                .collect()
        };
        real.push((s.name.clone(), per(|e| e.real_val.balanced)));
        hard.push((s.name.clone(), per(|e| e.hard_val)));
    }
    crate::report::plots::per_epoch(
        "fine-tuning runs per epoch",
        &[
            ("real-val balanced accuracy", real),
            ("station hard frames (val)", hard),
        ],
        &img.join(PICTURE),
    )
}

pub fn section(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    if inp.lites.is_empty() {
        return Ok(());
    }
    writeln!(md, "## Fine-tuned EfficientNet-Lite0\n")?;
    writeln!(
        md,
        "The pretrained EfficientNet-Lite0 trained end to end in burn (`training lite`, \
         fit/lite.rs) except its stem and first blocks, batch norm folded and frozen, at the \
         input size below (80x60: `tag`'s input as it is, no enlargement). Each epoch draws \
         fresh samples from the station recipe's pool (products on rendered belts and trays \
         or in the catalogue look, empty frames, other kinds) and, where `real-train` says so, \
         the real-train photos; with a teacher, product targets are blended with a probe \
         model's softened answer on the catalogue photo. The kept epoch has the best mean of \
         catalogue, station hard and real-val balanced accuracy, so its real-val figure is \
         chosen on real-val (a few points optimistic: the curve below shows every epoch); \
         catalogue and station figures here are on an evenly spaced subset of val (count in \
         the table), real-val is whole. One seed each.\n"
    )?;
    writeln!(
        md,
        "| run | input | MMAC | frozen blocks | real-train | teacher | kept epoch | val photos | val catalogue | val mild | val hard | real-val Topwear | Bottomwear | Footwear | **balanced** | other kinds unreported | training |"
    )?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for s in inp.lites.iter().map(|r| &r.summary) {
        let c = &s.config;
        let Some(e) = s
            .state
            .history
            .iter()
            .find(|h| h.epoch == s.state.best_epoch)
        else {
            continue;
        };
        let g = |n: &str| e.real_val.group(n).map_or("-".into(), |g| pct(g.accuracy));
        let (h, w) = c.resize.unwrap_or((80, 60));
        writeln!(
            md,
            "| {} | {h}x{w} | {:.0} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {:.0} min |",
            s.name,
            s.macs as f64 / 1e6,
            c.freeze_blocks,
            if c.real_train_repeat > 0 {
                format!("x{}", c.real_train_repeat)
            } else {
                "no".into()
            },
            c.teacher
                .as_deref()
                .and_then(|t| Path::new(t).file_stem())
                .map_or("-".into(), |t| t.to_string_lossy().into_owned()),
            e.epoch,
            c.epochs,
            s.val_photos,
            pct(e.catalogue_val),
            pct(e.mild_val),
            pct(e.hard_val),
            g("Topwear"),
            g("Bottomwear"),
            g("Footwear"),
            pct(e.real_val.balanced),
            e.real_val.others_not_reported.map_or("-".into(), pct),
            s.state.train_seconds / 60.0,
        )?;
    }
    writeln!(
        md,
        "\n![real-val and station hard per epoch]({img}/{PICTURE})\n"
    )?;
    cards_table(md, inp)?;
    writeln!(md, "Commands (`reproduce` in each summary):\n")?;
    for s in inp.lites.iter().map(|r| &r.summary) {
        writeln!(md, "- `{}`: `{}`", s.name, s.reproduce)?;
    }
    writeln!(md)?;
    Ok(())
}

/// The kept models' cards: catalogue test, station test frames, real photos (float, and int8
/// where quantized).
fn cards_table(md: &mut String, inp: &Inputs) -> Result<()> {
    let cards: Vec<&ModelCard> = inp.lites.iter().filter_map(|r| r.card.as_ref()).collect();
    if cards.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "The kept epoch of each run, exported and scored whole (model cards: `training lite`, \
         then `training station` and `training real`; float, and int8 where `training quantize` \
         wrote it):\n"
    )?;
    writeln!(
        md,
        "| model | catalogue val | catalogue test | station test: mild | hard | tray | empty named a product | real-val balanced | Footwear | real-train balanced |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for c in cards {
        let opt = |v: Option<f64>| v.map_or("-".into(), pct);
        let station = c.station.as_ref();
        let real = c.real.as_ref();
        // The float model, then its int8 form (QDQ) where `training quantize` wrote one.
        let int8 = c
            .int8
            .as_ref()
            .or(c.int8_qdq.as_ref())
            .map(|q| &q.comparison);
        let rows = [
            (
                c.model.name.clone(),
                Some((c.model.metrics.val.accuracy, c.model.metrics.test.accuracy)),
                station.and_then(|s| s.float_test.as_ref()),
                real.and_then(|r| r.float_val.as_ref()),
                real.and_then(|r| r.float_train.as_ref()),
            ),
            (
                format!("{} int8", c.model.name),
                int8.map(|q| (q.val.int8.accuracy, q.test.int8.accuracy)),
                station.and_then(|s| s.int8_test.as_ref()),
                real.and_then(|r| r.int8_val.as_ref()),
                real.and_then(|r| r.int8_train.as_ref()),
            ),
        ];
        for (i, (name, cat, st, rv, rt)) in rows.into_iter().enumerate() {
            if i == 1 && cat.is_none() {
                continue;
            }
            writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt(cat.map(|c| c.0)),
                opt(cat.map(|c| c.1)),
                opt(st.map(|s| s.mild)),
                opt(st.map(|s| s.hard)),
                opt(st.map(|s| s.tray)),
                opt(st.map(|s| s.empty_as_product)),
                opt(rv.map(|r| r.balanced)),
                opt(rv.and_then(|r| r.group("Footwear")).map(|g| g.accuracy)),
                opt(rt.map(|r| r.balanced)),
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}
