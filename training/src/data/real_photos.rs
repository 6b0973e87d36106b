//! Real phone photos of garments and shoes (a folder laid out like `real-photos-dev`:
//! `labels.csv` with `id,label,group,kids,sender` and `images/<id>.jpg`), and their split by
//! photographer into `real-val` (every choice is made on it) and `real-train` (may be trained
//! on). A sender's photos stay on one side, so a figure on real-val never rewards having seen the
//! same room, camera or garment in training.

use crate::util::{sha256_hex, write_json};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The scored groups, in report order, and the model labels that count as right for each.
pub const GROUPS: [(&str, &[&str]); 3] = [
    ("Topwear", &["Topwear"]),
    ("Bottomwear", &["Bottomwear"]),
    ("Footwear", &["Shoes", "Sandal", "Flip Flops"]),
];
/// Photos of kinds the classes do not cover (dresses, hats): right when not reported.
pub const OTHER_KIND: &str = "other kind";
/// Photos whose class depends on the eye (undershirts, bodies): never scored.
pub const AMBIGUOUS: &str = "ambiguous";
/// Share of each group's photos the split aims to put into real-val.
pub const VAL_SHARE: f64 = 0.5;

/// One labelled photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub id: String,
    pub label: String,
    pub group: String,
    pub sender: String,
}

/// A real-photo folder: its photos and where their files are.
#[derive(Debug, Clone)]
pub struct RealPhotos {
    pub dir: PathBuf,
    pub photos: Vec<Photo>,
    /// sha256 of labels.csv, recorded with the split so a changed folder is noticed.
    pub labels_sha256: String,
}

#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    label: String,
    group: String,
    sender: String,
}

impl RealPhotos {
    /// Reads `dir/labels.csv`; a clear error names the folder when it is not laid out right.
    pub fn load(dir: &Path) -> Result<Self> {
        let csv_path = dir.join("labels.csv");
        let bytes = std::fs::read(&csv_path).with_context(|| {
            format!(
                "cannot read {}: expected a real-photo folder with labels.csv \
                 (id,label,group,kids,sender) and images/<id>.jpg",
                csv_path.display()
            )
        })?;
        let mut photos = Vec::new();
        for (i, row) in csv::Reader::from_reader(bytes.as_slice())
            .deserialize::<Row>()
            .enumerate()
        {
            let r = row.with_context(|| format!("{} line {}", csv_path.display(), i + 2))?;
            photos.push(Photo {
                id: r.id,
                label: r.label,
                group: r.group,
                sender: r.sender,
            });
        }
        if photos.is_empty() {
            bail!("{} lists no photos", csv_path.display());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            photos,
            labels_sha256: sha256_hex(&bytes),
        })
    }

    /// `images/<id>.jpg`, or `images/<id>.png` where only that exists (lossless fixtures).
    pub fn image_path(&self, p: &Photo) -> PathBuf {
        let jpg = self.dir.join("images").join(format!("{}.jpg", p.id));
        let png = jpg.with_extension("png");
        if !jpg.exists() && png.exists() {
            png
        } else {
            jpg
        }
    }
}

/// Photo counts per group on one side of the split.
pub type GroupCounts = BTreeMap<String, usize>;

/// The sender split, saved as models/real-split.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealSplit {
    pub source: String,
    pub labels_sha256: String,
    pub rule: String,
    pub val_senders: Vec<String>,
    pub train_senders: Vec<String>,
    pub val: GroupCounts,
    pub train: GroupCounts,
}

fn counts<'a>(photos: impl Iterator<Item = &'a Photo>) -> GroupCounts {
    let mut c = GroupCounts::new();
    for p in photos {
        *c.entry(p.group.clone()).or_default() += 1;
    }
    c
}

/// The scored groups plus other kinds: what the split balances.
fn balanced_groups() -> impl Iterator<Item = &'static str> {
    GROUPS.iter().map(|g| g.0).chain([OTHER_KIND])
}

impl RealSplit {
    /// Deterministic split by sender: senders from the largest to the smallest (ties by id), each
    /// to the side that is further below its target share ([`VAL_SHARE`] for val) over the
    /// scored groups and other kinds, measured as the summed shortfall of the group shares.
    pub fn create(real: &RealPhotos, source: &str) -> Self {
        let mut by_sender: BTreeMap<&str, Vec<&Photo>> = BTreeMap::new();
        for p in &real.photos {
            by_sender.entry(&p.sender).or_default().push(p);
        }
        let totals = counts(real.photos.iter());
        let mut senders: Vec<(&str, Vec<&Photo>)> = by_sender.into_iter().collect();
        senders.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        let (mut val, mut train) = (GroupCounts::new(), GroupCounts::new());
        let (mut val_s, mut train_s) = (vec![], vec![]);
        for (sender, photos) in senders {
            let c = counts(photos.iter().copied());
            let shortfall = |side: &GroupCounts, target: f64| -> f64 {
                balanced_groups()
                    .map(|g| {
                        let total = *totals.get(g).unwrap_or(&0) as f64;
                        let have = *side.get(g).unwrap_or(&0) as f64;
                        let add = *c.get(g).unwrap_or(&0) as f64;
                        if total == 0.0 || add == 0.0 {
                            0.0
                        } else {
                            (target - have / total).max(0.0)
                        }
                    })
                    .sum()
            };
            let to_val = shortfall(&val, VAL_SHARE) >= shortfall(&train, 1.0 - VAL_SHARE);
            let (side, list) = if to_val {
                (&mut val, &mut val_s)
            } else {
                (&mut train, &mut train_s)
            };
            for (g, n) in c {
                *side.entry(g).or_default() += n;
            }
            list.push(sender.to_string());
        }
        val_s.sort();
        train_s.sort();
        Self {
            source: source.to_string(),
            labels_sha256: real.labels_sha256.clone(),
            rule: format!(
                "by sender, largest first, each to the side further below its share \
                 (val {VAL_SHARE}) of Topwear, Bottomwear, Footwear and other kinds"
            ),
            val_senders: val_s,
            train_senders: train_s,
            val,
            train,
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Loads a saved split and checks it was made from this folder's labels.
    pub fn load(path: &Path, real: &RealPhotos) -> Result<Self> {
        let s: Self = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a real-photo split", path.display()))?;
        if s.labels_sha256 != real.labels_sha256 {
            bail!(
                "{} was made from another labels.csv than {}'s: remove it to split anew \
                 (`training real --resplit`)",
                path.display(),
                real.dir.display()
            );
        }
        Ok(s)
    }

    /// The photos of `part` ("val" or "train").
    pub fn part<'a>(&self, real: &'a RealPhotos, part: &str) -> Result<Vec<&'a Photo>> {
        let senders = match part {
            "val" => &self.val_senders,
            "train" => &self.train_senders,
            other => bail!("unknown real-photo part `{other}`: use val or train"),
        };
        Ok(real
            .photos
            .iter()
            .filter(|p| senders.binary_search(&p.sender).is_ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(id: usize, group: &str, sender: &str) -> Photo {
        Photo {
            id: id.to_string(),
            label: "x".into(),
            group: group.into(),
            sender: sender.into(),
        }
    }

    #[test]
    fn senders_stay_on_one_side_and_groups_are_shared() {
        let mut photos = vec![];
        for i in 0..40 {
            let g = ["Topwear", "Bottomwear", "Footwear", OTHER_KIND][i % 4];
            photos.push(photo(i, g, &format!("s{}", i % 8)));
        }
        let real = RealPhotos {
            dir: PathBuf::new(),
            photos,
            labels_sha256: "h".into(),
        };
        let s = RealSplit::create(&real, "fixture");
        let val = s.part(&real, "val").unwrap();
        let train = s.part(&real, "train").unwrap();
        assert_eq!(val.len() + train.len(), 40);
        for p in &val {
            assert!(train.iter().all(|t| t.sender != p.sender));
        }
        for g in ["Topwear", "Bottomwear", "Footwear"] {
            assert!(s.val.get(g).copied().unwrap_or(0) > 0, "{g} in val");
            assert!(s.train.get(g).copied().unwrap_or(0) > 0, "{g} in train");
        }
        assert_eq!(RealSplit::create(&real, "fixture"), s, "deterministic");
    }
}
