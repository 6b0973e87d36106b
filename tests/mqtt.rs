//! `tag watch --mqtt` against a real Mosquitto started here on a free loopback port, with
//! `mosquitto_sub` as the warehouse: every verdict arrives, in order, with its fields; a broker
//! down at start, killed mid-run, a station killed with SIGKILL, a full outbox, a wrong
//! password, TLS with a CA made here and an unknown CA; the retained status and the last will.
//!
//! Ignored unless asked for (`.ci/run` runs them with `--ignored`): they need `mosquitto` and
//! `mosquitto_sub` (`apt-get install mosquitto mosquitto-clients`). The first test, the device
//! files' `[mqtt]` example, needs neither and always runs.

mod common;
mod mqtt_broker;

use common::*;
use mqtt_broker::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Each device file's commented `[mqtt]` example is valid once uncommented (without the files
/// it names: those are checked when the station starts).
#[test]
fn every_device_file_has_a_valid_mqtt_example() {
    for (p, block) in device_examples("mqtt", |_| true) {
        let mqtt: String = block
            .lines()
            .filter(|l| !l.starts_with("password_file") && !l.starts_with("ca_file"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            mqtt.starts_with("[mqtt]"),
            "{}: no [mqtt] example",
            p.display()
        );
        let cfg: tagger::watch::config::StationConfig = toml::from_str(&mqtt)
            .unwrap_or_else(|e| panic!("{}: [mqtt] example: {e}", p.display()));
        cfg.validate()
            .unwrap_or_else(|e| panic!("{}: [mqtt] example: {e:#}", p.display()));
        assert!(cfg.mqtt.url.unwrap().starts_with("mqtts://"));
    }
}

/// A station config publishing to `url`, with the outbox in `dir`.
fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let p = dir.join("station.toml");
    std::fs::write(
        &p,
        format!(
            "[mqtt]\nurl = \"{url}\"\nprefix = \"ft\"\nstation = \"{STATION}\"\noutbox = \"{}\"\nreconnect_max_s = 0.5\n{extra}\n",
            dir.join("outbox.redb").display()
        ),
    )
    .unwrap();
    p
}

/// `tag watch` over the example photos; with debounce 1 every change of label is a verdict.
fn watch_args(cfg: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["watch", "--source"].map(String::from).to_vec();
    a.push(examples().display().to_string());
    a.extend(
        [
            "--threshold",
            "0",
            "--debounce",
            "1",
            "--stats-json",
            "--config",
        ]
        .map(String::from),
    );
    a.push(cfg.display().to_string());
    a
}

fn run_watch(cfg: &Path, more: &[&str]) -> Output {
    tag_command()
        .args(watch_args(cfg))
        .args(more)
        .output()
        .expect("tag runs")
}

/// The verdict records `tag watch` wrote on stdout.
fn produced(o: &Output) -> Vec<Value> {
    jsonl(o)
        .into_iter()
        .filter(|r| r["event"] == "verdict")
        .collect()
}

fn seqs(received: &[Value]) -> Vec<u64> {
    received
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

/// Received in order, each once: 1..=n, then the labels agree with stdout.
fn assert_all_once_in_order(received: &[Value], produced: &[Value]) {
    let want: Vec<u64> = (1..=produced.len() as u64).collect();
    let mut first_seen = seqs(received);
    let mut seen = std::collections::HashSet::new();
    first_seen.retain(|s| seen.insert(*s));
    assert_eq!(first_seen, want, "verdict seqs received (first arrivals)");
    for (r, p) in first_seen.iter().zip(produced) {
        let r = received.iter().find(|v| v["seq"] == *r).unwrap();
        assert_eq!(
            (&r["label"], &r["frame"]),
            (&p["label"], &p["frame"]),
            "{r} vs {p}"
        );
    }
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn every_verdict_arrives_once_in_order_with_its_fields_and_the_status_is_retained() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    let cfg = config(dir.path(), &format!("mqtt://127.0.0.1:{port}"), "");
    let o = run_watch(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let produced = produced(&o);
    assert!(produced.len() >= 5, "{}", produced.len());
    let received = sub.verdicts(produced.len());
    assert_eq!(received.len(), produced.len(), "each verdict exactly once");
    assert_all_once_in_order(&received, &produced);
    let ids: std::collections::HashSet<&str> =
        received.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), received.len());
    let v = &received[0];
    assert_eq!(v["id"], format!("{STATION}:1"));
    assert_eq!(v["station"], STATION);
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(v["confidence"].as_f64().unwrap() > 0.0);
    assert_eq!(v["model"]["sha256"].as_str().unwrap().len(), 64);
    assert!(v["model"]["name"].is_string());
    let s = summary(&o);
    assert_eq!(s["mqtt"]["published"].as_u64(), Some(produced.len() as u64));
    assert_eq!(s["mqtt"]["queued"].as_u64(), Some(0));
    // The status went online, then offline on a clean stop, and stays retained for newcomers.
    let states: Vec<Value> = sub
        .on("status")
        .iter()
        .map(|v| v["state"].clone())
        .collect();
    assert_eq!(states.first(), Some(&Value::from("online")), "{states:?}");
    assert_eq!(states.last(), Some(&Value::from("offline")), "{states:?}");
    let late = Subscriber::start(port, "newcomer", &["-C", "1", "-W", "5"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        late.on("status").first().map(|v| v["state"].clone()),
        Some("offline".into())
    );
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_broker_down_at_start_gets_the_queue_when_it_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!("mqtt://127.0.0.1:{port}"),
        "drain_s = 10",
    );
    let mut station = spawn_station(&cfg, "20");
    std::thread::sleep(Duration::from_secs(2));
    let _broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    std::thread::sleep(Duration::from_secs(3));
    stop(&station);
    let o = wait(&mut station);
    let produced = produced(&o);
    let received = sub.verdicts(produced.len());
    assert_all_once_in_order(&received, &produced);
    assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
}

/// `tag watch` replaying the example photos at `fps` until stopped, its output piped.
fn spawn_station(cfg: &Path, fps: &str) -> Child {
    tag_command()
        .args(watch_args(cfg))
        .args(["--repeat", "--fps", fps])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait(child: &mut Child) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "tag watch did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read;
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout: out,
        stderr: err,
    }
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_broker_restarted_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    let cfg = config(
        dir.path(),
        &format!("mqtt://127.0.0.1:{port}"),
        "drain_s = 10",
    );
    let mut station = spawn_station(&cfg, "20");
    std::thread::sleep(Duration::from_secs(2));
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    std::thread::sleep(Duration::from_secs(3));
    stop(&station);
    let o = wait(&mut station);
    let produced = produced(&o);
    let received = sub.verdicts(produced.len());
    assert_all_once_in_order(&received, &produced);
    let s = summary(&o);
    assert_eq!(s["mqtt"]["queued"].as_u64(), Some(0), "{s}");
    assert!(s["mqtt"]["published"].as_u64().unwrap() >= produced.len() as u64);
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_station_killed_with_sigkill_sends_its_queue_after_the_restart_and_the_will_says_offline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    // Broker down: every verdict stays in the outbox until the kill.
    let cfg = config(dir.path(), &url, "");
    let mut station = spawn_station(&cfg, "30");
    std::thread::sleep(Duration::from_secs(3));
    station.kill().unwrap();
    let killed = wait(&mut station);
    // Every verdict on stdout was committed to the outbox first.
    let produced = produced(&killed);
    assert!(produced.len() > 5, "{}", stderr(&killed));
    let _broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    // The restarted station (one frame) sends the queue, then its own verdict.
    let o = run_watch(&cfg, &["--max-frames", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was not closed cleanly"),
        "{}",
        stderr(&o)
    );
    let received = sub.verdicts(produced.len() + 1);
    let first: Vec<u64> = seqs(&received);
    assert_eq!(
        &first[..produced.len()],
        (1..=produced.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(received.len(), produced.len() + 1);

    // A station killed while connected: the broker publishes the will, `offline`, retained.
    let mut station = spawn_station(&cfg, "5");
    let t = Instant::now();
    while sub.on("status").last().map(|v| v["state"].clone()) != Some("online".into()) {
        assert!(t.elapsed() < Duration::from_secs(10), "no online status");
        std::thread::sleep(Duration::from_millis(50));
    }
    station.kill().unwrap();
    station.wait().unwrap();
    let t = Instant::now();
    while sub.on("status").last().map(|v| v["state"].clone()) != Some("offline".into()) {
        assert!(t.elapsed() < Duration::from_secs(10), "no last will");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_full_outbox_drops_the_oldest_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!("mqtt://127.0.0.1:{port}"),
        "outbox_max_verdicts = 3",
    );
    let o = run_watch(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let n = produced(&o).len() as u64;
    assert!(n > 3);
    let s = summary(&o);
    assert_eq!(s["mqtt"]["queued"].as_u64(), Some(3), "{s}");
    assert_eq!(s["mqtt"]["dropped"].as_u64(), Some(n - 3), "{s}");
    assert!(stderr(&o).contains("OUTBOX FULL"), "{}", stderr(&o));
    let _broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    let o = run_watch(&cfg, &["--max-frames", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The new verdict may be queued before the link drains the three: then it pushes out the
    // oldest of them, and the second run counts that drop.
    let dropped_now = summary(&o)["mqtt"]["dropped"].as_u64().unwrap();
    let want: Vec<u64> = (n - 2 + dropped_now..=n + 1).collect();
    let got = seqs(&sub.verdicts(want.len()));
    assert_eq!(
        got, want,
        "the newest three, then the new one ({dropped_now} dropped)"
    );
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_wrong_password_is_named_and_the_station_keeps_tagging_and_queuing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let passwords = dir.path().join("passwd");
    std::fs::write(&passwords, "station:right\n").unwrap();
    let hashed = Command::new("mosquitto_passwd")
        .args(["-U", passwords.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(hashed.success());
    let _broker = Broker::start(
        dir.path(),
        port,
        &format!(
            "allow_anonymous false\npassword_file {}",
            passwords.display()
        ),
    );
    let secret = dir.path().join("mqtt.password");
    std::fs::write(&secret, "not-the-password-7x\n").unwrap();
    let cfg = config(
        dir.path(),
        &format!("mqtt://station@127.0.0.1:{port}"),
        &format!("password_file = \"{}\"", secret.display()),
    );
    let o = run_watch(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("refused the connection"), "{err}");
    assert!(
        !err.contains("not-the-password"),
        "the password is never printed: {err}"
    );
    let n = produced(&o).len() as u64;
    assert_eq!(summary(&o)["mqtt"]["queued"].as_u64(), Some(n));
    // The right password: the queue drains.
    std::fs::write(&secret, "right\n").unwrap();
    let o = run_watch(&cfg, &["--max-frames", "1"]);
    let s = summary(&o);
    assert_eq!(s["mqtt"]["queued"].as_u64(), Some(0), "{}", stderr(&o));
    assert_eq!(s["mqtt"]["published"].as_u64(), Some(n + 1));
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn tls_with_a_ca_made_here_works_and_an_unknown_ca_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (ca, cert, key) = make_ca(dir.path(), "good");
    let (other_ca, _, _) = make_ca(dir.path(), "other");
    let _broker = Broker::start(
        dir.path(),
        port,
        &format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}",
            ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let sub = Subscriber::start(port, "warehouse", &["--cafile", ca.to_str().unwrap()]);
    let url = format!("mqtts://127.0.0.1:{port}");
    let cfg = config(
        dir.path(),
        &url,
        &format!("ca_file = \"{}\"", other_ca.display()),
    );
    let o = run_watch(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("TLS with broker"), "{}", stderr(&o));
    let n = produced(&o).len();
    let cfg = config(dir.path(), &url, &format!("ca_file = \"{}\"", ca.display()));
    let o = run_watch(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = n + produced(&o).len();
    let received = sub.verdicts(all);
    assert_eq!(seqs(&received), (1..=all as u64).collect::<Vec<_>>());
}

#[test]
#[ignore = "needs mosquitto: cargo test --test mqtt -- --ignored"]
fn a_model_swapped_in_is_named_by_the_retained_status_and_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "allow_anonymous true");
    let sub = Subscriber::start(port, "warehouse", &[]);
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let model = dir.path().join("station.onnx");
    std::fs::copy(models.join("robust.onnx"), &model).unwrap();
    let sha = |p: &Path| tagger::watch::reload::sha256(&std::fs::read(p).unwrap());
    let (before, after) = (sha(&model), sha(&models.join("multihead.onnx")));
    let cfg = config(dir.path(), &format!("mqtt://127.0.0.1:{port}"), "");
    let mut station = tag_command()
        .args(watch_args(&cfg))
        .args([
            "--repeat",
            "--fps",
            "20",
            "--model",
            model.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let online = |sha: &str| {
        let last = sub
            .on("status")
            .into_iter()
            .rev()
            .find(|v| v["state"] == "online");
        last.is_some_and(|v| v["model_sha256"] == sha)
    };
    until("online, naming the first model", || online(&before));
    let tmp = dir.path().join("station.onnx.new");
    std::fs::copy(models.join("multihead.onnx"), &tmp).unwrap();
    std::fs::rename(&tmp, &model).unwrap();
    until("online, naming the new model", || online(&after));
    // Verdicts from the swap on carry the new model; a newcomer sees the new status retained.
    let new_verdict = || {
        sub.on("verdicts")
            .iter()
            .any(|v| v["model"]["sha256"] == after.as_str())
    };
    until("a verdict from the new model", new_verdict);
    let late = Subscriber::start(port, "late", &[]);
    until("a retained status", || !late.on("status").is_empty());
    assert_eq!(late.on("status")[0]["model_sha256"], after.as_str());
    stop(&station);
    until("tag watch stops", || station.try_wait().unwrap().is_some());
    assert_eq!(station.wait().unwrap().code(), Some(0));
}

/// Waits up to 15 s for `ok`.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(15), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
