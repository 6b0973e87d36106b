//! Helpers shared by the integration tests that drive the real `tag` binary.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The `tag` binary under test: the one cargo built, or `TAG_BIN` (e.g. an aarch64 build, run
/// through `TAG_RUNNER`, e.g. `qemu-aarch64 -cpu cortex-a76`: scripts/aarch64.sh).
pub fn tag_command() -> Command {
    let bin = std::env::var_os("TAG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tag")));
    match std::env::var("TAG_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

pub fn tag(args: &[&str]) -> Output {
    tag_command().args(args).output().expect("tag runs")
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

/// The station model (`models/robust.onnx`, with a `none` output), as the device configs use it.
pub fn robust_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/robust.onnx")
        .display()
        .to_string()
}

pub fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One JSON value per line of stdout (`--format jsonl`).
pub fn jsonl(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON lines `tag` wrote on stderr (events, `--stats-json` summary).
pub fn stderr_json(o: &Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The `--stats-json` summary line of a `tag watch` run.
pub fn summary(o: &Output) -> serde_json::Value {
    stderr_json(o)
        .into_iter()
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary line in stderr:\n{}", stderr(o)))
}

/// The `label` of each record.
pub fn labels(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["label"].as_str().unwrap().to_string())
        .collect()
}

/// Each example photo three times in a row: a product under the camera for three frames.
pub fn belt(dir: &Path) -> PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for (i, src) in names.iter().enumerate() {
        for k in 0..3 {
            let name = src.file_name().unwrap().to_string_lossy();
            std::fs::copy(src, frames.join(format!("{i:03}-{k}-{name}"))).unwrap();
        }
    }
    frames
}

/// Each device file (firmware-config/*.toml) with the lines of its commented `# [section]`
/// example uncommented, from that line on while `more` holds.
pub fn device_examples(section: &str, more: impl Fn(&str) -> bool) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config");
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let header = format!("# [{section}]");
        let block: String = text
            .lines()
            .skip_while(|l| *l != header)
            .take_while(|l| *l == header || more(l))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        out.push((p, block));
    }
    assert!(out.len() >= 3, "{} device files", out.len());
    out
}

/// A headless Chromium for the page tests: `TAG_CHROMIUM`, else chromium on the PATH.
pub fn chromium() -> String {
    std::env::var("TAG_CHROMIUM").ok().unwrap_or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|c| {
                Command::new(c)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("no chromium on this machine: apt-get install chromium")
            .to_string()
    })
}

/// A server started by `tag` (`tag review` or `tag watch --http`), with the address it printed.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(args: &[&str], says: &str) -> Self {
        let mut cmd = tag_command();
        cmd.args(args).stdout(Stdio::null());
        Self::spawn(cmd, says)
    }

    /// `cmd` (its stdout set by the caller) started, once it printed `says` and an address.
    pub fn spawn(mut cmd: Command, says: &str) -> Self {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let says = says.to_string();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.split(&says).nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server says where it listens");
        Self { child, addr }
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, head, raw[split + 4..].to_vec())
    }

    pub fn json(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (code, _, b) = self.request(method, path, body);
        (
            code,
            serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
