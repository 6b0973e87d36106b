//! A station keeps the frames worth a person's look (`tag watch --collect`), and a person labels
//! them in a browser (`/review` on the station, or `tag review DIR`): whole items on disk with
//! their record, one item per uncertain product, the rate limit, and the review routes' rules
//! (the only ones that write: a token or an explicit `--review`; bad ids and labels refused).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn sha256(path: &str) -> String {
    tagger::watch::reload::sha256(&std::fs::read(path).unwrap())
}

/// `tag watch` over `frames` with `[collect]` settings `collect` (TOML lines), at a camera's
/// pace (as fast as it goes, the writer's queue would fill and skip frames: counted as `busy`).
fn collect(dir: &Path, frames: &Path, collect: &str, extra: &[&str]) -> std::process::Output {
    let cfg = dir.join("station.toml");
    let out = dir.join("collected");
    std::fs::write(
        &cfg,
        format!(
            "[collect]\ndir = {:?}\n{collect}\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let o = tag_command()
        .args(["watch", "--source", frames.to_str().unwrap()])
        .args([
            "--model",
            &robust_model(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(["--debounce", "1", "--stats-json", "--fps", "20"])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn items(dir: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_dir(dir.join("items"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().join("item.json");
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        })
        .collect();
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    v
}

#[test]
fn a_replay_keeps_one_whole_item_per_uncertain_product() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = belt(tmp.path());
    // Above every confidence: every frame is `unknown`, each product a new pass.
    let o = collect(
        tmp.path(),
        &frames,
        "sample = 0.0\nper_minute = 600",
        &[
            "--threshold",
            "1.0",
            "--roi",
            "0.25,0,0.5,1",
            "--all-frames",
        ],
    );
    let dir = tmp.path().join("collected");
    let kept = items(&dir);
    let products = std::fs::read_dir(examples()).unwrap().count();
    // One per product; two neighbours the model sees as one class make one pass.
    assert!(
        (products - 3..=products).contains(&kept.len()),
        "{} items for {products} products",
        kept.len()
    );
    let s = summary(&o);
    assert_eq!(s["collect"]["kept"]["unknown"], kept.len() as u64, "{s}");
    assert_eq!(s["collect"]["items"], kept.len() as u64);
    let sha = sha256(&robust_model());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("collection.json")).unwrap()).unwrap();
    assert!(manifest["classes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "none"));
    assert_eq!(manifest["model"]["sha256"], sha);
    for it in &kept {
        let id = it["id"].as_str().unwrap();
        assert_eq!(it["reason"], "unknown");
        assert_eq!(it["label"], "unknown");
        assert_eq!(it["model"]["sha256"], sha);
        let top: Vec<f64> = it["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["score"].as_f64().unwrap())
            .collect();
        assert!(
            top.len() >= 3 && top.windows(2).all(|w| w[0] >= w[1]),
            "{it}"
        );
        let frame = image::open(dir.join("items").join(id).join("frame.jpg")).unwrap();
        let crop = image::open(dir.join("items").join(id).join("crop.jpg")).unwrap();
        let (w, h) = (frame.width(), frame.height());
        assert_eq!(it["frame_size"], serde_json::json!([w, h]));
        // The region of interest at the camera's resolution: half the width, the full height.
        assert!(
            crop.width().abs_diff(w / 2) <= 1 && crop.height() == h,
            "{}x{} of {w}x{h}",
            crop.width(),
            crop.height()
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.join(".partial"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // Every verdict line names the model that made it.
    let records = jsonl(&o);
    assert!(!records.is_empty() && records.iter().all(|r| r["model_sha256"] == sha));

    // Again into the same collection, at most 3 a minute: 3 more, the rest counted.
    let o = collect(
        tmp.path(),
        &frames,
        "sample = 0.0\nper_minute = 3",
        &["--threshold", "1.0"],
    );
    let s = summary(&o);
    assert_eq!(items(&dir).len(), kept.len() + 3, "{s}");
    assert!(s["collect"]["rate_limited"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn tag_review_labels_a_collection_over_http_and_refuses_what_it_must() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = belt(tmp.path());
    collect(
        tmp.path(),
        &frames,
        "sample = 0.0\nper_minute = 600",
        &["--threshold", "1.0"],
    );
    let dir = tmp.path().join("collected");
    let d = dir.to_str().unwrap();
    let srv = Server::start(&["review", d, "--http", "127.0.0.1:0"], "on http://");

    let (code, head, page) = srv.request("GET", "/review", "");
    assert_eq!(code, 200);
    assert!(head.contains("text/html") && String::from_utf8_lossy(&page).contains("tag review"));
    let (code, list) = srv.json("GET", "/review/items", "");
    assert_eq!(code, 200, "{list}");
    let ids: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().into())
        .collect();
    assert!(ids.len() >= 3);
    assert!(
        !list["classes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "none"),
        "x is `not a product`"
    );
    assert_eq!(list["progress"]["labelled"], 0);

    let decide = |id: &str, label: &str| {
        srv.json(
            "POST",
            "/review/label",
            &serde_json::json!({"id": id, "label": label}).to_string(),
        )
    };
    let (code, p) = decide(&ids[0], "Shoes");
    assert_eq!(
        (code, &p["labelled"], &p["counts"]["Shoes"]),
        (200, &1.into(), &1.into()),
        "{p}"
    );
    let (code, p) = decide(&ids[1], "none");
    assert_eq!((code, &p["labelled"]), (200, &2.into()), "{p}");
    // Undo: an empty label takes the decision back.
    let (code, p) = decide(&ids[1], "");
    assert_eq!((code, &p["labelled"]), (200, &1.into()), "{p}");
    let (code, e) = decide(&ids[2], "Cars");
    assert!(
        code == 400 && e.as_str().unwrap().contains("Cars"),
        "{code} {e}"
    );
    for bad in ["../collection.json", "nope"] {
        assert_eq!(decide(bad, "Shoes").0, 404);
    }
    assert_eq!(srv.request("POST", "/review/label", "not json").0, 400);
    let (code, head, jpeg) = srv.request("GET", &format!("/review/items/{}/crop.jpg", ids[0]), "");
    assert!(code == 200 && head.contains("image/jpeg") && jpeg.starts_with(&[0xff, 0xd8]));
    assert_eq!(
        srv.request("GET", &format!("/review/items/{}/item.json", ids[0]), "")
            .0,
        404
    );
    assert_eq!(
        srv.request("GET", "/review/items/..%2F..%2Fetc/crop.jpg", "")
            .0,
        404
    );
    let (code, head, _) = srv.request("GET", "/", "");
    assert!(code == 302 && head.contains("Location: /review"), "{head}");
    assert_eq!(srv.request("GET", "/status", "").0, 404);
    assert_eq!(srv.request("DELETE", "/review/label", "").0, 405);

    // The decisions are on disk, one line each, and the page lists them after a restart.
    let csv = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    drop(srv);
    let srv = Server::start(
        &["review", d, "--http", "127.0.0.1:0", "--http-token", "t0k"],
        "on http://",
    );
    assert_eq!(srv.request("GET", "/review/items", "").0, 401);
    let (code, list) = srv.json("GET", "/review/items?token=t0k", "");
    assert_eq!(code, 200);
    assert_eq!(list["items"][0]["decided"], "Shoes");
    assert_eq!(list["items"][1]["decided"], Value::Null);

    // Reachable from other machines without a token: refused, exit 2.
    let o = tag(&["review", d, "--http", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("token"), "{}", stderr(&o));
    let o = tag(&["review", tmp.path().join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("tag watch --collect"), "{}", stderr(&o));
}

#[test]
fn a_station_serves_review_only_when_asked_and_counts_what_it_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = belt(tmp.path());
    let dir = tmp.path().join("collected");
    let station = |extra: &[&str]| {
        let mut args = vec![
            "watch",
            "--source",
            frames.to_str().unwrap(),
            "--repeat",
            "--fps",
            "20",
        ];
        args.extend(["--model", "MODEL", "--collect", dir.to_str().unwrap()]);
        args.extend(["--threshold", "1.0", "--http", "127.0.0.1:0"]);
        args.extend(extra);
        let model = robust_model();
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "MODEL" { model.as_str() } else { a })
            .collect();
        Server::start(&args, "live page on http://")
    };
    let plain = station(&[]);
    let (code, _, body) = plain.request("GET", "/review", "");
    assert!(
        code == 404 && String::from_utf8_lossy(&body).contains("--review"),
        "{code}"
    );
    assert_eq!(plain.request("POST", "/review/label", "{}").0, 405);
    assert_eq!(
        plain.json("GET", "/status", "").1["collect"]["review"],
        false
    );
    drop(plain);

    let srv = station(&["--review"]);
    let t = std::time::Instant::now();
    let metrics = loop {
        let (_, _, m) = srv.request("GET", "/metrics", "");
        let m = String::from_utf8_lossy(&m).to_string();
        if m.contains("tag_collect_kept_total{reason=\"unknown\"} ")
            && !m.contains("tag_collect_items 0\n")
        {
            break m;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{m}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("tag_collect_skipped_total{why=\"rate\"}"),
        "{metrics}"
    );
    // The page links to the review while it is served.
    let status = srv.json("GET", "/status", "").1;
    assert_eq!(status["collect"]["review"], true, "{status}");
    assert!(status["collect"]["items"].as_u64().unwrap() > 0, "{status}");
    let (code, list) = srv.json("GET", "/review/items", "");
    assert_eq!(code, 200);
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (code, p) = srv.json(
        "POST",
        "/review/label",
        &serde_json::json!({"id": id, "label": "Bags"}).to_string(),
    );
    assert_eq!((code, &p["labelled"]), (200, &1.into()), "{p}");
    // The rest of the station stays read-only.
    assert_eq!(srv.request("POST", "/status", "").0, 405);
}

/// Each device file's commented `[collect]` example is valid once uncommented.
#[test]
fn every_device_file_has_a_valid_collect_example() {
    for (p, block) in device_examples("collect", |l| l.starts_with("# ")) {
        let cfg: tagger::watch::config::StationConfig = toml::from_str(&block)
            .unwrap_or_else(|e| panic!("{}: [collect] example: {e}", p.display()));
        cfg.validate().unwrap();
        assert!(
            cfg.collect.dir.is_some(),
            "{}: no [collect] example",
            p.display()
        );
    }
}

#[test]
fn collect_settings_out_of_range_are_named() {
    for (text, key) in [
        ("[collect]\ndir = \"c\"\nbelow = 1.5\n", "collect.below"),
        ("[collect]\ndir = \"c\"\nsample = -0.1\n", "collect.sample"),
        (
            "[collect]\ndir = \"c\"\nper_minute = 0\n",
            "collect.per_minute",
        ),
        ("[collect]\ndir = \"c\"\nmax_mib = 0\n", "collect.max_mib"),
        ("[http]\nreview = true\n", "collect.dir"),
    ] {
        let cfg: tagger::watch::config::StationConfig = toml::from_str(text).unwrap();
        let e = format!("{:#}", cfg.validate().unwrap_err());
        assert!(e.contains(key), "{text:?} gave {e}");
    }
}
