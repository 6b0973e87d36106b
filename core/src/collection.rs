//! A station's collection on disk, as `tag watch --collect` writes it and `tag review` and
//! `training finetune` read it: the layout's names and `labels.csv`, a person's decisions
//! (`id,label,time`). Here, not in the app, because the training crate reads collections too.
//!
//! ```text
//! DIR/collection.json         the classes a reviewer picks from, and the model that collected
//! DIR/items/<id>/item.json    the record: time, model and hash, verdict, top-k, tags, reason
//! DIR/items/<id>/crop.jpg     the region of interest at full camera resolution
//! DIR/items/<id>/frame.jpg    the whole frame
//! DIR/labels.csv              a person's decisions
//! ```
//!
//! In labels.csv the last decision on an item wins and an empty label takes it back, so the file
//! is also the history of the review. Each decision rewrites the file whole and renames it into
//! place (`fsio::write_atomic`): a crash leaves the previous or the next version, never half a
//! line.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const ITEMS: &str = "items";
pub const RECORD: &str = "item.json";
pub const CROP: &str = "crop.jpg";
pub const FRAME: &str = "frame.jpg";
pub const MANIFEST: &str = "collection.json";
pub const LABELS: &str = "labels.csv";
/// The label a reviewer gives what is not a product (the models' `none` class).
pub const NOT_A_PRODUCT: &str = "none";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub id: String,
    /// A class, `none` (not a product), or empty (decision taken back).
    pub label: String,
    pub time: String,
}

#[derive(Debug, Default)]
pub struct Labels {
    path: PathBuf,
    history: Vec<Decision>,
    current: BTreeMap<String, String>,
}

impl Labels {
    /// The decisions in `dir` (none yet when the file is absent).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(LABELS);
        let mut labels = Labels {
            path: path.clone(),
            ..Labels::default()
        };
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(labels),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut reader = csv::Reader::from_reader(text.as_slice());
        for row in reader.deserialize::<Decision>() {
            let d = row.with_context(|| {
                format!(
                    "{} is not `id,label,time` CSV; fix or move it aside",
                    path.display()
                )
            })?;
            labels.apply(d);
        }
        Ok(labels)
    }

    fn apply(&mut self, d: Decision) {
        if d.label.is_empty() {
            self.current.remove(&d.id);
        } else {
            self.current.insert(d.id.clone(), d.label.clone());
        }
        self.history.push(d);
    }

    /// Records `label` for item `id` at `time` (RFC 3339; empty label: takes the decision back)
    /// and writes the file.
    pub fn decide(&mut self, id: &str, label: &str, time: &str) -> Result<()> {
        self.apply(Decision {
            id: id.to_string(),
            label: label.to_string(),
            time: time.to_string(),
        });
        let mut w = csv::Writer::from_writer(Vec::new());
        for d in &self.history {
            w.serialize(d).expect("CSV into memory");
        }
        let bytes = w.into_inner().expect("CSV into memory");
        crate::fsio::write_atomic(&self.path, &bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The label of `id` now, if it has one.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.current.get(id).map(String::as_str)
    }

    /// Item id -> label, for every labelled item.
    pub fn current(&self) -> &BTreeMap<String, String> {
        &self.current
    }

    /// Decisions made, taken-back ones included.
    pub fn decisions(&self) -> usize {
        self.history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_decision_wins_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Labels::load(dir.path()).unwrap();
        l.decide("a", "Shoes", "2026-12-07T15:00:00Z").unwrap();
        l.decide("b", "Bags, small", "2026-12-07T15:00:00Z")
            .unwrap();
        l.decide("a", "Sandal", "2026-12-07T15:00:00Z").unwrap();
        l.decide("b", "", "2026-12-07T15:00:00Z").unwrap();
        let l = Labels::load(dir.path()).unwrap();
        assert_eq!(l.get("a"), Some("Sandal"));
        assert_eq!(l.get("b"), None);
        assert_eq!(l.decisions(), 4);
        std::fs::write(dir.path().join(LABELS), "id,label\nx\n").unwrap();
        let e = format!("{:#}", Labels::load(dir.path()).unwrap_err());
        assert!(
            e.contains("labels.csv") && e.contains("id,label,time"),
            "{e}"
        );
    }
}
