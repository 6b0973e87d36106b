//! `tag watch` swaps its model while running: a new model file is loaded, probed and swapped in
//! between two frames (no frame or verdict lost, the page and `/metrics` name the new one, the
//! verdicts carry its tags); a broken file and SIGHUP leave the running model and the station
//! alone.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Replaces `to` the way a deployment should: written beside it, then renamed over it.
fn replace(to: &Path, bytes: &[u8]) {
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// A station replaying the example photos with the model file `model`; its stdout and stderr
/// are collected by threads so it never blocks on them.
struct Station {
    child: Child,
    addr: String,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Station {
    fn start(model: &Path) -> Self {
        let mut child = tag_command()
            .args([
                "watch",
                "--source",
                examples().to_str().unwrap(),
                "--repeat",
            ])
            .args([
                "--fps",
                "20",
                "--threshold",
                "0",
                "--debounce",
                "1",
                "--stats-json",
            ])
            .args(["--http", "127.0.0.1:0", "--model", model.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tag watch starts");
        let err = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = err.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.split("live page on http://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let out = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("tag watch says where it serves");
        Self {
            child,
            addr,
            out,
            err,
        }
    }

    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: station\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw.split_once("\r\n\r\n")
            .map_or(raw.clone(), |(_, b)| b.to_string())
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status")).unwrap()
    }

    /// Polls `/status` until `ok` holds (15 s at most).
    fn wait_for(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if ok(&s) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "{what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, then (exit code, stdout, stderr lines).
    fn stop(mut self) -> (Option<i32>, String, Vec<String>) {
        self.signal("-TERM");
        let code = self.child.wait().unwrap().code();
        std::thread::sleep(Duration::from_millis(200));
        let out = self.out.lock().unwrap().clone();
        let err = self.err.lock().unwrap().clone();
        (code, out, err)
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha(path: &Path) -> String {
    tagger::watch::reload::sha256(&std::fs::read(path).unwrap())
}

#[test]
fn a_model_swapped_in_during_a_replay_loses_no_frame_and_the_page_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("station.onnx");
    let (robust, multihead) = (
        models().join("robust.onnx"),
        models().join("multihead.onnx"),
    );
    std::fs::copy(&robust, &model).unwrap();
    let station = Station::start(&model);
    let before = station.wait_for("frames", |s| s["frames"].as_u64() > Some(10));
    assert_eq!(before["model"]["sha256"], sha(&robust));
    assert_eq!(before["model"]["swaps"], 0);

    replace(&model, &std::fs::read(&multihead).unwrap());
    let after = station.wait_for("the new model", |s| s["model"]["sha256"] == sha(&multihead));
    assert_eq!(after["model"]["name"], "multihead");
    assert_eq!(after["model"]["swaps"], 1);
    let frames = after["frames"].as_u64().unwrap();
    station.wait_for("frames after the swap", |s| {
        s["frames"].as_u64() > Some(frames + 10)
    });
    let metrics = station.get("/metrics");
    assert!(
        metrics.contains("tag_model_info{name=\"multihead\"") && metrics.contains("swaps=\"1\""),
        "{metrics}"
    );

    let (code, out, err) = station.stop();
    assert_eq!(code, Some(0), "{err:?}");
    assert!(
        err.iter()
            .any(|l| l.contains("model swapped in: multihead")),
        "{err:?}"
    );
    let summary: Value = err
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("summary");
    // No frame lost: every captured frame was classified (none dropped at 20 fps).
    assert_eq!(summary["captured"], summary["processed"], "{summary}");
    assert_eq!(summary["dropped"], 0, "{summary}");
    // No verdict lost, and the verdicts after the swap carry the new model's tags.
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "verdict")
        .collect();
    assert_eq!(records.len() as u64, summary["verdicts"].as_u64().unwrap());
    let tagged = records.iter().position(|r| r.get("tags").is_some());
    let tagged = tagged.expect("verdicts of the multi-head model");
    assert!(tagged > 0, "the first verdicts come from robust");
    assert!(records[tagged..].iter().all(|r| r.get("tags").is_some()));
}

#[test]
fn a_broken_model_file_and_sighup_leave_the_running_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("station.onnx");
    let robust = models().join("robust.onnx");
    std::fs::copy(&robust, &model).unwrap();
    let station = Station::start(&model);
    station.wait_for("frames", |s| s["frames"].as_u64() > Some(5));

    // SIGHUP with an unchanged file: a reload that finds nothing new, not a hang-up.
    station.signal("-HUP");
    replace(&model, b"this is not an ONNX model");
    let t = Instant::now();
    while !station
        .err
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("not swapped in"))
    {
        assert!(t.elapsed() < Duration::from_secs(15), "no refusal logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = station.status();
    assert_eq!(now["model"]["sha256"], sha(&robust));
    let frames = now["frames"].as_u64().unwrap();
    station.wait_for("frames after the refusal", |s| {
        s["frames"].as_u64() > Some(frames + 10)
    });

    let (code, _, err) = station.stop();
    assert_eq!(code, Some(0), "{err:?}");
    let refusal = err.iter().find(|l| l.contains("not swapped in")).unwrap();
    assert!(
        refusal.contains("station.onnx") && refusal.contains("carries on"),
        "{refusal}"
    );
    assert!(
        !err.iter().any(|l| l.contains("model swapped in")),
        "{err:?}"
    );
}
