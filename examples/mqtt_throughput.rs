//! What publishing costs: the durable outbox write per verdict (median and p99 of `N` commits,
//! each fsynced), and verdicts per second through the outbox to a broker until every one is
//! acknowledged. `benches/mqtt.sh` starts a Mosquitto on loopback and runs this.
//!
//!   cargo run --release --example mqtt_throughput -- mqtt://127.0.0.1:1883 [N] [OUTBOX_DIR]

use std::time::{Duration, Instant};
use tagger::measure::percentile;
use tagger::publish::config::MqttSection;
use tagger::publish::outbox::{Bounds, Outbox};
use tagger::publish::{Origin, Publisher};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("mqtt://127.0.0.1:1883".into());
    let n: u64 = args.get(2).map_or(Ok(2000), |s| s.parse())?;
    let dir = match args.get(3) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("mqtt-throughput-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let verdict = |i: u64| {
        serde_json::json!({"timestamp": "2026-12-07T08:00:00.000Z", "frame": i, "label": "Shoes",
                           "confidence": 0.93, "snapshot": format!("{i:09}-Shoes.jpg")})
    };

    // 1. The durable write alone: push (commit + fsync) of one verdict, then its removal.
    let bounds = Bounds {
        max_messages: 1 << 20,
        max_bytes: 1 << 30,
    };
    let (outbox, _) = Outbox::open(&dir.join("alone.redb"), bounds)?;
    let (mut push_ms, mut remove_ms) = (Vec::new(), Vec::new());
    for i in 0..n.min(1000) {
        let t = Instant::now();
        let seq = outbox.push(|_| verdict(i).to_string().into_bytes())?;
        push_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        outbox.remove(&[seq])?;
        remove_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    push_ms.sort_by(f64::total_cmp);
    remove_ms.sort_by(f64::total_cmp);
    println!(
        "outbox write per verdict (commit + fsync, {} runs): median {:.3} ms, p99 {:.3} ms; removal median {:.3} ms",
        push_ms.len(),
        percentile(&push_ms, 50.0),
        percentile(&push_ms, 99.0),
        percentile(&remove_ms, 50.0)
    );

    // 2. Through the outbox to the broker: N verdicts queued as fast as the disk allows, timed
    //    until the broker acknowledged the last.
    let cfg: MqttSection = toml::from_str(&format!(
        "url = \"{url}\"\nstation = \"bench\"\noutbox = \"{}\"\nmax_rate = 1000000\n",
        dir.join("outbox.redb").display()
    ))?;
    let origin = Origin {
        model: "bench".into(),
        model_version: "0".into(),
        model_sha256: "0".repeat(64),
    };
    let publisher = Publisher::start(&cfg, origin, Box::new(serde_json::Value::default))?
        .expect("a URL was given");
    let monitor = publisher.monitor();
    let t = Instant::now();
    while !monitor.status().connected {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "no broker at {url}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    for i in 0..n {
        publisher.verdict(verdict(i));
    }
    let queued_s = start.elapsed().as_secs_f64();
    while monitor.status().published < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "not all acknowledged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let total_s = start.elapsed().as_secs_f64();
    let s = publisher.close();
    println!(
        "{n} verdicts through the outbox to {url}: queued in {queued_s:.2} s, all acknowledged after {total_s:.2} s: {:.0} verdicts/s (QoS 1; {} left queued)",
        n as f64 / total_s,
        s.queued
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
