//! The review page in a real headless Chromium, driven by keyboard through the Chrome DevTools
//! Protocol: label a few collected items with their keys, skip one, undo one, reload, and the
//! labels are there (on the page and in labels.csv). Ignored unless asked for (`.ci/run` runs it
//! with `--ignored`): it needs Chromium.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A GET that reads the body by its Content-Length (Chromium's DevTools server keeps the
/// connection open).
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0u8; len.expect("a Content-Length")];
    r.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// One page's DevTools session.
struct Devtools {
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Devtools {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws
            .send(
                json!({"id": id, "method": method, "params": params})
                    .to_string()
                    .into(),
            )
            .unwrap();
        loop {
            let msg = self.ws.read().unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    fn wait(&mut self, what: &str, expr: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(expr);
            if ok(&v) {
                return v;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "{what}: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Presses `key` (a digit or a lowercase letter) as a person would.
    fn press(&mut self, key: char) {
        let code = if key.is_ascii_digit() {
            format!("Digit{key}")
        } else {
            format!("Key{}", key.to_ascii_uppercase())
        };
        let vk = key.to_ascii_uppercase() as u32;
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({"type": kind, "key": key.to_string(), "code": code, "windowsVirtualKeyCode": vk});
            if kind == "keyDown" {
                p["text"] = json!(key.to_string());
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    fn item(&mut self) -> String {
        self.eval("document.body.dataset.item")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Presses `key` and waits for the page to show `then`.
    fn press_until(&mut self, key: char, then: &str) {
        self.press(key);
        let want = then.to_string();
        self.wait(
            &format!("after `{key}` the page shows {then}"),
            "document.body.dataset.item",
            |v| v == &json!(want),
        );
    }
}

#[test]
#[ignore = "needs chromium (apt-get install chromium): cargo test --test review_page -- --ignored"]
fn labelling_by_keyboard_in_chromium_survives_a_reload() {
    let browser = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let frames = belt(tmp.path());
    let dir = tmp.path().join("collected");
    let o = tag(&[
        "watch",
        "--source",
        frames.to_str().unwrap(),
        "--model",
        &robust_model(),
        "--collect",
        dir.to_str().unwrap(),
        "--threshold",
        "1.0",
        "--debounce",
        "1",
        "--fps",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let mut review = Killed(
        tag_command()
            .args([
                "review",
                dir.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--http-token",
                "tok",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(review.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("on http://")
        .nth(1)
        .expect(&line)
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let list: Value = serde_json::from_str(&http_get(&addr, "/review/items?token=tok")).unwrap();
    let classes: Vec<String> = serde_json::from_value(list["classes"].clone()).unwrap();
    let ids: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().into())
        .collect();
    assert!(ids.len() >= 5, "{} items", ids.len());
    let url = format!("http://{addr}/review?token=tok");

    let profile = tempfile::tempdir().unwrap();
    let _chrome = Killed(
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let port_file = profile.path().join("DevToolsActivePort");
    let t = Instant::now();
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
        {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromium did not open its DevTools port"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets: Value =
        serde_json::from_str(&http_get(&format!("127.0.0.1:{port}"), "/json/list")).unwrap();
    let ws_url = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .expect("a page")["webSocketDebuggerUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let (ws, _) = tungstenite::connect(ws_url).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    let mut dt = Devtools { ws, next: 0 };
    dt.wait("the page loads", "document.body.dataset.ready", |v| {
        v == "yes"
    });
    assert_eq!(dt.item(), ids[0]);

    dt.press_until('1', &ids[1]); // ids[0]: the first class
    dt.press_until('x', &ids[2]); // ids[1]: not a product
    dt.press_until('s', &ids[3]); // ids[2]: skipped
    dt.press_until('2', &ids[4]); // ids[3]: the second class...
    dt.press_until('u', &ids[3]); // ...taken back
    dt.press_until('3', &ids[4]); // ids[3]: the third class
    let progress = dt.eval("document.getElementById('progress').textContent");
    assert_eq!(progress, json!(format!("3 of {} labelled", ids.len())));

    dt.call("Page.reload", json!({}));
    std::thread::sleep(Duration::from_millis(300));
    dt.wait("the page reloads", "document.body.dataset.ready", |v| {
        v == "yes"
    });
    // After a reload the first unlabelled item is the skipped one; the counts are the labels.
    assert_eq!(dt.item(), ids[2]);
    let counts = dt.eval("[...document.querySelectorAll('#counts .count')].map(c => c.dataset.label + '=' + c.lastChild.textContent).sort().join(' ')");
    let mut want = [
        format!("{}=1", classes[0]),
        format!("{}=1", classes[2]),
        "none=1".to_string(),
    ];
    want.sort();
    assert_eq!(counts, json!(want.join(" ")));
    let labels = tagger::collect::labels::Labels::load(&dir).unwrap();
    assert_eq!(labels.get(&ids[0]), Some(classes[0].as_str()));
    assert_eq!(labels.get(&ids[1]), Some("none"));
    assert_eq!(labels.get(&ids[2]), None);
    assert_eq!(labels.get(&ids[3]), Some(classes[2].as_str()));
    assert_eq!(labels.decisions(), 5, "four keys that label, one undo");

    let shot = std::env::var("TAG_REVIEW_SCREENSHOT")
        .unwrap_or_else(|_| format!("{}/review-page.png", env!("CARGO_TARGET_TMPDIR")));
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,800",
        ])
        .args(["--virtual-time-budget=4000", "--timeout=20000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={shot}"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot of the review page: {shot}");
}
