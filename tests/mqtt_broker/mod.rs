//! The broker side of tests/mqtt.rs: a Mosquitto on a free loopback port with its own config
//! and store, a `mosquitto_sub` warehouse, and a CA made with openssl.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const STATION: &str = "test-station";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian puts the broker in /usr/sbin, which a user's PATH may lack.
pub fn mosquitto() -> PathBuf {
    let sbin = Path::new("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin.into()
    } else {
        "mosquitto".into()
    }
}

/// A Mosquitto on 127.0.0.1:`port` with its own config; killed when dropped.
pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// `extra`: more config lines (listener options, password file, TLS files).
    pub fn start(dir: &Path, port: u16, extra: &str) -> Self {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let store = dir.join("broker-store");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(
            &conf,
            format!(
                // `user root`: started as root (CI), Mosquitto would otherwise become the
                // `mosquitto` user and could read neither this folder nor the TLS keys in it;
                // started as anyone else, it stays that user.
                "listener {port} 127.0.0.1\nuser root\npersistence true\npersistence_location {}/\n\
                 log_dest file {}\n{extra}\n",
                store.display(),
                dir.join(format!("mosquitto-{port}.log")).display()
            ),
        )
        .unwrap();
        let mut b = Self {
            port,
            conf,
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt-get install mosquitto)");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(self.conf.with_extension("log"));
                panic!("mosquitto did not start: {}", log.unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker the way a restart does (SIGTERM: Mosquitto saves its sessions, so the
    /// warehouse's subscription survives; what the broker acknowledged is the broker's to keep).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `mosquitto_sub` on everything under the prefix, with a persistent session (QoS 1), so it
/// also gets what was sent while it reconnected after a broker restart.
pub struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Subscriber {
    pub fn start(port: u16, id: &str, args: &[&str]) -> Self {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "ft/#",
                "-v",
            ])
            .args(["-q", "1", "-c", "-i", &format!("{id}-{port}")])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs (apt-get install mosquitto-clients)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some((topic, body)) = line.split_once(' ') {
                    if let Ok(v) = serde_json::from_str(body) {
                        sink.lock().unwrap().push((topic.to_string(), v));
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Self { child, lines }
    }

    pub fn on(&self, topic: &str) -> Vec<Value> {
        let full = format!("ft/{STATION}/{topic}");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == full)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Waits until `n` verdicts arrived (or 20 s passed); the verdicts.
    pub fn verdicts(&self, n: usize) -> Vec<Value> {
        let t = Instant::now();
        while self.on("verdicts").len() < n && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.on("verdicts")
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let cert = dir.join(format!("{name}-server.pem"));
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let p = |p: &Path| p.display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (ca, cert, key)
}
