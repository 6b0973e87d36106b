//! The connection to the broker, on its own thread: sends the outbox in order, removes what the
//! broker acknowledged, reconnects with backoff, and keeps the retained status topic true.
//!
//! Each connection is a fresh rumqttc client with a clean session, and after every (re)connect
//! sending starts again at the oldest queued verdict: the outbox, not the client's memory, is
//! what is still owed, so nothing is lost between connections (a verdict acknowledged just
//! before a drop may arrive twice; its id lets consumers skip it). At most [`WINDOW`] verdicts
//! are in flight; the broker's PUBACK (PUBCOMP for QoS 2) removes one, batched per commit.

use super::{Shared, Topics};
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Verdicts sent and not yet acknowledged, per connection.
pub const WINDOW: usize = 32;
/// How often the loop looks at the outbox and the stop flag when the broker is quiet.
const TICK: Duration = Duration::from_millis(20);

/// What the link thread needs besides the shared state.
pub struct Settings {
    pub options: Box<dyn Fn() -> MqttOptions + Send>,
    pub topics: Topics,
    pub qos: QoS,
    pub max_rate: f64,
    pub reconnect_max: Duration,
    pub drain: Duration,
    pub metrics_interval: Option<Duration>,
}

enum End {
    Stopped,
    Lost(String),
}

pub fn run(shared: Arc<Shared>, s: Settings) {
    let mut backoff = Duration::from_millis(500);
    let mut last_error = String::new();
    loop {
        let started = Instant::now();
        let (client, mut conn) = Client::new((s.options)(), 2 * WINDOW + 8);
        let end = session(&shared, &s, &client, &mut conn);
        shared.connected.store(false, Ordering::Relaxed);
        match end {
            End::Stopped => return,
            End::Lost(why) => {
                if why != last_error {
                    eprintln!(
                        "tag watch: mqtt: {} (verdicts wait in the outbox {}; retrying)",
                        why,
                        shared.outbox.path().display()
                    );
                    last_error = why.clone();
                }
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(500);
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(TICK);
        }
        backoff = (backoff * 2).min(s.reconnect_max);
    }
}

/// Why a connection ended, in words an operator can act on.
fn describe(e: &ConnectionError, broker: &str) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("broker {broker} refused the connection ({code:?}): check mqtt user name, password and permissions")
        }
        ConnectionError::Tls(t) => format!("TLS with broker {broker} failed: {t} (check mqtt.ca_file and the broker's certificate)"),
        ConnectionError::Io(io) => format!("broker {broker} unreachable or gone: {io}"),
        other => format!("connection to broker {broker} lost: {other}"),
    }
}

/// Verdicts between the outbox and the broker's acknowledgement, on one connection.
#[derive(Default)]
struct Owed {
    /// Requests handed to the client, in order; `Some(seq)` for a verdict. The client reports
    /// each as `Outgoing::Publish(pkid)` in the same order.
    handed: VecDeque<Option<u64>>,
    inflight: HashMap<u16, u64>,
    /// Acknowledged, to be removed from the outbox in the next commit.
    acked: Vec<u64>,
}

impl Owed {
    fn published(&mut self, pkid: u16, qos: QoS) {
        match self.handed.pop_front() {
            Some(Some(seq)) if qos == QoS::AtMostOnce => self.acked.push(seq),
            Some(Some(seq)) => {
                self.inflight.insert(pkid, seq);
            }
            _ => {}
        }
    }

    fn acknowledged(&mut self, pkid: u16) {
        if let Some(seq) = self.inflight.remove(&pkid) {
            self.acked.push(seq);
        }
    }

    fn outstanding(&self) -> usize {
        self.handed.len() + self.inflight.len()
    }
}

fn session(shared: &Shared, s: &Settings, client: &Client, conn: &mut rumqttc::Connection) -> End {
    let mut owed = Owed::default();
    let mut last_sent: Option<u64> = None;
    let mut connected = false;
    let mut tokens = 0.0f64;
    let mut last_tick = Instant::now();
    let mut last_commit = Instant::now();
    let mut next_metrics = Instant::now();
    let mut draining: Option<Instant> = None;
    let broker = &shared.broker;
    loop {
        if owed.acked.len() >= WINDOW || last_commit.elapsed() >= TICK * 5 {
            commit(shared, &mut owed.acked);
            last_commit = Instant::now();
        }
        if shared.stop.load(Ordering::Relaxed) && draining.is_none() {
            draining = Some(Instant::now() + s.drain);
        }
        if let Some(deadline) = draining {
            let owing = owed.outstanding() > 0 || !shared.outbox.is_empty().unwrap_or(true);
            if !connected || !owing || Instant::now() >= deadline {
                if connected {
                    goodbye(shared, s, client, conn, &mut owed);
                }
                commit(shared, &mut owed.acked);
                return End::Stopped;
            }
        }
        let now = Instant::now();
        tokens = (tokens + now.duration_since(last_tick).as_secs_f64() * s.max_rate)
            .min(s.max_rate.max(1.0));
        last_tick = now;
        if connected && shared.status_changed.swap(false, Ordering::Relaxed) {
            let online = shared
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .online
                .clone();
            if client
                .try_publish(&s.topics.status, QoS::AtLeastOnce, true, online)
                .is_ok()
            {
                owed.handed.push_back(None);
            } else {
                shared.status_changed.store(true, Ordering::Relaxed);
            }
        }
        if connected {
            let room = WINDOW
                .saturating_sub(owed.outstanding())
                .min(tokens as usize);
            if room > 0 {
                match shared.outbox.next(last_sent, room) {
                    Ok(entries) => {
                        for e in entries {
                            if client
                                .try_publish(&s.topics.verdicts, s.qos, false, e.payload)
                                .is_err()
                            {
                                break;
                            }
                            owed.handed.push_back(Some(e.seq));
                            last_sent = Some(e.seq);
                            tokens -= 1.0;
                        }
                    }
                    Err(e) => eprintln!("tag watch: mqtt: cannot read the outbox: {e:#}"),
                }
            }
            if let Some(every) = s.metrics_interval {
                if now >= next_metrics {
                    next_metrics = now + every;
                    let body = (shared.metrics)().to_string();
                    if client
                        .try_publish(&s.topics.metrics, QoS::AtMostOnce, false, body)
                        .is_ok()
                    {
                        owed.handed.push_back(None);
                    }
                }
            }
        }
        match conn.recv_timeout(TICK) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                connected = true;
                shared.connected.store(true, Ordering::Relaxed);
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let queued = shared.outbox.len().unwrap_or(0);
                eprintln!("tag watch: mqtt: connected to {broker}; {queued} verdicts queued");
                shared.status_changed.store(true, Ordering::Relaxed);
            }
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => owed.published(pkid, s.qos),
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => owed.acknowledged(a.pkid),
            Ok(Ok(Event::Incoming(Packet::PubComp(a)))) => owed.acknowledged(a.pkid),
            Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => {
                commit(shared, &mut owed.acked);
                return End::Lost(describe(&e, broker));
            }
            Err(rumqttc::RecvTimeoutError::Disconnected) => {
                commit(shared, &mut owed.acked);
                return End::Lost(format!("connection to broker {broker} closed"));
            }
        }
    }
}

/// Removes acknowledged verdicts from the outbox in one commit.
fn commit(shared: &Shared, acked: &mut Vec<u64>) {
    if acked.is_empty() {
        return;
    }
    match shared.outbox.remove(acked) {
        Ok(()) => {
            shared
                .published
                .fetch_add(acked.len() as u64, Ordering::Relaxed);
        }
        // They stay queued and are sent again: a duplicate, never a loss.
        Err(e) => eprintln!("tag watch: mqtt: cannot update the outbox: {e:#}"),
    }
    acked.clear();
}

/// A clean stop: `offline` on the status topic (acknowledged, so it is retained before the
/// connection closes), then DISCONNECT, which tells the broker not to send the last will.
/// Acknowledgements of verdicts still in flight are kept in `acked`.
fn goodbye(
    shared: &Shared,
    s: &Settings,
    client: &Client,
    conn: &mut rumqttc::Connection,
    owed: &mut Owed,
) {
    let offline = shared
        .status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .offline
        .clone();
    if client
        .try_publish(&s.topics.status, QoS::AtLeastOnce, true, offline)
        .is_err()
    {
        return;
    }
    owed.handed.push_back(None);
    let mut offline_pkid = None;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        match conn.recv_timeout(TICK) {
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                if owed.handed.len() == 1 {
                    offline_pkid = Some(pkid);
                }
                owed.published(pkid, s.qos);
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                if Some(a.pkid) == offline_pkid {
                    break;
                }
                owed.acknowledged(a.pkid);
            }
            Ok(Ok(Event::Incoming(Packet::PubComp(a)))) => owed.acknowledged(a.pkid),
            Ok(Err(_)) | Err(rumqttc::RecvTimeoutError::Disconnected) => return,
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match conn.recv_timeout(TICK) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => return,
            Err(rumqttc::RecvTimeoutError::Disconnected) => return,
            _ => {}
        }
    }
}
