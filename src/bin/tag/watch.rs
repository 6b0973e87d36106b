//! `tag watch`: a camera station.

use crate::shared::{load_model, stop_on_signals, ModelArgs};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tagger::error::Error;
use tagger::watch::config::{StationConfig, WatchFormat};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tag watch --source /dev/video0 --config firmware-config/raspberry-pi-5.toml
  tag watch --source http://10.0.0.7:8080/video.mjpg --format human
  tag watch --source recorded-shift/ --max-frames 1000 --snapshots snaps/
  tag watch --source /dev/video0 --collect collected/ --http 8080 --review

Command-line options override the config file. Stops cleanly on Ctrl-C or SIGTERM.")]
pub struct WatchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Frames: /dev/videoN (V4L2), http://host:port/path (MJPEG stream) or a folder of frames
    /// replayed in name order.
    #[arg(long)]
    source: Option<String>,
    /// Station settings (one TOML per device in firmware-config/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop after this many frames from the source.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Output format [default: jsonl].
    #[arg(long, value_enum)]
    format: Option<WatchFormat>,
    /// Confidence (0..1) a frame needs to count towards a product [default: 0.6].
    #[arg(long)]
    threshold: Option<f32>,
    /// Consecutive agreeing frames before a product is reported [default: 3].
    #[arg(long)]
    debounce: Option<usize>,
    /// Region of interest `x,y,width,height` as fractions of the frame, e.g. `0.25,0,0.5,1`.
    #[arg(long)]
    roi: Option<tagger::preprocess::Roi>,
    /// Pace of a folder replay in frames/s (frames are then dropped when inference lags).
    #[arg(long)]
    fps: Option<f32>,
    /// Replay a folder source again and again.
    #[arg(long)]
    repeat: bool,
    /// Save an annotated JPEG of each reported product into this folder.
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Show annotated frames on this Linux framebuffer (e.g. /dev/fb0).
    #[arg(long)]
    framebuffer: Option<PathBuf>,
    /// Write a record for every classified frame, not only for reported products.
    #[arg(long)]
    all_frames: bool,
    /// Seconds between stats lines on stderr [default: 10].
    #[arg(long)]
    stats_interval: Option<f32>,
    /// Stats and summary lines on stderr as JSON.
    #[arg(long)]
    stats_json: bool,
    /// Serve the live page (/), /stream.mjpg, /metrics (Prometheus), /healthz and /verdicts on
    /// PORT (127.0.0.1) or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Token every HTTP request must carry (?token= or Authorization: Bearer); required for an
    /// address other than 127.0.0.1. Also `[http] token` in the config, or TAG_HTTP_TOKEN.
    #[arg(long, env = "TAG_HTTP_TOKEN", hide_env_values = true)]
    http_token: Option<String>,
    /// Publish verdicts to an MQTT broker: mqtt://[user@]host[:port] or mqtts://... (TLS).
    /// Also `[mqtt]` in the config (topics, QoS, TLS files, password file), or TAG_MQTT_URL.
    #[arg(long, value_name = "URL", env = "TAG_MQTT_URL", hide_env_values = true)]
    mqtt: Option<String>,
    /// The durable queue of verdicts not yet acknowledged by the broker [default:
    /// tag-outbox.redb].
    #[arg(long, value_name = "FILE")]
    outbox: Option<PathBuf>,
    /// Keep frames worth a person's look in DIR: uncertain or `unknown` verdicts, labels that
    /// flip-flop, a small random sample of confident ones (`[collect]`: thresholds, rate, quota).
    #[arg(long, value_name = "DIR")]
    collect: Option<PathBuf>,
    /// Serve /review (label the collection in a browser) on the page without a token; on
    /// 127.0.0.1 only, like any tokenless page. With --http-token it is served anyway.
    #[arg(long)]
    review: bool,
}

/// The config file, then the command line on top (config.rs), validated once both apply.
fn watch_config(args: &WatchArgs) -> anyhow::Result<StationConfig> {
    let m = &args.model;
    StationConfig::resolve(
        args.config.as_deref(),
        tagger::watch::config::Overrides {
            model: m.model.clone(),
            backend: m.backend,
            threads: m.threads,
            source: args.source.clone(),
            fps: args.fps,
            repeat: args.repeat,
            format: args.format,
            all_frames: args.all_frames,
            stats_json: args.stats_json,
            stats_interval_s: args.stats_interval,
            threshold: args.threshold,
            debounce: args.debounce,
            snapshots: args.snapshots.clone(),
            framebuffer: args.framebuffer.clone(),
            roi: args.roi,
            http: args.http.clone(),
            http_token: args.http_token.clone(),
            mqtt: args.mqtt.clone(),
            outbox: args.outbox.clone(),
            collect: args.collect.clone(),
            review: args.review,
        },
    )
}

pub fn run(args: WatchArgs) -> Result<(), Error> {
    let cfg = watch_config(&args).map_err(Error::Config)?;
    let Some(source) = cfg.source.uri.clone() else {
        return Err(Error::Usage("no frame source; give --source (/dev/video0, http://..., a folder) or source.uri in the config".into()));
    };
    let model_args = ModelArgs {
        model: cfg.model.path.clone(),
        backend: Some(cfg.model.backend),
        threads: Some(cfg.model.threads),
    };
    let model = load_model(&model_args).map_err(Error::Model)?;
    // Ctrl-C and SIGTERM: finish the frame in hand, flush, print the summary, exit 0.
    let stop = stop_on_signals("tag watch", "a stop may lose the last line");
    let mut out: Box<dyn std::io::Write> = match &cfg.output.path {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                return Err(Error::Config(anyhow::anyhow!(
                    "cannot open output {}: {e}",
                    p.display()
                )))
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    eprintln!(
        "tag watch: {} v{} on {} x{}, source {}",
        model.info.name,
        model.info.version,
        model.backend_name(),
        cfg.model.threads,
        tagger::watch::source::mjpeg::redacted(&source)
    );
    let origin = tagger::publish::Origin {
        model: model.info.name.clone(),
        model_version: model.info.version.clone(),
        model_sha256: model_sha256(cfg.model.path.as_deref()).map_err(Error::Model)?,
    };
    // A model file is swapped in when it changes or on SIGHUP; the built-in model stays.
    let reload = cfg.model.path.clone().map(|path| {
        let hup = Arc::new(AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
            eprintln!("tag watch: warning: cannot catch SIGHUP ({e}); the model reloads when its file changes");
        }
        tagger::watch::reload::spawn(
            path,
            cfg.model.backend,
            cfg.model.threads,
            origin.model_sha256.clone(),
            hup,
            stop.clone(),
        )
    });
    let opts = tagger::watch::WatchOptions {
        config: &cfg,
        source: &source,
        max_frames: args.max_frames,
        stop,
        origin,
        reload,
    };
    let s = tagger::watch::run(model, &opts, &mut out).map_err(Error::Station)?;
    if cfg.output.stats_json {
        let mut v = serde_json::to_value(&s).expect("summary serialises");
        v["event"] = "summary".into();
        eprintln!("{v}");
    } else {
        eprintln!(
            "tag watch: done: {} frames captured, {} classified, {} dropped, {} corrupt, {} products in {:.1} s (p50 {:.2} ms, p99 {:.2} ms)",
            s.captured, s.processed, s.dropped, s.corrupt, s.verdicts, s.seconds, s.p50_ms, s.p99_ms
        );
    }
    if let (Some(m), false) = (&s.mqtt, cfg.output.stats_json) {
        eprintln!(
            "tag watch: mqtt: {} published, {} queued for the next start, {} dropped (outbox full)",
            m.published, m.queued, m.dropped
        );
    }
    if let (Some(c), false) = (&s.collect, cfg.output.stats_json) {
        eprintln!(
            "tag watch: collect: {} kept ({}), {} items in {}; not kept: {} over the rate, {} writer busy, {} no room",
            c.kept.values().sum::<u64>(),
            c.kept.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", "),
            c.items,
            cfg.collect.dir.as_deref().unwrap_or(std::path::Path::new("?")).display(),
            c.rate_limited,
            c.busy,
            c.full
        );
    }
    match s.source_error {
        Some(e) => Err(Error::SourceLost(e)),
        None => Ok(()),
    }
}

/// The SHA-256 of the model file (or of the built-in model), so a warehouse knows which exact
/// model tagged a product.
fn model_sha256(path: Option<&std::path::Path>) -> anyhow::Result<String> {
    Ok(tagger::watch::reload::sha256(&match path {
        Some(p) => std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("cannot read model {}: {e}", p.display()))?,
        None => tagger::builtin::bytes()?.to_vec(),
    }))
}
