//! The report's station-frame section: what a camera at a station sees, float and int8.

use super::*;
use crate::scene::Level;

/// The station-frame columns: what a camera at a station sees, float and int8, val and test.
pub(super) fn section(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    writeln!(md, "## Station frames\n")?;
    let scene = |l: Level| l.scene().describe();
    writeln!(
        md,
        "The catalogue figure alone does not say whether a model works at a station. Each model \
         is also scored, through `tag`'s own preprocessing and tract, on frames rendered from \
         the same photos (`training station`; scene/mod.rs): the product cut out of its white \
         background and put on a belt or tray. `mild`: {}. `hard`: {}. `tray`: {}. `mirrored`: \
         the catalogue photo mirrored. `empty`: the surfaces of `hard` alone with its light and \
         camera faults, scored as the share reported as a product at the station threshold 0.6 \
         (lower is better). `other kinds` is \
         the share of photos of the classes the models do not know (socks, ties, scarves, \
         make-up, ...; models/negatives.json) that stay unreported (below 0.6 or `none`), next \
         to the share of the 13 classes' catalogue photos still tagged right at or above 0.6. \
         Frames are deterministic per image (seeded); val frames are used for choices, test \
         frames only reported.\n",
        scene(Level::Mild),
        scene(Level::Hard),
        scene(Level::Tray)
    )?;
    let rows: Vec<(&str, &str, &StationScores, Option<&StationScores>)> = inp
        .cards
        .iter()
        .filter_map(|c| c.station.as_ref().map(|s| (c, s)))
        .flat_map(|(c, s)| {
            [
                ("float", s.float_test.as_ref(), s.float_val.as_ref()),
                ("int8", s.int8_test.as_ref(), s.int8_val.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(form, t, v)| t.map(|t| (c.model.name.as_str(), form, t, v)))
        })
        .collect();
    for c in &inp.cards {
        if let Some(t) = &c.temperature {
            writeln!(
                md,
                "`{}` is calibrated: its logits are divided by a temperature of {:.2} folded \
                 into its head (`training calibrate`, onnx/temperature.rs), the value with the lowest \
                 negative log-likelihood on {} ({} frames; NLL {:.3} -> {:.3}, expected \
                 calibration error {:.3} -> {:.3}). Accuracy does not change; what is above the \
                 threshold does.\n",
                c.model.name,
                t.scaling.temperature,
                t.scaling.fitted_on,
                t.scaling.frames,
                t.scaling.nll_before,
                t.scaling.nll_after,
                t.scaling.ece_before,
                t.scaling.ece_after
            )?;
        }
    }
    if rows.is_empty() {
        writeln!(md, "No station figures in the model cards yet.\n")?;
        return Ok(());
    }
    writeln!(
        md,
        "| model | form | catalogue test | mirrored | station-mild | station-hard | tray | empty reported as product | other kinds unreported | catalogue right above 0.6 | val: mild / hard / empty |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (name, form, t, v) in rows {
        writeln!(
            md,
            "| {name} | {form} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pct(t.catalogue),
            pct(t.mirrored),
            pct(t.mild),
            pct(t.hard),
            pct(t.tray),
            pct(t.empty_as_product),
            t.others_not_reported.map_or("-".into(), pct),
            pct(t.catalogue_right_above_threshold),
            v.map_or("-".into(), |v| format!(
                "{} / {} / {}",
                pct(v.mild),
                pct(v.hard),
                pct(v.empty_as_product)
            )),
        )?;
    }
    if let Some(t) = inp
        .cards
        .iter()
        .find_map(|c| c.station.as_ref().and_then(|s| s.float_test.as_ref()))
    {
        writeln!(
            md,
            "\n{} test images per column, {} empty frames, {} photos of other kinds. Sample \
             frames (test split; columns: catalogue, mirrored, mild, hard, tray, empty), made by \
             `cargo run --release -p training -- frames --data DIR --part test --grid \
             docs/img/station-frames.png`:\n\n![station frames]({img}/station-frames.png)\n",
            t.images, t.empty_frames, t.other_kinds
        )?;
    }
    if !inp.station_runs.is_empty() {
        writeln!(
            md,
            "### Station model variants (validation)\n\nEach variant is scored at its best \
             checkpoint: the mean of catalogue, `mild` and `hard` validation accuracy less the \
             share of empty validation frames reported as a product (the score each run also \
             uses to keep its best epoch). `(shipped)` marks the runs behind models/robust.json \
             and models/multihead.json (same network, settings and seed). Logs in \
             docs/data/station-runs/.\n"
        )?;
        writeln!(
            md,
            "| variant | MFLOP | seed | epochs | lr | started from | catalogue share | cut-out jitter | other kinds as negatives | label smoothing | distilled from | weight average (EMA) | best epoch | score | val catalogue | val mild | val hard | val empty as product | images/s |"
        )?;
        writeln!(
            md,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )?;
        let shipped = |r: &ArchRun| {
            ["robust", "multihead"]
                .iter()
                .filter_map(|n| inp.cards.iter().find(|c| c.model.name == *n))
                .any(|c| r.is_behind(&c.model))
        };
        for r in &inp.station_runs {
            let b = r.best();
            let st = r.config.recipe.station.as_ref();
            let mut ips: Vec<f64> = r.history.iter().map(|h| h.images_per_s).collect();
            ips.sort_by(f64::total_cmp);
            writeln!(
                md,
                "| {}{} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.0} |",
                r.variant,
                match (shipped(r), r.config.recipe.heads.is_empty()) {
                    (true, true) => " (shipped)",
                    (true, false) => " (extra heads, shipped)",
                    (false, false) => " (extra heads)",
                    (false, true) => "",
                },
                r.config.arch.flops() as f64 / 1e6,
                r.config.recipe.seed,
                r.config.epochs,
                r.config.recipe.lr,
                r.config.recipe.init_from.as_deref().map_or("-".into(), file_name),
                st.map_or("-".into(), |s| format!("{:.2}", s.catalogue_share)),
                st.map_or("-", |s| if s.cut_jitter { "yes" } else { "no" }),
                st.map_or("-", |s| if s.negatives.is_some() { "yes" } else { "no" }),
                r.config.recipe.label_smoothing,
                r.config.recipe.distill.as_ref().map_or("-".into(), |d| format!(
                    "{} (weight {}, T {})",
                    d.teachers
                        .iter()
                        .map(|t| std::path::Path::new(t)
                            .file_stem()
                            .map_or(t.clone(), |s| s.to_string_lossy().into_owned()))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    d.weight,
                    d.temperature
                )),
                r.config.recipe.ema.map_or("-".into(), |d| format!("decay {d}")),
                b.epoch,
                b.selection_score(),
                pct(b.val_acc),
                b.val_mild.map_or("-".into(), pct),
                b.val_hard.map_or("-".into(), pct),
                b.val_empty_product.map_or("-".into(), pct),
                ips[ips.len() / 2],
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}
