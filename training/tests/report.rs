//! The report command on fixture metrics: cards and logs in a temp folder, rendered to Markdown
//! and PNGs; the numbers in the tables must be the ones in the cards, and the sweep's choice the
//! best validation accuracy.

use std::path::Path;
use training::report;

fn history(val_accs: &[f64]) -> String {
    let mut s =
        String::from("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n");
    for (i, v) in val_accs.iter().enumerate() {
        s += &format!("{},0.001,0.5,0.9,0.3,{v},100.0,250.0\n", i + 1);
    }
    s
}

/// A station run's log: (catalogue, mild, hard, empty-as-product) validation figures per epoch.
fn station_history(epochs: &[(f64, f64, f64, f64)]) -> String {
    let mut s = String::from(
        "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s,val_mild,val_hard,val_empty_product\n",
    );
    for (i, (c, m, h, e)) in epochs.iter().enumerate() {
        s += &format!("{},0.001,0.5,0.9,0.3,{c},100.0,250.0,{m},{h},{e}\n", i + 1);
    }
    s
}

#[test]
fn report_renders_from_cards_and_logs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let (models, data, docs) = (
        dir.path().join("models"),
        dir.path().join("data"),
        dir.path().join("docs"),
    );
    std::fs::create_dir_all(&models).unwrap();
    // The shipped baseline card is the fixture; a "tuned" card is derived from it with other
    // numbers so the table has to tell them apart.
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("models/baseline.json")).unwrap()).unwrap();
    let mut tuned = base.clone();
    tuned["name"] = "tuned".into();
    tuned["training"]["lr"] = 0.004.into();
    tuned["metrics"]["test"]["accuracy"] = 0.9876.into();
    tuned["metrics"]["val"]["accuracy"] = 0.9811.into();
    for (name, card) in [("baseline", &base), ("tuned", &tuned)] {
        std::fs::write(
            models.join(format!("{name}.json")),
            serde_json::to_vec(card).unwrap(),
        )
        .unwrap();
    }
    // Logs come from "runs": collect copies them into the data folder.
    let runs = dir.path().join("runs");
    for (sub, accs) in [
        ("baseline", vec![0.8, 0.9, 0.95]),
        ("sweep-lr/lr-0.001", vec![0.8, 0.93]),
        ("sweep-lr/lr-0.004", vec![0.85, 0.96]),
        ("sweep-lr/lr-0.016", vec![0.7, 0.94]),
    ] {
        std::fs::create_dir_all(runs.join(sub)).unwrap();
        std::fs::write(runs.join(sub).join("history.csv"), history(&accs)).unwrap();
    }
    // Two runs of the architecture sweep: config + log each.
    let config = |dropout: f64| {
        let layers = ["32:4/4v", "64v"].map(|l| l.parse().unwrap()).to_vec();
        training::fit::TrainConfig {
            name: "fast".into(),
            arch: training::model::Arch::from_layers(layers, dropout, 13),
            epochs: 2,
            recipe: training::fit::Recipe::plain(64, 0.004, 1e-4, 1),
            normalization: Default::default(),
            label_column: "subCategory".into(),
            labels: vec![],
        }
    };
    for (variant, dropout, accs) in [("a", 0.2, [0.9, 0.97, 0.95]), ("b", 0.3, [0.9, 0.96, 0.96])] {
        let d = runs.join("sweep-arch").join(variant);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("history.csv"), history(&accs)).unwrap();
        std::fs::write(
            d.join("config.json"),
            serde_json::to_vec(&config(dropout)).unwrap(),
        )
        .unwrap();
    }
    // Two station-model variants, seeds 1 and 2 of one recipe; the `robust` card was trained
    // by `s2`, so the table marks that one shipped. Each is scored at its best station score
    // (mean of catalogue, mild and hard, less empty frames reported): s2's second epoch.
    let station_cfg = |seed: u64| {
        let mut c = config(0.3);
        c.recipe.seed = seed;
        c.recipe.station = Some(training::fit::StationTraining::new(None));
        c
    };
    for (variant, seed, epochs) in [
        (
            "s1",
            1,
            vec![(0.97, 0.80, 0.70, 0.02), (0.975, 0.82, 0.72, 0.01)],
        ),
        (
            "s2",
            2,
            vec![(0.95, 0.93, 0.90, 0.0), (0.96, 0.94, 0.91, 0.0)],
        ),
    ] {
        let d = runs.join("station-runs").join(variant);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("history.csv"), station_history(&epochs)).unwrap();
        let cfg = station_cfg(seed);
        std::fs::write(d.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    }
    let mut robust = base.clone();
    let cfg = station_cfg(2);
    robust["name"] = "robust".into();
    robust["arch"] = serde_json::to_value(&cfg.arch).unwrap();
    for (key, value) in [
        ("seed", serde_json::json!(2)),
        ("epochs", serde_json::json!(cfg.epochs)),
        ("lr", serde_json::json!(cfg.recipe.lr)),
        ("weight_decay", serde_json::json!(cfg.recipe.weight_decay)),
        (
            "station",
            serde_json::to_value(&cfg.recipe.station).unwrap(),
        ),
    ] {
        robust["training"][key] = value;
    }
    std::fs::write(
        models.join("robust.json"),
        serde_json::to_vec(&robust).unwrap(),
    )
    .unwrap();
    assert_eq!(report::collect(&runs, &data).unwrap(), 12);
    let out = report::write(&models, &data, &docs).unwrap();
    let md = std::fs::read_to_string(out).unwrap();
    assert!(md.contains("| baseline | **97.03%**"), "{md}");
    assert!(md.contains("| tuned | **98.76%**"), "{md}");
    assert!(md.contains("| 0.004 (chosen) | 96.00%"), "{md}");
    assert!(!md.contains("0.001 (chosen)") && !md.contains("0.016 (chosen)"));
    // The architecture sweep chooses on the best epoch (a: 97% at epoch 2), not the last.
    assert!(
        md.contains("| a (chosen) | `32:4/4v,64v` |") && md.contains("| 97.00% (2) |"),
        "{md}"
    );
    assert!(md.contains("| b | `32:4/4v,64v` |"), "{md}");
    assert!(
        md.contains("+1.73 pp vs baseline") || md.contains("(+1.73 pp vs baseline)"),
        "{md}"
    );
    let mflop = config(0.3).arch.flops() as f64 / 1e6;
    assert!(
        md.contains(&format!(
            "| s2 (shipped) | {mflop:.1} | 2 | 2 | 0.004 | - | 0.25 | no | no | 0 | - | - | 2 | 0.9367 |"
        )),
        "{md}"
    );
    assert!(md.contains(&format!("| s1 | {mflop:.1} | 1 | 2 |")), "{md}");
    // The baseline card's station figures are in the station table.
    let mild = base["station"]["float_test"]["mild"].as_f64().unwrap();
    assert!(
        md.contains("| baseline | float | 97.03% | ")
            && md.contains(&format!("{:.2}%", mild * 100.0)),
        "{md}"
    );
    for png in ["sweep-lr.png", "compare-val.png"] {
        let img = image::open(docs.join("img").join(png)).unwrap();
        assert!(img.width() > 100);
    }
    // Run folders gone (a fresh clone): the copies in data still give the same report.
    std::fs::remove_dir_all(&runs).unwrap();
    assert_eq!(report::collect(&runs, &data).unwrap(), 0);
    let again = std::fs::read_to_string(report::write(&models, &data, &docs).unwrap()).unwrap();
    assert_eq!(md, again);
}

#[test]
fn report_without_cards_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = report::write(dir.path(), dir.path(), dir.path())
        .err()
        .unwrap();
    assert!(e.to_string().contains("no model cards"), "{e}");
}
