//! `tag watch` end to end: folder replay, an MJPEG camera on loopback (with a corrupt frame and
//! a dropped connection), snapshots, SIGTERM, a soak run, bad configs and sources, and every
//! shipped firmware config.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn folder_replay_agrees_with_batch_tagging() {
    let dir = examples();
    let dir = dir.to_str().unwrap();
    let batch = tag(&["--format", "jsonl", dir]);
    assert_eq!(batch.status.code(), Some(0), "{}", stderr(&batch));
    let watch = tag(&[
        "watch",
        "--source",
        dir,
        "--all-frames",
        "--threshold",
        "0",
        "--debounce",
        "1",
        "--stats-json",
    ]);
    assert_eq!(watch.status.code(), Some(0), "{}", stderr(&watch));
    let frames = jsonl(&watch);
    assert_eq!(frames.len(), 13);
    // Same preprocessing and model as `tag`: same label and confidence for each frame.
    assert_eq!(labels(&frames), labels(&jsonl(&batch)));
    for (f, b) in frames.iter().zip(jsonl(&batch)) {
        let (c1, c2) = (
            f["confidence"].as_f64().unwrap(),
            b["confidence"].as_f64().unwrap(),
        );
        assert!((c1 - c2).abs() < 1e-5, "{f} vs {b}");
        assert!(f["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(f["latency_ms"].as_f64().unwrap() > 0.0);
    }
    // With debounce 1 every change of label is a new product; a repeat is not.
    for (i, f) in frames.iter().enumerate() {
        let new = i == 0 || frames[i - 1]["label"] != f["label"];
        assert_eq!(f["event"] == "verdict", new, "{f}");
    }
    let s = summary(&watch);
    assert_eq!(
        (s["captured"].as_u64(), s["processed"].as_u64()),
        (Some(13), Some(13))
    );
    assert_eq!(
        s["dropped"].as_u64(),
        Some(0),
        "a replay never drops frames"
    );
}

fn part(jpeg: &[u8]) -> Vec<u8> {
    let mut p = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    p.extend_from_slice(jpeg);
    p.extend_from_slice(b"\r\n");
    p
}

/// A camera on loopback: the first connection sends 6 shoes, a truncated frame and 6 watches,
/// then drops; the second sends 6 bags. Frames are paced like a 30 fps camera.
fn camera() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let read = |f: &str| std::fs::read(example(f)).unwrap();
    let (shoes, watches, bags) = (read("shoes.jpg"), read("watches.jpg"), read("bags.jpg"));
    let corrupt = shoes[..shoes.len() / 2].to_vec();
    let sessions = vec![
        [vec![shoes; 6], vec![corrupt], vec![watches; 6]].concat(),
        vec![bags; 6],
    ];
    std::thread::spawn(move || {
        for frames in sessions {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req);
            let _ = s.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n",
            );
            for f in frames {
                if s.write_all(&part(&f)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(33));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    format!("http://{addr}/video.mjpg")
}

#[test]
fn mjpeg_camera_on_loopback_yields_the_products() {
    let url = camera();
    let snaps = tempfile::tempdir().unwrap();
    let o = tag(&[
        "watch",
        "--source",
        &url,
        "--max-frames",
        "19",
        "--debounce",
        "3",
        "--stats-json",
        "--snapshots",
        snaps.path().to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let verdicts = jsonl(&o);
    assert_eq!(labels(&verdicts), ["Shoes", "Watches", "Bags"], "{err}");
    let s = summary(&o);
    assert_eq!(s["corrupt"].as_u64(), Some(1), "{s}");
    assert_eq!(s["captured"].as_u64(), Some(19), "{s}");
    assert!(err.contains("lost") && err.contains("reconnected"), "{err}");
    // One annotated, decodable snapshot per reported product, named in the record.
    let mut files: Vec<_> = std::fs::read_dir(snaps.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for (v, f) in verdicts.iter().zip(&files) {
        assert_eq!(Path::new(v["snapshot"].as_str().unwrap()), f.as_path());
        let img = image::open(f).unwrap();
        assert_eq!((img.width(), img.height()), (60, 80));
    }
}

#[test]
fn corrupt_frames_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let shoes = std::fs::read(example("shoes.jpg")).unwrap();
    std::fs::write(dir.path().join("1-good.jpg"), &shoes).unwrap();
    std::fs::write(dir.path().join("2-empty.jpg"), b"").unwrap();
    std::fs::write(dir.path().join("3-cut.jpg"), &shoes[..shoes.len() / 2]).unwrap();
    std::fs::write(dir.path().join("4-text.png"), b"not a png").unwrap();
    std::fs::write(dir.path().join("5-good.jpg"), &shoes).unwrap();
    let o = tag(&[
        "watch",
        "--source",
        dir.path().to_str().unwrap(),
        "--all-frames",
        "--stats-json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(
        (s["corrupt"].as_u64(), s["processed"].as_u64()),
        (Some(3), Some(2))
    );
    let frames: Vec<u64> = jsonl(&o)
        .iter()
        .map(|r| r["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, [1, 5]);
    assert!(
        stderr(&o).contains("frame 3 (") && stderr(&o).contains("3-cut.jpg) could not be decoded"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn soak_run_keeps_memory_flat() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dataset/images");
    let o = tag(&[
        "watch",
        "--source",
        dir.to_str().unwrap(),
        "--repeat",
        "--max-frames",
        "3000",
        "--stats-json",
        "--stats-interval",
        "0.1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = stderr_json(&o);
    let s = summary(&o);
    assert_eq!(s["processed"].as_u64(), Some(3000), "{s}");
    let first = lines
        .iter()
        .find(|v| v["event"] == "stats" && v["processed"].as_u64().unwrap() >= 200)
        .unwrap_or_else(|| panic!("no stats line after 200 frames:\n{}", stderr(&o)));
    let (early, end) = (
        first["rss_mb"].as_f64().unwrap(),
        s["rss_mb"].as_f64().unwrap(),
    );
    assert!(early > 0.0);
    assert!(
        end - early < 4.0,
        "resident memory grew from {early:.1} MiB to {end:.1} MiB over 3000 frames"
    );
}

#[test]
fn sigterm_stops_cleanly_and_loses_nothing() {
    let mut child = common::tag_command()
        .args([
            "watch",
            "--source",
            examples().to_str().unwrap(),
            "--repeat",
            "--fps",
            "100",
        ])
        .args(["--all-frames", "--stats-json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "tag watch ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let records = jsonl(&o);
    let s = summary(&o);
    assert!(records.len() > 10, "{}", records.len());
    // Every classified frame made it to stdout, complete, before the exit.
    assert_eq!(records.len() as u64, s["processed"].as_u64().unwrap());
}

#[test]
fn bad_configs_and_sources_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("station.toml");
    std::fs::write(&cfg, "[verdict]\ntreshold = 0.7\n").unwrap();
    let ex = examples();
    let ex = ex.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--config", cfg.to_str().unwrap(), "--source", ex],
            "treshold",
        ),
        (
            vec!["--config", "/no/such.toml", "--source", ex],
            "cannot read config /no/such.toml",
        ),
        (vec![], "no frame source"),
        (vec!["--source", "/no/such/folder"], "does not exist"),
        (
            vec!["--source", "/dev/video99"],
            "cannot open camera /dev/video99",
        ),
        (vec!["--source", "http://127.0.0.1:9/x"], "unreachable"),
        (
            vec!["--source", ex, "--roi", "0.5,0,0.8,1"],
            "roi reaches outside",
        ),
        (
            vec!["--source", ex, "--threshold", "2"],
            "verdict.threshold",
        ),
        (
            vec!["--source", ex, "--model", "/no/model.onnx"],
            "cannot read model",
        ),
    ];
    for (args, want) in cases {
        let o = tag(&[&["watch"], args.as_slice()].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn every_firmware_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let cfg = tagger::watch::config::StationConfig::load(&p)
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            assert!(
                !cfg.target.is_empty() && cfg.source.uri.is_some(),
                "{}",
                p.display()
            );
            // One model everywhere: every device runs the NNEF form of the built-in model.
            let stem = Path::new(tagger::builtin::MODEL_FILE).file_stem().unwrap();
            let want = format!("{}.nnef.tgz", stem.to_string_lossy());
            let name = cfg.model.path.as_ref().and_then(|m| m.file_name());
            assert_eq!(name, Some(std::ffi::OsStr::new(&want)), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 3, "expected Pi 4, Pi 5 and Jetson configs, found {n}");
}

#[test]
fn roi_config_is_applied() {
    // A config file drives the run; its ROI crops away a wide grey belt around the product.
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    std::fs::copy("tests/fixtures/frames/station.png", frames.join("0001.png")).unwrap();
    let cfg = dir.path().join("station.toml");
    std::fs::write(
        &cfg,
        format!(
            "target = \"test\"\n[source]\nuri = \"{}\"\n[roi]\nx = 0.3125\ny = 0.1666\nwidth = 0.375\nheight = 0.6667\n[verdict]\nthreshold = 0.0\ndebounce = 1\n[output]\nstats_json = true\n",
            frames.display()
        ),
    )
    .unwrap();
    let o = tag(&["watch", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let with_roi = jsonl(&o);
    let photo = tag(&["--format", "jsonl", &example("shoes.jpg")]);
    assert_eq!(labels(&with_roi), labels(&jsonl(&photo)));
}
