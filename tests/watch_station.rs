//! `tag watch` as a station: whole 640x480 frames replayed with a device file's ROI and verdict
//! settings and the model the device files run; products passing by are reported once, the
//! empty belt never, and the verdicts agree with batch tagging of the crops.

mod common;

use common::*;
use std::path::Path;

/// The pass-by fixture: whole 640x480 station frames (`training frames --sequence`, see
/// tests/fixtures/README.md), an empty belt between products, and its truth per frame.
fn passby() -> (std::path::PathBuf, Vec<(String, String)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frames/passby");
    let truth = std::fs::read_to_string(dir.join("labels.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect();
    (dir, truth)
}

fn pi4() -> tagger::watch::config::StationConfig {
    tagger::watch::config::StationConfig::load(Path::new("firmware-config/raspberry-pi-4.toml"))
        .unwrap()
}

/// The model the device files run, as this checkout has it: None for the built-in model, else
/// the file of that name under models/, or for an NNEF file not kept there, the NNEF form of
/// the ONNX model of that name, converted once per test process (tests/nnef.rs checks the two
/// forms agree).
fn device_model() -> Option<String> {
    static CONVERTED: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    pi4().model.path.map(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let path = models.join(&name);
        match name.strip_suffix(".nnef.tgz") {
            Some(stem) if !path.exists() => CONVERTED
                .get_or_init(|| {
                    let dir =
                        std::env::temp_dir().join(format!("tag-station-{}", std::process::id()));
                    std::fs::create_dir_all(&dir).unwrap();
                    let out = dir.join(&name);
                    tagger::convert::to_nnef(&models.join(format!("{stem}.onnx")), &out).unwrap();
                    out
                })
                .display()
                .to_string(),
            _ => path.display().to_string(),
        }
    })
}

/// A station config that replays `source` with the Raspberry Pi 4 file's ROI and verdict
/// settings (its camera is 640x480, like the fixture frames) and the model the device files
/// run.
fn pi4_replay_config(dir: &Path, source: &Path) -> std::path::PathBuf {
    let pi4 = pi4();
    let cfg = dir.join("pi4-replay.toml");
    std::fs::write(
        &cfg,
        format!(
            "target = \"pi4 replay\"\n[model]\n{}[source]\nuri = \"{}\"\n[roi]\nx = {}\ny = {}\nwidth = {}\nheight = {}\n[verdict]\nthreshold = {}\ndebounce = {}\n[output]\nstats_json = true\n",
            device_model()
                .map(|m| format!("path = \"{m}\"\n"))
                .unwrap_or_default(),
            source.display(),
            pi4.roi.x,
            pi4.roi.y,
            pi4.roi.width,
            pi4.roi.height,
            pi4.verdict.threshold,
            pi4.verdict.debounce
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn passing_products_are_reported_once_and_the_empty_belt_never() {
    let (frames, truth) = passby();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = pi4_replay_config(tmp.path(), &frames);
    let o = tag(&["watch", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The products in the order they pass, each once.
    let mut expected: Vec<String> = vec![];
    for (_, label) in &truth {
        if label != "none" && expected.last() != Some(label) {
            expected.push(label.clone());
        }
    }
    assert!(expected.len() >= 3, "{truth:?}");
    let verdicts = jsonl(&o);
    assert!(verdicts.iter().all(|v| v["event"] == "verdict"));
    assert_eq!(labels(&verdicts), expected, "{}", stderr(&o));
    // The warning about a non-3:4 region does not fire for the Pi 4 file's ROI.
    assert!(
        !stderr(&o).contains("not the model's 3:4"),
        "{}",
        stderr(&o)
    );
    assert_eq!(summary(&o)["processed"].as_u64(), Some(truth.len() as u64));
}

#[test]
fn station_frames_through_watch_agree_with_batch_tagging_of_the_crops() {
    let (frames, truth) = passby();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = pi4_replay_config(tmp.path(), &frames);
    let o = tag(&[
        "watch",
        "--config",
        cfg.to_str().unwrap(),
        "--all-frames",
        "--threshold",
        "0",
        "--debounce",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let watched = jsonl(&o);
    assert_eq!(watched.len(), truth.len());
    // The same ROI cut by hand, saved losslessly, tagged as photos.
    let pi4 = pi4();
    let crops = tmp.path().join("crops");
    std::fs::create_dir(&crops).unwrap();
    for (file, _) in &truth {
        let img = image::open(frames.join(file)).unwrap();
        let (x, y, w, h) = pi4.roi.pixels(img.width(), img.height());
        img.crop_imm(x, y, w, h)
            .save(crops.join(file.replace(".jpg", ".png")))
            .unwrap();
    }
    let model = device_model();
    let mut args: Vec<&str> = model.iter().flat_map(|m| ["--model", m.as_str()]).collect();
    args.extend([
        "--format",
        "jsonl",
        "--threshold",
        "0",
        crops.to_str().unwrap(),
    ]);
    let batch = jsonl(&tag(&args));
    assert_eq!(batch.len(), truth.len());
    for (w, b) in watched.iter().zip(&batch) {
        assert_eq!(w["label"], b["label"], "{w} vs {b}");
        let (c1, c2) = (
            w["confidence"].as_f64().unwrap(),
            b["confidence"].as_f64().unwrap(),
        );
        assert!((c1 - c2).abs() < 1e-5, "{w} vs {b}");
    }
    // And the crops are what the frames say: `none` on the empty belt, the product otherwise,
    // for nearly every frame (the model's station accuracy, not a tautology).
    let right = batch
        .iter()
        .zip(&truth)
        .filter(|(b, (_, t))| b["label"] == t.as_str())
        .count();
    assert!(
        right * 10 >= truth.len() * 9,
        "{right}/{} frames right",
        truth.len()
    );
}
