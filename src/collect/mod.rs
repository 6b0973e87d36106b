//! Frames worth a person's look, kept while a station runs (`tag watch --collect DIR`): what the
//! model was unsure of or called `unknown`, labels that flip-flop on one product, and a small
//! random sample of confident products (to catch confident mistakes). [`policy`] decides,
//! [`store`] writes whole items under a disk quota, [`labels`] holds a reviewer's decisions.
//!
//! Encoding and writing run on a thread of their own behind a queue of [`QUEUE`] items, so
//! inference never waits for a disk; when the queue is full the frame is skipped and counted.
//! A rate limit (`per_minute`) bounds the work and the wear on an SD card.

pub mod labels;
pub mod policy;
pub mod store;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use policy::{Policy, Reason};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use store::{Added, Manifest, Record, Store};

/// Items waiting to be written.
pub const QUEUE: usize = 4;
/// JPEG quality of kept crops and frames (they may become training photos).
const QUALITY: u8 = 95;

/// `[collect]` in a station config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectSection {
    /// Folder of the collection; collecting is off when absent (`--collect`).
    pub dir: Option<PathBuf>,
    /// A named product below this confidence is kept (`unknown`, below `verdict.threshold`, is
    /// always kept).
    #[serde(default = "default_below")]
    pub below: f32,
    /// Share of confident products kept at random, to catch confident mistakes.
    #[serde(default = "default_sample")]
    pub sample: f32,
    /// At most this many items a minute.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// Disk quota of the collection in MiB; when full the least useful unlabelled items go.
    #[serde(default = "default_max_mib")]
    pub max_mib: u64,
}

fn default_below() -> f32 {
    0.8
}
fn default_sample() -> f32 {
    0.02
}
fn default_per_minute() -> u32 {
    12
}
fn default_max_mib() -> u64 {
    512
}

impl Default for CollectSection {
    fn default() -> Self {
        Self {
            dir: None,
            below: default_below(),
            sample: default_sample(),
            per_minute: default_per_minute(),
            max_mib: default_max_mib(),
        }
    }
}

impl CollectSection {
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("collect.below", self.below),
            ("collect.sample", self.sample),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                bail!("{key} = {v} must be between 0 and 1");
            }
        }
        if !(1..=600).contains(&self.per_minute) {
            bail!(
                "collect.per_minute = {} must be between 1 and 600",
                self.per_minute
            );
        }
        if !(1..=1 << 20).contains(&self.max_mib) {
            bail!(
                "collect.max_mib = {} must be between 1 and 1048576",
                self.max_mib
            );
        }
        Ok(())
    }
}

/// Counters for `/metrics`, shared with the writer thread.
#[derive(Debug, Default)]
pub struct CollectStats {
    /// Kept, per [`Reason::ALL`].
    pub kept: [AtomicU64; 4],
    /// Not kept: over the rate limit, writer busy, no room, write failed.
    pub rate_limited: AtomicU64,
    pub busy: AtomicU64,
    pub full: AtomicU64,
    pub failed: AtomicU64,
    /// Items removed to make room.
    pub evicted: AtomicU64,
    pub items: AtomicU64,
    pub bytes: AtomicU64,
}

/// The collection's figures at the end of a run (the summary line).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CollectSummary {
    /// Kept this run, by reason.
    pub kept: std::collections::BTreeMap<&'static str, u64>,
    pub rate_limited: u64,
    pub busy: u64,
    pub full: u64,
    pub failed: u64,
    pub evicted: u64,
    /// In the collection now (earlier runs' included).
    pub items: u64,
    pub bytes: u64,
}

impl CollectStats {
    pub fn summary(&self) -> CollectSummary {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CollectSummary {
            kept: Reason::ALL
                .iter()
                .map(|r| (r.as_str(), n(&self.kept[*r as usize])))
                .collect(),
            rate_limited: n(&self.rate_limited),
            busy: n(&self.busy),
            full: n(&self.full),
            failed: n(&self.failed),
            evicted: n(&self.evicted),
            items: n(&self.items),
            bytes: n(&self.bytes),
        }
    }
}

struct Job {
    record: Record,
    crop: RgbImage,
    frame: RgbImage,
}

/// What the inference loop talks to.
pub struct Collector {
    policy: Policy,
    per_minute: usize,
    /// When the items of the last minute were taken.
    window: VecDeque<Instant>,
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<CollectStats>,
    dir: PathBuf,
}

impl Collector {
    /// Opens the collection in `cfg.dir` and starts its writer; `manifest`: the running model.
    pub fn start(cfg: &CollectSection, manifest: &Manifest) -> Result<Option<Self>> {
        let Some(dir) = cfg.dir.clone() else {
            return Ok(None);
        };
        let mut store = Store::open(&dir, cfg.max_mib << 20)?;
        manifest.write(&dir)?;
        let stats = Arc::new(CollectStats::default());
        stats.items.store(store.items() as u64, Ordering::Relaxed);
        stats.bytes.store(store.bytes(), Ordering::Relaxed);
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("collect".into())
            .spawn(move || {
                for job in rx {
                    let reason = job.record.reason;
                    match write(&mut store, &job) {
                        Ok(Added::Kept { evicted, .. }) => {
                            st.kept[reason as usize].fetch_add(1, Ordering::Relaxed);
                            st.evicted.fetch_add(evicted as u64, Ordering::Relaxed);
                        }
                        Ok(Added::Full) => {
                            st.full.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            st.failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("tag watch: collect: {e:#}");
                        }
                    }
                    st.items.store(store.items() as u64, Ordering::Relaxed);
                    st.bytes.store(store.bytes(), Ordering::Relaxed);
                }
            })
            .context("cannot start the collect thread")?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Ok(Some(Self {
            policy: Policy::new(cfg.below, cfg.sample, seed),
            per_minute: cfg.per_minute as usize,
            window: VecDeque::new(),
            tx: Some(tx),
            thread: Some(thread),
            stats,
            dir,
        }))
    }

    /// Whether to keep this frame, and why: the policy, then the rate limit. `label`: the
    /// verdict (`unknown` below the threshold); `best`: the best class anyway.
    pub fn judge(&mut self, label: &str, best: &str, confidence: f32) -> Option<Reason> {
        let reason = self.policy.judge(label, best, confidence)?;
        let now = Instant::now();
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.window.pop_front();
        }
        if self.window.len() >= self.per_minute {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(reason)
    }

    /// Hands a judged frame to the writer: the region of interest and the whole frame.
    pub fn keep(&mut self, record: Record, crop: RgbImage, frame: RgbImage) {
        let reason = record.reason;
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Job {
            record,
            crop,
            frame,
        }) {
            Ok(()) => {
                self.policy.kept(reason);
                self.window.push_back(Instant::now());
            }
            Err(TrySendError::Full(_)) => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A new model runs: the reviewer's classes follow it.
    pub fn model_swapped(&self, manifest: &Manifest) {
        if let Err(e) = manifest.write(&self.dir) {
            eprintln!("tag watch: collect: {e:#}");
        }
    }

    /// Writes what is queued, then stops the writer.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.close();
    }
}

fn write(store: &mut Store, job: &Job) -> Result<Added> {
    let crop = crate::watch::jpeg(&job.crop, QUALITY).context("cannot encode a crop")?;
    let frame = crate::watch::jpeg(&job.frame, QUALITY).context("cannot encode a frame")?;
    store.add(&job.record, &crop, &frame)
}
