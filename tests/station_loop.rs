//! The station's whole learning loop on fixtures, with the real binaries: `tag watch --collect`
//! replays a belt and keeps its products, a person labels them through `/review` (HTTP) and calls
//! the flip-flops sandals, `training finetune` adapts the built-in model to those labels, the new
//! file replaces the running model, and the same station then calls that product a sandal.
//!
//! Needs the `training` binary (cargo builds it beside `tag` for `cargo test --workspace`) and
//! the pretrained weights (training/scripts/pretrained.sh); skipped with a line when either is
//! missing, except where TAG_REQUIRE_PRETRAINED is set (CI), where that fails.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The training binary and the pretrained weights, or None (skipped) outside CI.
fn needs() -> Option<(PathBuf, PathBuf)> {
    let training = PathBuf::from(env!("CARGO_BIN_EXE_tag")).with_file_name("training");
    let weights = std::env::var_os("TAG_PRETRAINED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("runs/pretrained/efficientnet-lite0-57934424.pth"));
    if training.is_file() && weights.is_file() {
        return Some((training, weights));
    }
    let what = format!(
        "{} or {} missing (cargo test --workspace; training/scripts/pretrained.sh)",
        training.display(),
        weights.display()
    );
    assert!(
        std::env::var_os("TAG_REQUIRE_PRETRAINED").is_none(),
        "{what}"
    );
    eprintln!("SKIPPED: {what}");
    None
}

/// Waits up to `secs` for `ok`.
fn until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(secs), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn verdicts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "verdict")
        .collect()
}

#[test]
fn collect_label_finetune_and_swap_relabels_a_product_on_the_running_station() {
    let Some((training, weights)) = needs() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str]| {
        let o = Command::new(&training)
            .env("TAG_PRETRAINED", &weights)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "training {args:?}: {}", stderr(&o));
        o
    };
    // The usual training data: the fixture catalogue (no other kinds in it).
    let data = root().join("tests/fixtures/dataset");
    let split = dir.join("split.json");
    run(&[
        "split",
        "--data",
        data.to_str().unwrap(),
        "--min-images",
        "2",
        "--out",
        split.to_str().unwrap(),
    ]);
    let negatives = dir.join("negatives.json");
    let split_sha = tagger::watch::reload::sha256(&std::fs::read(&split).unwrap());
    std::fs::write(
        &negatives,
        serde_json::json!({"split_sha256": split_sha, "seed": 1, "kinds": [],
            "shared_with_split": 0, "train": [], "val": [], "test": []})
        .to_string(),
    )
    .unwrap();

    // A station on the built-in model, replaying the belt, keeping one item per product.
    let model = dir.join("station.onnx");
    std::fs::copy(
        root().join("models/lite0-distilled-112-e16-seed2.onnx"),
        &model,
    )
    .unwrap();
    let frames = belt(dir);
    let products: Vec<String> = {
        let mut n: Vec<String> = std::fs::read_dir(examples())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let flip_flops = products.iter().position(|p| p == "flip-flops.jpg").unwrap();
    let collected = dir.join("collected");
    let cfg = dir.join("station.toml");
    std::fs::write(
        &cfg,
        format!(
            "[collect]\ndir = {:?}\nsample = 1.0\nper_minute = {}\n",
            collected.display().to_string(),
            products.len()
        ),
    )
    .unwrap();
    let out = dir.join("verdicts.jsonl");
    let mut cmd = tag_command();
    cmd.args(["watch", "--source", frames.to_str().unwrap(), "--repeat"])
        .args(["--model", model.to_str().unwrap()])
        .args(["--config", cfg.to_str().unwrap()])
        .args(["--debounce", "1", "--fps", "20", "--format", "jsonl"])
        .args(["--http", "127.0.0.1:0", "--review"])
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()));
    let station = Server::spawn(cmd, "on http://");

    // Label every product as the model says, but the flip-flops: sandals.
    let mut items = vec![];
    until("one item per product", 60, || {
        items = station.json("GET", "/review/items", "").1["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items.len() >= products.len()
    });
    let said: Vec<String> = verdicts(&out)
        .iter()
        .take(products.len())
        .map(|v| v["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(said[flip_flops], "Flip Flops", "{said:?}");
    for it in &items {
        // Below the station threshold the verdict is `unknown`: the model's best class then.
        let said = match it["label"].as_str().unwrap() {
            "unknown" => it["top"][0]["label"].as_str().unwrap(),
            label => label,
        };
        let label = match said {
            "Flip Flops" => "Sandal",
            other => other,
        };
        let body = serde_json::json!({"id": it["id"], "label": label}).to_string();
        assert_eq!(station.json("POST", "/review/label", &body).0, 200);
    }

    // Fine-tune the running model on the labels, then put the result in its place.
    let new = dir.join("station-ft.onnx");
    let o = run(&[
        "finetune",
        "--data",
        data.to_str().unwrap(),
        "--split",
        split.to_str().unwrap(),
        "--negatives",
        negatives.to_str().unwrap(),
        "--cache-dir",
        dir.join("cache").to_str().unwrap(),
        "--from",
        model.to_str().unwrap(),
        "--photos",
        collected.to_str().unwrap(),
        "--out",
        new.to_str().unwrap(),
        "--run",
        dir.join("run").to_str().unwrap(),
        "--epochs",
        "3",
        "--epoch-size",
        "96",
        "--batch-size",
        "16",
        "--photo-share",
        "0.8",
        "--lr",
        "3e-4",
        "--freeze-blocks",
        "12",
        "--val-photos",
        "4",
        "--check-photos",
        "0",
        "--empties",
        "4",
        "--allow-worse",
    ]);
    let card: Value =
        serde_json::from_slice(&std::fs::read(new.with_extension("finetune.json")).unwrap())
            .unwrap();
    assert!(
        card["photos"]["train"].as_u64().unwrap() >= 9,
        "{}",
        stderr(&o)
    );
    let new_sha = tagger::watch::reload::sha256(&std::fs::read(&new).unwrap());
    let staged = dir.join("station.onnx.new");
    std::fs::copy(&new, &staged).unwrap();
    std::fs::rename(&staged, &model).unwrap();

    // A whole belt later on the new model: the flip-flops come out as labelled.
    let cycle = 3 * products.len() as u64;
    let on_new = || -> Vec<Value> {
        verdicts(&out)
            .into_iter()
            .filter(|v| v["model_sha256"] == new_sha.as_str())
            .collect()
    };
    until("two belts on the new model", 60, || {
        on_new()
            .iter()
            .filter(|v| (v["frame"].as_u64().unwrap() - 1) % cycle == 0)
            .count()
            >= 2
    });
    let relabelled: Vec<String> = on_new()
        .iter()
        .filter(|v| (v["frame"].as_u64().unwrap() - 1) % cycle == 3 * flip_flops as u64)
        .map(|v| v["label"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !relabelled.is_empty() && relabelled.iter().all(|l| l == "Sandal"),
        "the flip-flops on the new model: {relabelled:?}; its belt: {:?}\n{}",
        on_new()
            .iter()
            .map(|v| format!(
                "{} {}",
                (v["frame"].as_u64().unwrap() - 1) % cycle,
                v["label"]
            ))
            .collect::<Vec<_>>(),
        stderr(&o)
    );
}
