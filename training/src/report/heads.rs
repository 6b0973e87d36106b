//! The report's multi-head section: the attribute heads per model, split and frame level.

use super::*;

/// The multi-head model: each extra head's figures and whether the heads changed the class.
pub(super) fn section(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    let Some(card) = inp.cards.iter().find(|c| c.heads.is_some()) else {
        return Ok(());
    };
    let h = card.heads.as_ref().expect("found");
    let k = &card.model;
    writeln!(
        md,
        "## Multi-head model: article type, colour, gender, usage\n"
    )?;
    let heads: Vec<String> = k
        .training
        .recipe
        .heads
        .iter()
        .map(|h| format!("`{}` ({} labels)", h.name, h.labels.len()))
        .collect();
    writeln!(
        md,
        "`{}` is `robust`'s network and recipe with one dense layer more per attribute of \
         styles.csv on the same pooled features: {} (heads.rs: article types with fewer than \
         200 training photos fold into `other`; the 46 base colours group into a 15-colour \
         palette; rare usages and missing values are masked, never guessed). Each head's \
         cross-entropy is added with weight {} over the photos that have a value. Figures \
         through tract on the test split's photos and their station frames, over the photos \
         whose value the head knows (`{}`):\n",
        k.name,
        heads.join(", "),
        k.training.recipe.heads.first().map_or(0.0, |h| h.weight),
        h.reproduce
    )?;
    writeln!(
        md,
        "| head | form | catalogue accuracy | catalogue macro-F1 | station-mild accuracy | station-hard accuracy | photos |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for (form, scores) in [("float", &h.float), ("int8", &h.int8)] {
        let names: Vec<&str> = scores
            .iter()
            .filter(|s| s.frames == "catalogue")
            .map(|s| s.head.as_str())
            .collect();
        for name in names {
            let get = |frames: &str| scores.iter().find(|s| s.head == name && s.frames == frames);
            let cat = get("catalogue").expect("catalogue row");
            writeln!(
                md,
                "| {name} | {form} | {} | {:.3} | {} | {} | {} |",
                pct(cat.accuracy),
                cat.macro_f1,
                get("mild").map_or("-".into(), |s| pct(s.accuracy)),
                get("hard").map_or("-".into(), |s| pct(s.accuracy)),
                cat.n
            )?;
        }
    }
    if let Some(conf) = &h.article_type_confusion {
        let file = Path::new(conf)
            .file_name()
            .map_or(conf.clone(), |f| f.to_string_lossy().into_owned());
        writeln!(
            md,
            "\nArticle-type confusion on the test photos (float):\n\n![article type confusion]({img}/{file})\n"
        )?;
    }
    // The class (subCategory) with and without heads, per seed (validation): the runs whose
    // network, length and recipe equal the card's but for the heads and the seed.
    let without_heads = |arch: &crate::model::Arch, recipe: &crate::fit::Recipe| {
        let arch = crate::model::Arch {
            heads: vec![],
            ..arch.clone()
        };
        let recipe = crate::fit::Recipe {
            heads: vec![],
            seed: 0,
            ..recipe.clone()
        };
        (arch, recipe)
    };
    let Some(card_arch) = k.arch.cnn() else {
        return Ok(());
    };
    let card_recipe = without_heads(card_arch, &k.training.recipe);
    let runs: Vec<&ArchRun> = inp
        .station_runs
        .iter()
        .filter(|r| {
            r.config.epochs == k.training.epochs
                && without_heads(&r.config.arch, &r.config.recipe) == card_recipe
        })
        .collect();
    if !runs.is_empty() {
        writeln!(
            md,
            "Did the extra heads change the class? The same recipe with and without them, per \
             seed, at each run's best checkpoint (validation; logs in docs/data/station-runs/):\n"
        )?;
        writeln!(
            md,
            "| run | extra heads | seed | best epoch | val catalogue | val mild | val hard | val empty as product | score |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
        for r in runs {
            let b = r.best();
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.4} |",
                r.variant,
                if r.config.recipe.heads.is_empty() {
                    "-".to_string()
                } else {
                    format!(
                        "{} (weight {})",
                        r.config.recipe.heads.len(),
                        r.config.recipe.heads[0].weight
                    )
                },
                r.config.recipe.seed,
                b.epoch,
                pct(b.val_acc),
                b.val_mild.map_or("-".into(), pct),
                b.val_hard.map_or("-".into(), pct),
                b.val_empty_product.map_or("-".into(), pct),
                b.selection_score()
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}
