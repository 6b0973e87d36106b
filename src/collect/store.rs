//! Writing a collection (its layout: tagger-core's `collection`).
//!
//! An item is written into `DIR/.partial/<id>/`, each file synced, then renamed into `items/`
//! in one step: a crash leaves either a whole item or a leftover under `.partial/`, which the
//! next start removes. Ids sort by time (`20261207T150102.123Z-000001234`, then the frame).
//!
//! The disk quota holds whole items. When a new one does not fit, the least useful unlabelled
//! items make room: random samples first (oldest first), then the most confident; an item a
//! person labelled is never removed. When that does not free enough, the new item is refused.

use super::labels::Labels;
use super::policy::Reason;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use tagger_core::collection::{CROP, FRAME, ITEMS, MANIFEST, RECORD};
const PARTIAL: &str = ".partial";

/// The model that made a verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl ModelRef {
    /// `model`, whose file has the SHA-256 `sha256`.
    pub fn new(model: &crate::model::Model, sha256: &str) -> Self {
        Self {
            name: model.info.name.clone(),
            version: model.info.version.clone(),
            sha256: sha256.to_string(),
        }
    }
}

/// One of the model's best guesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guess {
    pub label: String,
    pub score: f32,
}

/// `item.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// When the frame was classified (RFC 3339, UTC).
    pub time: String,
    /// The frame's number in the station's run.
    pub frame: u64,
    pub reason: Reason,
    pub model: ModelRef,
    /// The verdict: a class, `none` or `unknown`.
    pub label: String,
    pub confidence: f32,
    /// The best classes, best first.
    pub top: Vec<Guess>,
    /// A multi-head model's tags (`{"colour": {"label": ..., "confidence": ...}, ...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<serde_json::Value>,
    /// The region of interest, `[x, y, width, height]` as fractions of the frame.
    pub roi: [f32; 4],
    /// The whole frame's `[width, height]` in pixels.
    pub frame_size: [u32; 2],
}

/// `collection.json`: what a reviewer chooses from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// The model's classes (with `none` where it has one).
    pub classes: Vec<String>,
    pub model: ModelRef,
}

impl Manifest {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).expect("manifest serialises") + "\n";
        crate::fsio::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {}: is {} a collection made by `tag watch --collect`?",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not valid", path.display()))
    }
}

/// An item id: its time without separators, then the frame number.
pub fn item_id(time: &str, frame: u64) -> String {
    let compact: String = time.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    format!("{compact}-{frame:09}")
}

/// True for what [`item_id`] makes (so a request cannot name a path outside the collection).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !id.starts_with('.')
}

struct Entry {
    bytes: u64,
    confidence: f32,
    reason: Reason,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Written, after removing this many less useful items.
    Kept { evicted: usize, id: String },
    /// No room, even after removing what may be removed.
    Full,
}

pub struct Store {
    dir: PathBuf,
    quota: u64,
    entries: BTreeMap<String, Entry>,
    bytes: u64,
}

impl Store {
    /// Opens (or makes) the collection in `dir` holding at most `quota` bytes of items.
    pub fn open(dir: &Path, quota: u64) -> Result<Self> {
        let items = dir.join(ITEMS);
        std::fs::create_dir_all(&items)
            .with_context(|| format!("cannot create collection folder {}", items.display()))?;
        match std::fs::remove_dir_all(dir.join(PARTIAL)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e)
                    .with_context(|| format!("cannot clear {}", dir.join(PARTIAL).display()))
            }
            _ => {}
        }
        let mut store = Store {
            dir: dir.to_path_buf(),
            quota,
            entries: BTreeMap::new(),
            bytes: 0,
        };
        for r in read_items(dir)? {
            let bytes = [RECORD, CROP, FRAME]
                .iter()
                .filter_map(|f| std::fs::metadata(items.join(&r.id).join(f)).ok())
                .map(|m| m.len())
                .sum();
            store.bytes += bytes;
            store.entries.insert(
                r.id,
                Entry {
                    bytes,
                    confidence: r.confidence,
                    reason: r.reason,
                },
            );
        }
        Ok(store)
    }

    pub fn items(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds an item (`crop` and `frame` are JPEG bytes), making room if it may.
    pub fn add(&mut self, record: &Record, crop: &[u8], frame: &[u8]) -> Result<Added> {
        let mut record = record.clone();
        let base = record.id.clone();
        let mut n = 1;
        while self.entries.contains_key(&record.id) {
            record.id = format!("{base}-{n}");
            n += 1;
        }
        let json = serde_json::to_vec_pretty(&record).expect("record serialises");
        let need = (json.len() + crop.len() + frame.len()) as u64;
        let Some(victims) = self.room_for(need, &record)? else {
            return Ok(Added::Full);
        };
        for id in &victims {
            let path = self.dir.join(ITEMS).join(id);
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            if let Some(e) = self.entries.remove(id) {
                self.bytes -= e.bytes;
            }
        }
        let partial = self.dir.join(PARTIAL).join(&record.id);
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        for (name, bytes) in [(CROP, crop), (FRAME, frame), (RECORD, json.as_slice())] {
            let path = partial.join(name);
            let mut f = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let items = self.dir.join(ITEMS);
        std::fs::rename(&partial, items.join(&record.id)).with_context(|| {
            format!("cannot move {} into {}", partial.display(), items.display())
        })?;
        // The rename itself is durable once the folder is synced.
        if let Ok(d) = std::fs::File::open(&items) {
            let _ = d.sync_all();
        }
        self.bytes += need;
        self.entries.insert(
            record.id.clone(),
            Entry {
                bytes: need,
                confidence: record.confidence,
                reason: record.reason,
            },
        );
        Ok(Added::Kept {
            evicted: victims.len(),
            id: record.id,
        })
    }

    /// The items to remove so that `need` more bytes fit, or None when they cannot be found.
    fn room_for(&self, need: u64, new: &Record) -> Result<Option<Vec<String>>> {
        if self.bytes + need <= self.quota {
            return Ok(Some(vec![]));
        }
        if need > self.quota {
            return Ok(None);
        }
        let labels = Labels::load(&self.dir)?;
        let free = |(id, _): &(&String, &Entry)| labels.get(id).is_none();
        let samples = self
            .entries
            .iter()
            .filter(free)
            .filter(|(_, e)| e.reason == Reason::Sample);
        let mut confident: Vec<_> = self
            .entries
            .iter()
            .filter(free)
            .filter(|(_, e)| e.reason != Reason::Sample && e.confidence > new.confidence)
            .collect();
        confident.sort_by(|a, b| b.1.confidence.total_cmp(&a.1.confidence));
        let mut victims = vec![];
        let mut bytes = self.bytes;
        for (id, e) in samples.chain(confident) {
            if bytes + need <= self.quota {
                break;
            }
            victims.push(id.clone());
            bytes -= e.bytes;
        }
        Ok((bytes + need <= self.quota).then_some(victims))
    }
}

/// Every whole item in a collection, oldest first. A folder without a readable record (not made
/// by `tag`, or damaged) is skipped with a warning, never removed.
pub fn read_items(dir: &Path) -> Result<Vec<Record>> {
    let items = dir.join(ITEMS);
    let listing = std::fs::read_dir(&items).with_context(|| {
        format!(
            "cannot read {}: is {} a collection made by `tag watch --collect`?",
            items.display(),
            dir.display()
        )
    })?;
    let mut out = vec![];
    for entry in listing.flatten() {
        let path = entry.path().join(RECORD);
        match std::fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<Record>(&b)?))
        {
            Ok(r) if r.id == entry.file_name().to_string_lossy() => out.push(r),
            Ok(_) => eprintln!(
                "tag: warning: skipped {}: its id is not its folder's name",
                path.display()
            ),
            Err(e) => eprintln!("tag: warning: skipped {}: {e}", path.display()),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(frame: u64, reason: Reason, confidence: f32) -> Record {
        Record {
            id: item_id("2026-12-07T15:01:02.123Z", frame),
            time: "2026-12-07T15:01:02.123Z".into(),
            frame,
            reason,
            model: ModelRef::default(),
            label: "Shoes".into(),
            confidence,
            top: vec![],
            tags: None,
            roi: [0.0, 0.0, 1.0, 1.0],
            frame_size: [64, 48],
        }
    }

    #[test]
    fn the_quota_removes_samples_then_the_most_confident_and_never_a_labelled_item() {
        let dir = tempfile::tempdir().unwrap();
        let blob = vec![7u8; 1000];
        // Room for three items of about 1.85 kB.
        let mut s = Store::open(dir.path(), 6000).unwrap();
        let add = |s: &mut Store, frame, reason, confidence| match s
            .add(&record(frame, reason, confidence), &blob, &blob[..500])
            .unwrap()
        {
            Added::Kept { evicted, .. } => Some(evicted),
            Added::Full => None,
        };
        let frames = || -> Vec<u64> {
            read_items(dir.path())
                .unwrap()
                .iter()
                .map(|r| r.frame)
                .collect()
        };
        assert_eq!(add(&mut s, 1, Reason::Sample, 0.99), Some(0));
        assert_eq!(add(&mut s, 2, Reason::LowConfidence, 0.7), Some(0));
        assert_eq!(add(&mut s, 3, Reason::LowConfidence, 0.75), Some(0));
        // Full: the sample goes first.
        assert_eq!(add(&mut s, 4, Reason::Unknown, 0.3), Some(1));
        assert_eq!(frames(), [2, 3, 4]);
        // Then the most confident (0.75), unless a person labelled it.
        Labels::load(dir.path())
            .unwrap()
            .decide(
                &item_id("2026-12-07T15:01:02.123Z", 3),
                "Shoes",
                "2026-12-07T15:02:00Z",
            )
            .unwrap();
        assert_eq!(add(&mut s, 5, Reason::Unknown, 0.2), Some(1));
        assert_eq!(frames(), [3, 4, 5]);
        // Nothing left less useful than a 0.9 item: refused, nothing removed.
        assert_eq!(add(&mut s, 6, Reason::LowConfidence, 0.9), None);
        assert_eq!(s.items(), 3);
        // Reopened: the same items and bytes; a half-written item is cleared.
        std::fs::create_dir_all(dir.path().join(PARTIAL).join("x")).unwrap();
        let again = Store::open(dir.path(), 6000).unwrap();
        assert_eq!((again.items(), again.bytes()), (s.items(), s.bytes()));
        assert!(!dir.path().join(PARTIAL).join("x").exists());
    }

    #[test]
    fn ids_are_safe_and_sort_by_time() {
        let a = item_id("2026-12-07T15:01:02.123Z", 12);
        assert_eq!(a, "20261207T150102.123Z-000000012");
        assert!(valid_id(&a));
        assert!(a < item_id("2026-12-07T15:01:03.000Z", 1));
        for bad in ["", "../x", ".partial", "a/b", "a b"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
