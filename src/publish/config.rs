//! `[mqtt]` in a station's config: where verdicts go, as whom, and how much may wait on disk.
//! Checked at start like every other section; a password is never printed ([`Broker`]'s
//! `Display` leaves it out).

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS); publishing is off when
    /// absent.
    pub url: Option<String>,
    /// User name when the URL has none.
    pub username: Option<String>,
    /// File holding the password (first line), readable by the service only; preferred to a
    /// password in the URL.
    pub password_file: Option<PathBuf>,
    /// PEM certificates the broker's certificate must chain to (mqtts); the system's trust store
    /// when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its private key, for brokers that authenticate stations by
    /// certificate (mqtts).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Topics are `<prefix>/<station>/verdicts`, `.../status` and `.../metrics`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This station's name in topics, verdict ids and the client id; the host name when absent.
    pub station: Option<String>,
    /// 0 (at most once: removed from the outbox when written), 1 (at least once) or 2.
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// The durable queue (`outbox.rs`).
    #[serde(default = "default_outbox")]
    pub outbox: PathBuf,
    /// Bounds of the outbox; past them the oldest verdicts are dropped and counted.
    #[serde(default = "default_outbox_mib")]
    pub outbox_max_mib: u64,
    #[serde(default = "default_outbox_verdicts")]
    pub outbox_max_verdicts: u64,
    /// Most verdicts sent per second, so a long queue drains without flooding the broker.
    #[serde(default = "default_rate")]
    pub max_rate: u32,
    /// Seconds between messages on `.../metrics` (0: none).
    #[serde(default)]
    pub metrics_interval_s: f32,
    /// MQTT keep-alive: how soon a silent broker counts as lost.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u16,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_reconnect")]
    pub reconnect_max_s: f32,
    /// How long a stopping station keeps sending what is queued before it exits (the rest is
    /// sent after the next start).
    #[serde(default = "default_drain")]
    pub drain_s: f32,
}

fn default_prefix() -> String {
    "fashion-tagger".into()
}
fn default_qos() -> u8 {
    1
}
fn default_outbox() -> PathBuf {
    "tag-outbox.redb".into()
}
fn default_outbox_mib() -> u64 {
    64
}
fn default_outbox_verdicts() -> u64 {
    100_000
}
fn default_rate() -> u32 {
    200
}
fn default_keep_alive() -> u16 {
    15
}
fn default_reconnect() -> f32 {
    10.0
}
fn default_drain() -> f32 {
    3.0
}

impl Default for MqttSection {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

/// A broker address with credentials, as parsed from `url` and the password file.
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match &self.username {
            Some(u) => write!(f, "{scheme}://{u}@{}:{}", self.host, self.port),
            None => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Broker({self})")
    }
}

impl MqttSection {
    /// The broker, `None` when publishing is off; reads the password file.
    pub fn broker(&self) -> Result<Option<Broker>> {
        let Some(raw) = self.url.as_deref() else {
            return Ok(None);
        };
        let how = "give mqtt://host[:port] or mqtts://host[:port], e.g. mqtt://10.0.0.2:1883";
        let url = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("mqtt.url (--mqtt) is not a URL ({e}): {how}"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            s => bail!("mqtt.url (--mqtt) has scheme `{s}`: {how}"),
        };
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            bail!("mqtt.url (--mqtt) names no host: {how}");
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = match url.username() {
            "" => self.username.clone(),
            u => Some(decode(u)),
        };
        let mut password = url.password().map(decode);
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("mqtt.password_file {} cannot be read", file.display()))?;
            password = Some(text.lines().next().unwrap_or("").to_string());
        }
        if password.is_some() && username.is_none() {
            bail!("mqtt: a password without a user name; add mqtt.username or user@ in the URL");
        }
        Ok(Some(Broker {
            tls,
            host: host.trim_matches(['[', ']']).to_string(),
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username,
            password,
        }))
    }

    /// This station's name: configured, or the host name.
    pub fn station(&self) -> String {
        self.station.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "station".into())
        })
    }

    pub fn validate(&self) -> Result<()> {
        let Some(broker) = self.broker()? else {
            return Ok(());
        };
        let topic_safe = |s: &str| !s.is_empty() && !s.contains(['+', '#', '\0']);
        if !topic_safe(&self.prefix) || !topic_safe(&self.station()) || self.station().contains('/')
        {
            bail!(
                "mqtt.prefix `{}` and mqtt.station `{}` must be non-empty, without + # or NUL (and no / in the station)",
                self.prefix,
                self.station()
            );
        }
        if self.qos > 2 {
            bail!("mqtt.qos = {} must be 0, 1 or 2", self.qos);
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            bail!("mqtt.client_cert and mqtt.client_key go together: give both or neither");
        }
        if !broker.tls && (self.ca_file.is_some() || self.client_cert.is_some()) {
            bail!("mqtt.ca_file and mqtt.client_cert need TLS: use an mqtts:// URL");
        }
        if self.outbox_max_mib == 0 || self.outbox_max_verdicts == 0 || self.max_rate == 0 {
            bail!(
                "mqtt.outbox_max_mib, mqtt.outbox_max_verdicts and mqtt.max_rate must be above 0"
            );
        }
        if self.keep_alive_s < 5 {
            bail!(
                "mqtt.keep_alive_s = {} must be at least 5",
                self.keep_alive_s
            );
        }
        for (name, v) in [
            ("mqtt.metrics_interval_s", self.metrics_interval_s),
            ("mqtt.reconnect_max_s", self.reconnect_max_s),
            ("mqtt.drain_s", self.drain_s),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                bail!("{name} = {v} must be between 0 and 86400 seconds");
            }
        }
        if self.reconnect_max_s < 0.1 {
            bail!("mqtt.reconnect_max_s must be at least 0.1 s");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str) -> MqttSection {
        MqttSection {
            url: Some(url.into()),
            ..MqttSection::default()
        }
    }

    #[test]
    fn urls_give_scheme_host_port_and_credentials_never_printed() {
        let b = section("mqtts://station%2F7:s3cret@broker.example:9883")
            .broker()
            .unwrap()
            .unwrap();
        assert!(b.tls);
        assert_eq!((b.host.as_str(), b.port), ("broker.example", 9883));
        assert_eq!(b.username.as_deref(), Some("station/7"));
        assert_eq!(b.password.as_deref(), Some("s3cret"));
        assert!(!format!("{b} {b:?}").contains("s3cret"));
        let b = section("mqtt://10.0.0.2").broker().unwrap().unwrap();
        assert_eq!((b.tls, b.port), (false, 1883));
        assert!(MqttSection::default().broker().unwrap().is_none());
    }

    #[test]
    fn bad_settings_are_named() {
        for (url, needle) in [
            ("http://x", "scheme `http`"),
            ("not a url", "not a URL"),
            ("mqtt://:pw@host", "without a user name"),
        ] {
            let e = section(url).validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let mut s = section("mqtt://h");
        s.qos = 3;
        assert!(s.validate().unwrap_err().to_string().contains("mqtt.qos"));
        let mut s = section("mqtt://h");
        s.ca_file = Some("ca.pem".into());
        assert!(s.validate().unwrap_err().to_string().contains("mqtts://"));
        let mut s = section("mqtt://h");
        s.station = Some("a/b".into());
        assert!(s.validate().is_err());
    }
}
