//! The report's real-photo section: every model card's `real` figures (`training real`), the
//! confusion pictures and the page of answers.

use super::{pct, Inputs};
use crate::eval::real::RealScores;
use anyhow::Result;
use std::fmt::Write as _;

fn group(s: &RealScores, name: &str) -> String {
    s.group(name).map_or("-".into(), |g| pct(g.accuracy))
}

pub fn section(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    let rows: Vec<(&str, &str, &RealScores, Option<&RealScores>)> = inp
        .cards
        .iter()
        .filter_map(|c| c.real.as_ref().map(|r| (c.model.name.as_str(), r)))
        .flat_map(|(name, r)| {
            [
                ("float", r.float_val.as_ref(), r.float_train.as_ref()),
                ("int8", r.int8_val.as_ref(), r.int8_train.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(form, v, t)| v.map(|v| (name, form, v, t)))
        })
        .collect();
    let Some(first) = rows.first() else {
        return Ok(());
    };
    writeln!(md, "## Real photos\n")?;
    let size = |name: &str| first.2.group(name).map_or(0, |g| g.photos);
    writeln!(
        md,
        "Phone photos of real garments and shoes (on floors, beds, tables and hangers, in room \
         light; `real-photos-dev`, CC0), scored through `tag`'s own preprocessing and tract \
         (`training real`, eval/real.rs). The folder is split by photographer \
         (`models/real-split.json`): **real-val** ({} Topwear, {} Bottomwear, {} Footwear, {} \
         dresses and hats) is what choices are made on, real-train may be trained on. Top-1 per \
         group, where Shoes, Sandal and Flip Flops all count for Footwear; balanced = the mean \
         of the three groups; `other kinds` = dresses and hats left unreported (below 0.6 or \
         `none`). Undershirts and bodies are not scored. None of the models below saw a real \
         photo in training.\n",
        size("Topwear"),
        size("Bottomwear"),
        size("Footwear"),
        first.2.other_kinds
    )?;
    writeln!(
        md,
        "| model | form | real-val Topwear | Bottomwear | Footwear | **balanced** | other kinds unreported | real-train balanced |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for (name, form, v, t) in &rows {
        writeln!(
            md,
            "| {name} | {form} | {} | {} | {} | **{}** | {} | {} |",
            group(v, "Topwear"),
            group(v, "Bottomwear"),
            group(v, "Footwear"),
            pct(v.balanced),
            v.others_not_reported.map_or("-".into(), pct),
            t.map_or("-".into(), |t| pct(t.balanced)),
        )?;
    }
    writeln!(md)?;
    for c in &inp.cards {
        if let Some(path) = c.real.as_ref().and_then(|r| r.confusion.as_deref()) {
            writeln!(
                md,
                "![{} on real-val]({img}/{})",
                c.model.name,
                super::file_name(path)
            )?;
        }
    }
    writeln!(
        md,
        "\nWhat the models answer on real-val photos, as the network sees them (green right, red \
         wrong; `training real --page`):\n\n![real-val answers]({img}/real-photos.png)\n"
    )?;
    Ok(())
}
