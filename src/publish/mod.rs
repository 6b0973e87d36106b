//! Verdicts out of the station to an MQTT broker, at least once, nothing lost.
//!
//! A verdict is committed to the durable [`outbox`] first (so a broker outage, `kill -9` or a
//! power cut loses nothing written), then the [`link`] thread sends the outbox in order and
//! removes each verdict when the broker acknowledges it. Topics, under `<prefix>/<station>/`:
//! `verdicts` (one JSON message each; `id` = `<station>:<seq>` survives resends, so consumers
//! can deduplicate), `status` (retained `online`/`offline`, `offline` also the last will) and
//! `metrics` (optional, every N seconds). The client is rumqttc (sync API over its own small
//! tokio runtime), TLS by rustls.

pub mod config;
mod link;
pub mod outbox;
mod tls;

use anyhow::{Context, Result};
use config::{Broker, MqttSection};
use outbox::{Bounds, Outbox};
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The station's three topics.
pub struct Topics {
    pub verdicts: String,
    pub status: String,
    pub metrics: String,
}

/// Who is publishing: fields of every status and verdict message.
#[derive(Debug, Clone)]
pub struct Origin {
    pub model: String,
    pub model_version: String,
    pub model_sha256: String,
}

/// What the link thread and the station share.
struct Shared {
    outbox: Outbox,
    broker: String,
    stop: AtomicBool,
    connected: AtomicBool,
    published: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The body of a `metrics` message (the station's counters).
    metrics: Box<dyn Fn() -> Value + Send + Sync>,
    /// The retained `status` messages; they name the model running now.
    status: Mutex<StatusMessages>,
    /// Set when the model changed: the link publishes the new `online` status.
    status_changed: AtomicBool,
}

/// The `online` and `offline` bodies of the retained status topic.
struct StatusMessages {
    online: Vec<u8>,
    offline: Vec<u8>,
}

impl StatusMessages {
    fn new(station: &str, origin: &Origin) -> Self {
        Self {
            online: status_message(station, origin, "online"),
            offline: status_message(station, origin, "offline"),
        }
    }
}

fn status_message(station: &str, origin: &Origin, state: &str) -> Vec<u8> {
    json!({"state": state, "station": station, "model": origin.model,
           "model_version": origin.model_version, "model_sha256": origin.model_sha256,
           "tag_version": env!("CARGO_PKG_VERSION"), "timestamp": timestamp()})
    .to_string()
    .into_bytes()
}

/// Publishing as `/metrics`, `/status` and the `metrics` topic show it.
#[derive(Debug, Clone, Serialize)]
pub struct PublishStatus {
    pub broker: String,
    pub connected: bool,
    /// Acknowledged by the broker since start.
    pub published: u64,
    pub queued: u64,
    pub oldest_queued_s: f64,
    /// Dropped as oldest from a full outbox since start.
    pub dropped: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub struct Publisher {
    shared: Arc<Shared>,
    station: String,
    origin: Origin,
    thread: Option<JoinHandle<()>>,
}

/// A read-only view of a running publisher, for the HTTP endpoints.
#[derive(Clone)]
pub struct Monitor(Arc<Shared>);

impl Monitor {
    pub fn status(&self) -> PublishStatus {
        status(&self.0)
    }
}

fn status(s: &Shared) -> PublishStatus {
    let (queued, oldest_queued_s) = s.outbox.depth().unwrap_or((0, 0.0));
    PublishStatus {
        broker: s.broker.clone(),
        connected: s.connected.load(Ordering::Relaxed),
        published: s.published.load(Ordering::Relaxed),
        queued,
        oldest_queued_s,
        dropped: s.outbox.dropped(),
        last_error: s
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

impl Publisher {
    /// Opens the outbox and starts the link; `None` when `[mqtt]` names no broker. Errors are
    /// settings that can never work (an unreadable CA file, an outbox that cannot be created);
    /// an unreachable broker is not one: verdicts queue until it answers.
    pub fn start(
        cfg: &MqttSection,
        origin: Origin,
        metrics: Box<dyn Fn() -> Value + Send + Sync>,
    ) -> Result<Option<Self>> {
        let Some(broker) = cfg.broker()? else {
            return Ok(None);
        };
        let station = cfg.station();
        let bounds = Bounds {
            max_messages: cfg.outbox_max_verdicts,
            max_bytes: cfg.outbox_max_mib << 20,
        };
        let (outbox, opened) = Outbox::open(&cfg.outbox, bounds)?;
        if opened.repaired {
            eprintln!(
                "tag watch: warning: outbox {} was not closed cleanly (a crash or power cut): checked, a torn last write rolled back; {} verdicts queued",
                cfg.outbox.display(),
                opened.queued
            );
        }
        if let Some((aside, why)) = &opened.moved_aside {
            eprintln!(
                "tag watch: warning: outbox {} could not be read ({why}); moved to {} and started empty",
                cfg.outbox.display(),
                aside.display()
            );
        }
        let tls = if broker.tls {
            Some(tls::client_config(cfg)?)
        } else {
            None
        };
        let topics = Topics {
            verdicts: format!("{}/{station}/verdicts", cfg.prefix),
            status: format!("{}/{station}/status", cfg.prefix),
            metrics: format!("{}/{station}/metrics", cfg.prefix),
        };
        let qos = match cfg.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        let settings = link::Settings {
            options: options(
                &broker,
                &station,
                cfg.keep_alive_s,
                tls,
                &topics.status,
                status_message(&station, &origin, "offline"),
            ),
            qos,
            max_rate: cfg.max_rate as f64,
            reconnect_max: Duration::from_secs_f32(cfg.reconnect_max_s),
            drain: Duration::from_secs_f32(cfg.drain_s),
            metrics_interval: (cfg.metrics_interval_s > 0.0)
                .then(|| Duration::from_secs_f32(cfg.metrics_interval_s)),
            topics,
        };
        eprintln!(
            "tag watch: publishing verdicts to {broker} as station `{station}` (QoS {}), outbox {} ({} queued)",
            cfg.qos,
            cfg.outbox.display(),
            opened.queued
        );
        let shared = Arc::new(Shared {
            outbox,
            broker: broker.to_string(),
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            published: AtomicU64::new(0),
            last_error: Mutex::new(None),
            metrics,
            status: Mutex::new(StatusMessages::new(&station, &origin)),
            status_changed: AtomicBool::new(false),
        });
        let link_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || link::run(link_shared, settings))
            .context("cannot start the MQTT thread")?;
        Ok(Some(Self {
            shared,
            station,
            origin,
            thread: Some(thread),
        }))
    }

    pub fn monitor(&self) -> Monitor {
        Monitor(self.shared.clone())
    }

    /// Verdicts from now on name `id`'s model (a model swapped in while running), and so does
    /// the retained status, published again (the last will, set at connection, keeps the model
    /// of that moment until the next reconnection).
    pub fn set_model(&mut self, id: &crate::watch::reload::ModelId) {
        self.origin.model = id.name.clone();
        self.origin.model_version = id.version.clone();
        self.origin.model_sha256 = id.sha256.clone();
        *self.shared.status.lock().unwrap_or_else(|e| e.into_inner()) =
            StatusMessages::new(&self.station, &self.origin);
        self.shared.status_changed.store(true, Ordering::Relaxed);
    }

    /// Queues one verdict durably; `fields` (timestamp, label, confidence, ...) gain the id,
    /// station and model. A full disk is reported and counted, and the station goes on.
    pub fn verdict(&self, fields: Value) {
        let dropped = self.shared.outbox.dropped();
        let result = self.shared.outbox.push(|seq| {
            let mut m = json!({"id": format!("{}:{seq}", self.station), "seq": seq,
                               "station": self.station});
            if let (Value::Object(m), Value::Object(f)) = (&mut m, fields) {
                m.extend(f);
            }
            m["model"] = json!({"name": self.origin.model, "version": self.origin.model_version,
                                "sha256": self.origin.model_sha256});
            m.to_string().into_bytes()
        });
        match result {
            Err(e) => eprintln!("tag watch: mqtt: VERDICT NOT QUEUED: cannot write the outbox {}: {e:#}", self.shared.outbox.path().display()),
            Ok(_) if self.shared.outbox.dropped() > dropped => eprintln!(
                "tag watch: mqtt: OUTBOX FULL: dropped the oldest queued verdict(s), {} so far (raise mqtt.outbox_max_verdicts / outbox_max_mib, or bring the broker back)",
                self.shared.outbox.dropped()
            ),
            Ok(_) => {}
        }
    }

    /// Sends what it can within `mqtt.drain_s`, says `offline`, disconnects; what is left
    /// stays in the outbox for the next start.
    pub fn close(mut self) -> PublishStatus {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        status(&self.shared)
    }
}

fn options(
    broker: &Broker,
    station: &str,
    keep_alive_s: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    status_topic: &str,
    will: Vec<u8>,
) -> Box<dyn Fn() -> MqttOptions + Send> {
    let broker = broker.clone();
    let client_id = format!("tag-{station}");
    let status_topic = status_topic.to_string();
    Box::new(move || {
        let mut o = MqttOptions::new(client_id.clone(), broker.host.clone(), broker.port);
        o.set_keep_alive(Duration::from_secs(keep_alive_s.into()))
            .set_clean_session(true)
            .set_inflight(100)
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_last_will(LastWill::new(
                &status_topic,
                will.clone(),
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &broker.username {
            o.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
        }
        if let Some(cfg) = &tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                cfg.clone(),
            )));
        }
        o
    })
}

pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
