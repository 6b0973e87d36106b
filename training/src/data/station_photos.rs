//! Labelled photos to fine-tune on, from one of two layouts:
//!
//! - a station's collection (`tag watch --collect DIR`, labelled in `tag review`): every item with
//!   a current label in `labels.csv`, its `crop.jpg` (the region of interest the model saw) and the
//!   time in its `item.json`. `none` (not a product) trains towards the `none` class.
//! - a folder laid out like real-photos-dev (`labels.csv` `id,label,group,kids,sender` and
//!   `images/`): groups map to classes as for real-train (data/real_photos.rs), other kinds train
//!   towards a flat output, ambiguous photos are left out. It has no times: the order of
//!   `labels.csv` stands in for them.
//!
//! Validation is the latest photos (by time): a station's newest frames are the closest to what it
//! will see next, and photos taken minutes apart are not split across the two sides at random.

use super::real_photos::{RealPhotos, RealSplit};
use crate::fit::probe::real_target;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tagger_core::collection;

/// One labelled photo.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledPhoto {
    pub id: String,
    pub path: PathBuf,
    /// The class as written (a model label, `none`, or the real-photo group).
    pub label: String,
    /// Index into the model's labels; `None`: another kind (a flat target over the products).
    pub target: Option<usize>,
    /// Sorts by time (RFC 3339, or the row number for real-photo folders).
    pub time: String,
}

/// Which layout a folder has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Collection,
    RealPhotos,
}

/// The labelled photos of a folder, oldest first.
#[derive(Debug, Clone)]
pub struct StationPhotos {
    pub dir: PathBuf,
    pub layout: Layout,
    pub photos: Vec<LabelledPhoto>,
    /// Labelled items left out: a label the model does not have, or a missing crop.
    pub left_out: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
struct ItemTime {
    time: String,
}

impl StationPhotos {
    /// Reads `dir` (either layout) for a model with `labels`.
    pub fn load(dir: &Path, labels: &[String]) -> Result<Self> {
        let mut s = if dir.join(collection::ITEMS).is_dir() {
            Self::collection(dir, labels)?
        } else if dir.join("images").is_dir() {
            let real = RealPhotos::load(dir)?;
            let all: Vec<_> = real.photos.iter().collect();
            Self::real(&real, &all, labels)
        } else {
            bail!(
                "{} is neither a collection (items/ and labels.csv, from `tag watch --collect`) \
                 nor a real-photo folder (images/ and labels.csv)",
                dir.display()
            );
        };
        s.photos
            .sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        if s.photos.is_empty() {
            bail!(
                "{} has no labelled photo the model can learn ({} left out): label some with \
                 `tag review {}`",
                dir.display(),
                s.left_out.len(),
                dir.display()
            );
        }
        Ok(s)
    }

    fn collection(dir: &Path, labels: &[String]) -> Result<Self> {
        let decisions = collection::Labels::load(dir)?;
        let (mut photos, mut left_out) = (vec![], vec![]);
        for (id, label) in decisions.current() {
            let item = dir.join(collection::ITEMS).join(id);
            let crop = item.join(collection::CROP);
            let Some(target) = labels.iter().position(|l| l == label) else {
                left_out.push((
                    id.clone(),
                    format!("label `{label}` is not one of the model's"),
                ));
                continue;
            };
            if !crop.is_file() {
                left_out.push((id.clone(), "no crop.jpg".into()));
                continue;
            }
            let record = item.join(collection::RECORD);
            let time: ItemTime = serde_json::from_slice(
                &std::fs::read(&record)
                    .with_context(|| format!("cannot read {}", record.display()))?,
            )
            .with_context(|| format!("{} has no `time`", record.display()))?;
            photos.push(LabelledPhoto {
                id: id.clone(),
                path: crop,
                label: label.clone(),
                target: Some(target),
                time: time.time,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            layout: Layout::Collection,
            photos,
            left_out,
        })
    }

    fn real(real: &RealPhotos, photos: &[&super::real_photos::Photo], labels: &[String]) -> Self {
        let row: std::collections::HashMap<&str, usize> = real
            .photos
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let (mut out, mut left_out) = (vec![], vec![]);
        for p in photos {
            match real_target(p, labels) {
                Some(target) => out.push(LabelledPhoto {
                    id: p.id.clone(),
                    path: real.image_path(p),
                    label: p.group.clone(),
                    target,
                    time: format!("{:09}", row[p.id.as_str()]),
                }),
                None => left_out.push((p.id.clone(), format!("group `{}`", p.group))),
            }
        }
        Self {
            dir: real.dir.clone(),
            layout: Layout::RealPhotos,
            photos: out,
            left_out,
        }
    }

    /// A real-photo folder's part (`train` or `val`) of its sender split.
    pub fn real_part(dir: &Path, split: &Path, part: &str, labels: &[String]) -> Result<Self> {
        let real = RealPhotos::load(dir)?;
        let s = RealSplit::load(split, &real)?;
        Ok(Self::real(&real, &s.part(&real, part)?, labels))
    }

    /// Oldest photos to train on and the latest `val_share` (at least one) to validate on.
    pub fn split_by_time(&self, val_share: f64) -> (Vec<LabelledPhoto>, Vec<LabelledPhoto>) {
        let n = self.photos.len();
        let val = ((n as f64 * val_share).ceil() as usize).clamp(1, n.max(2) - 1);
        let (train, val) = self.photos.split_at(n - val.min(n));
        (train.to_vec(), val.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_gives_its_labelled_crops_oldest_first_and_the_latest_fifth_validates() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<String> = ["Shoes", "Topwear", "none"].map(String::from).to_vec();
        let mut decisions = collection::Labels::load(dir.path()).unwrap();
        for (i, (id, label)) in [
            ("b", "Topwear"),
            ("a", "Shoes"),
            ("c", "none"),
            ("d", "Watches"),
            ("e", "Shoes"),
            ("f", "Topwear"),
        ]
        .iter()
        .enumerate()
        {
            let item = dir.path().join("items").join(id);
            std::fs::create_dir_all(&item).unwrap();
            std::fs::write(item.join("crop.jpg"), b"x").unwrap();
            let time = format!("2026-12-07T10:00:0{}Z", 5 - i.min(5));
            std::fs::write(
                item.join("item.json"),
                format!(r#"{{"time": "{time}", "label": "x"}}"#),
            )
            .unwrap();
            decisions.decide(id, label, &time).unwrap();
        }
        decisions.decide("f", "", "2026-12-07T11:00:00Z").unwrap();
        let s = StationPhotos::load(dir.path(), &labels).unwrap();
        assert_eq!(s.layout, Layout::Collection);
        let ids: Vec<&str> = s.photos.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["e", "c", "a", "b"], "oldest first, f taken back");
        assert_eq!(s.photos[1].target, Some(2), "none is a class");
        assert_eq!(s.left_out.len(), 1, "Watches is not a model label");
        let (train, val) = s.split_by_time(0.2);
        assert_eq!((train.len(), val.len()), (3, 1));
        assert_eq!(val[0].id, "b");
        let err = StationPhotos::load(&dir.path().join("items"), &labels).unwrap_err();
        assert!(err.to_string().contains("tag watch --collect"), "{err}");
    }
}
