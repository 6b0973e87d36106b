//! Station settings for `tag watch`: one TOML file per device under `firmware-config/`.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere, every value range-checked) because a typo
//! on a headless device must stop the service with a message, not silently fall back to a
//! default and tag the conveyor belt for a whole shift.

use crate::backend::BackendKind;
use crate::preprocess::Roi;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// Free text: which device this file is for.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub source: SourceSection,
    /// Part of the frame to classify, as fractions; the whole frame when absent.
    #[serde(default)]
    pub roi: Roi,
    #[serde(default)]
    pub verdict: VerdictSection,
    #[serde(default)]
    pub overlay: OverlaySection,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub http: HttpSection,
    /// Verdicts to an MQTT broker through a durable outbox (`crate::publish`).
    #[serde(default)]
    pub mqtt: crate::publish::config::MqttSection,
    /// Frames kept for a person's review (`crate::collect`).
    #[serde(default)]
    pub collect: crate::collect::CollectSection,
}

/// The station's read-only HTTP endpoints (`/metrics`, `/healthz`, `/verdicts`); off when `addr`
/// is absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `PORT` (on 127.0.0.1) or `HOST:PORT`; any address other than loopback needs `token`.
    pub addr: Option<String>,
    /// Required of every request (`?token=` or `Authorization: Bearer`); mandatory for a
    /// non-loopback address.
    pub token: Option<String>,
    /// Serve `/review` (labelling the collection, the one route that writes) without a token
    /// on 127.0.0.1; with a token it is served anyway while collecting.
    #[serde(default)]
    pub review: bool,
}

impl HttpSection {
    /// Whether `/review` may be served: behind a token, or asked for explicitly.
    pub fn reviewable(&self) -> bool {
        self.review || self.token.as_deref().is_some_and(|t| !t.is_empty())
    }

    /// Where to listen, `None` when off. A bare port means 127.0.0.1: nothing is exposed to the
    /// network unless an address is given, and then only with a token.
    pub fn bind(&self) -> Result<Option<std::net::SocketAddr>> {
        use std::net::{SocketAddr, ToSocketAddrs};
        let Some(addr) = self.addr.as_deref() else {
            return Ok(None);
        };
        let a: SocketAddr = if let Ok(port) = addr.parse::<u16>() {
            SocketAddr::from(([127, 0, 0, 1], port))
        } else {
            addr.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .with_context(|| {
                    format!("http.addr = `{addr}` (--http): give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080")
                })?
        };
        if !a.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            bail!(
                "http.addr = `{addr}` is reachable from other machines: set http.token (--http-token) \
                 so only its holders can read the station, or listen on 127.0.0.1 (--http PORT)"
            );
        }
        Ok(Some(a))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// ONNX file; the model built into `tag` when absent.
    pub path: Option<PathBuf>,
    #[serde(default = "default_backend")]
    pub backend: BackendKind,
    #[serde(default = "one")]
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `/dev/videoN` (V4L2), `http://host:port/path` (MJPEG stream) or a folder of frames.
    pub uri: Option<String>,
    /// Capture size asked of a V4L2 camera (the driver picks the nearest it supports).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frame rate: asked of a V4L2 camera; the replay pace of a folder (absent: as fast as
    /// inference goes, no frame dropped).
    pub fps: Option<f32>,
    /// Replay a folder again from the start when it ends (soak tests, demos).
    #[serde(default)]
    pub repeat: bool,
    /// Longest wait between reconnection attempts to a lost camera, in seconds.
    #[serde(default = "default_reconnect")]
    pub reconnect_max_s: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictSection {
    /// Below this confidence a frame counts as "no product recognised".
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Consecutive frames that must agree before a product is reported.
    #[serde(default = "default_debounce")]
    pub debounce: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlaySection {
    /// Folder for annotated JPEG snapshots, one per reported product.
    pub snapshots: Option<PathBuf>,
    /// Linux framebuffer (e.g. `/dev/fb0`) to show each annotated frame on.
    pub framebuffer: Option<PathBuf>,
    /// Framebuffer geometry; read from /sys/class/graphics when absent.
    pub framebuffer_geometry: Option<FbGeometry>,
    /// JPEG quality of snapshots (1-100).
    pub jpeg_quality: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FbGeometry {
    pub width: u32,
    pub height: u32,
    /// 16 (RGB565) or 32 (XRGB8888).
    pub bits_per_pixel: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WatchFormat {
    /// One line per reported product.
    Human,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    #[serde(default = "default_format")]
    pub format: WatchFormat,
    /// File to append verdicts to; stdout when absent.
    pub path: Option<PathBuf>,
    /// Also write a record for every classified frame, not only for reported products.
    #[serde(default)]
    pub all_frames: bool,
    /// Seconds between stats lines on stderr (fps, latency, dropped frames).
    #[serde(default = "default_stats_interval")]
    pub stats_interval_s: f32,
    /// Stats lines as JSON instead of text.
    #[serde(default)]
    pub stats_json: bool,
}

fn one() -> usize {
    1
}
fn default_backend() -> BackendKind {
    BackendKind::Tract
}
fn default_reconnect() -> f32 {
    30.0
}
fn default_threshold() -> f32 {
    0.6
}
fn default_debounce() -> usize {
    3
}
fn default_format() -> WatchFormat {
    WatchFormat::Jsonl
}
fn default_stats_interval() -> f32 {
    10.0
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: None,
            backend: default_backend(),
            threads: one(),
        }
    }
}
impl Default for SourceSection {
    fn default() -> Self {
        Self {
            uri: None,
            width: None,
            height: None,
            fps: None,
            repeat: false,
            reconnect_max_s: default_reconnect(),
        }
    }
}
impl Default for VerdictSection {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            debounce: default_debounce(),
        }
    }
}
impl Default for OutputSection {
    fn default() -> Self {
        Self {
            format: default_format(),
            path: None,
            all_frames: false,
            stats_interval_s: default_stats_interval(),
            stats_json: false,
        }
    }
}

/// Command-line settings laid over a config file: `None` / `false` keeps the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub model: Option<PathBuf>,
    pub backend: Option<BackendKind>,
    pub threads: Option<usize>,
    pub source: Option<String>,
    pub fps: Option<f32>,
    pub repeat: bool,
    pub format: Option<WatchFormat>,
    pub all_frames: bool,
    pub stats_json: bool,
    pub stats_interval_s: Option<f32>,
    pub threshold: Option<f32>,
    pub debounce: Option<usize>,
    pub snapshots: Option<PathBuf>,
    pub framebuffer: Option<PathBuf>,
    pub roi: Option<Roi>,
    pub http: Option<String>,
    pub http_token: Option<String>,
    pub mqtt: Option<String>,
    pub outbox: Option<PathBuf>,
    pub collect: Option<PathBuf>,
    pub review: bool,
}

impl StationConfig {
    /// The config file (or the defaults), the command line on top, validated once both apply.
    pub fn resolve(file: Option<&Path>, overrides: Overrides) -> Result<Self> {
        let mut cfg = match file {
            Some(p) => Self::load(p)?,
            None => Self::default(),
        };
        cfg.apply(overrides);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Lays command-line settings over these (call [`Self::validate`] afterwards).
    pub fn apply(&mut self, o: Overrides) {
        self.model.path = o.model.or(self.model.path.take());
        self.model.backend = o.backend.unwrap_or(self.model.backend);
        self.model.threads = o.threads.unwrap_or(self.model.threads);
        self.source.uri = o.source.or(self.source.uri.take());
        self.source.fps = o.fps.or(self.source.fps);
        self.source.repeat |= o.repeat;
        self.output.format = o.format.unwrap_or(self.output.format);
        self.output.all_frames |= o.all_frames;
        self.output.stats_json |= o.stats_json;
        self.output.stats_interval_s = o.stats_interval_s.unwrap_or(self.output.stats_interval_s);
        self.verdict.threshold = o.threshold.unwrap_or(self.verdict.threshold);
        self.verdict.debounce = o.debounce.unwrap_or(self.verdict.debounce);
        self.overlay.snapshots = o.snapshots.or(self.overlay.snapshots.take());
        self.overlay.framebuffer = o.framebuffer.or(self.overlay.framebuffer.take());
        self.roi = o.roi.unwrap_or(self.roi);
        self.http.addr = o.http.or(self.http.addr.take());
        self.http.token = o.http_token.or(self.http.token.take());
        self.mqtt.url = o.mqtt.or(self.mqtt.url.take());
        self.mqtt.outbox = o.outbox.unwrap_or(self.mqtt.outbox.clone());
        self.collect.dir = o.collect.or(self.collect.dir.take());
        self.http.review |= o.review;
    }

    /// Reads and validates a config file; errors name the file, the key and the fix.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::limits::read_file_as(path, crate::limits::MAX_CONFIG_BYTES, "config")
            .map_err(anyhow::Error::msg)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("config {} is not UTF-8 text", path.display()))?;
        let cfg: Self = toml::from_str(&text)
            .with_context(|| format!("config {} is invalid", path.display()))?;
        cfg.validate()
            .with_context(|| format!("config {} is invalid", path.display()))?;
        Ok(cfg)
    }

    /// Range checks that types alone cannot express. Call again after command-line overrides.
    pub fn validate(&self) -> Result<()> {
        use crate::limits::{self, check_range};
        check_range("model.threads", self.model.threads, 1, limits::MAX_THREADS)
            .map_err(anyhow::Error::msg)?;
        let s = &self.source;
        if s.width.is_some() != s.height.is_some() {
            bail!("source.width and source.height go together: give both or neither");
        }
        if let (Some(w), Some(h)) = (s.width, s.height) {
            if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
                bail!("source.width x height = {w}x{h} must be between 16 and 8192 pixels each");
            }
        }
        if let Some(fps) = s.fps {
            check_range(
                "source.fps (--fps)",
                fps,
                limits::FPS_RANGE.0,
                limits::FPS_RANGE.1,
            )
            .map_err(anyhow::Error::msg)?;
        }
        limits::check_seconds("source.reconnect_max_s", s.reconnect_max_s, 0.1)
            .map_err(anyhow::Error::msg)?;
        self.roi.validate().map_err(anyhow::Error::msg)?;
        self.http.bind()?;
        self.mqtt.validate()?;
        self.collect.validate()?;
        if self.http.review && self.collect.dir.is_none() {
            bail!(
                "http.review (--review) labels a collection: give collect.dir (--collect DIR) too"
            );
        }
        let v = &self.verdict;
        if !(v.threshold.is_finite() && (0.0..=1.0).contains(&v.threshold)) {
            bail!(
                "verdict.threshold = {} must be between 0 and 1",
                v.threshold
            );
        }
        if !(1..=1000).contains(&v.debounce) {
            bail!(
                "verdict.debounce = {} must be between 1 and 1000 frames",
                v.debounce
            );
        }
        if let Some(q) = self.overlay.jpeg_quality {
            if !(1..=100).contains(&q) {
                bail!("overlay.jpeg_quality = {q} must be between 1 and 100");
            }
        }
        if let Some(g) = self.overlay.framebuffer_geometry {
            if g.bits_per_pixel != 16 && g.bits_per_pixel != 32 {
                bail!(
                    "overlay.framebuffer_geometry.bits_per_pixel = {} must be 16 or 32",
                    g.bits_per_pixel
                );
            }
            let max = limits::MAX_FRAMEBUFFER_SIDE;
            check_range("overlay.framebuffer_geometry.width", g.width, 1, max)
                .and_then(|_| check_range("overlay.framebuffer_geometry.height", g.height, 1, max))
                .map_err(anyhow::Error::msg)?;
        }
        let o = &self.output;
        limits::check_seconds(
            "output.stats_interval_s (--stats-interval)",
            o.stats_interval_s,
            0.01,
        )
        .map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StationConfig> {
        let cfg: StationConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn empty_config_gets_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.verdict.debounce, 3);
        assert_eq!(cfg.roi, Roi::FULL);
        assert_eq!(cfg.output.format, WatchFormat::Jsonl);
    }

    #[test]
    fn command_line_overrides_the_file_and_is_validated() {
        let mut cfg = parse("[verdict]\nthreshold = 0.7\ndebounce = 4\n").unwrap();
        cfg.apply(Overrides {
            threshold: Some(0.5),
            roi: Some("0.25,0,0.5,1".parse().unwrap()),
            ..Overrides::default()
        });
        assert_eq!((cfg.verdict.threshold, cfg.verdict.debounce), (0.5, 4));
        assert_eq!(cfg.roi.width, 0.5);
        let bad = StationConfig::resolve(
            None,
            Overrides {
                fps: Some(1e-30),
                ..Overrides::default()
            },
        );
        assert!(format!("{:#}", bad.unwrap_err()).contains("source.fps"));
        assert!("1,2,3".parse::<Roi>().is_err());
        assert!("a,b,c,d".parse::<Roi>().is_err());
    }

    #[test]
    fn typo_is_named() {
        let e = format!("{:#}", parse("[verdict]\ntreshold = 0.5\n").unwrap_err());
        assert!(e.contains("treshold"), "{e}");
        let e = format!("{:#}", parse("[modle]\npath = \"x.onnx\"\n").unwrap_err());
        assert!(e.contains("modle"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("[verdict]\nthreshold = 1.5\n", "verdict.threshold"),
            ("[verdict]\ndebounce = 0\n", "verdict.debounce"),
            ("[model]\nthreads = 0\n", "model.threads"),
            ("[model]\nbackend = \"cuda\"\n", "cuda"),
            ("[roi]\nx = 0.5\ny = 0\nwidth = 0.8\nheight = 1\n", "roi reaches outside"),
            ("[source]\nwidth = 640\n", "source.width and source.height"),
            ("[source]\nfps = 0\n", "source.fps"),
            ("[overlay]\nframebuffer_geometry = { width = 8, height = 8, bits_per_pixel = 24 }\n", "bits_per_pixel"),
            ("[output]\nformat = \"xml\"\n", "xml"),
            // Values that once reached a panic ("cannot convert float seconds to Duration")
            // or an unbounded allocation.
            ("[source]\nfps = 1e-30\n", "source.fps"),
            ("[source]\nreconnect_max_s = 1e30\n", "source.reconnect_max_s"),
            ("[source]\nreconnect_max_s = nan\n", "source.reconnect_max_s"),
            ("[output]\nstats_interval_s = 1e30\n", "output.stats_interval_s"),
            ("[overlay]\nframebuffer_geometry = { width = 100000, height = 100000, bits_per_pixel = 32 }\n", "framebuffer_geometry.width"),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(key), "{text:?} gave {e}");
        }
    }
}
