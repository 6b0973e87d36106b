//! The train/val/test split: deterministic for a seed, stratified per class, and
//! duplicate-aware: byte-identical images (about 650 groups in the Kaggle set) always land in the
//! same split, so the test set never contains a copy of a training photo.
//!
//! Written once to a JSON file that every model reuses; its SHA-256 goes into each model's JSON.

use crate::data::dataset::{self, Item};
use crate::util::{sha256_hex, write_atomic};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One image of the split: its id and its class index.
pub type Entry = (u64, usize);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Split {
    pub seed: u64,
    pub label_column: String,
    pub min_images: usize,
    /// Class names; an entry's class index points here. Most frequent first.
    pub labels: Vec<String>,
    /// Groups of byte-identical images found (each kept within one split).
    pub duplicate_groups: usize,
    /// Rows skipped because their image file is missing.
    pub missing_images: usize,
    /// Rows skipped because they could not be parsed.
    pub bad_rows: usize,
    /// Images of classes below `min_images`, left out.
    pub rare_class_images: usize,
    pub train: Vec<Entry>,
    pub val: Vec<Entry>,
    pub test: Vec<Entry>,
}

pub struct SplitOptions {
    pub seed: u64,
    pub label_column: String,
    pub min_images: usize,
    pub val_fraction: f64,
    pub test_fraction: f64,
}

impl Split {
    /// Loads the data directory and splits it.
    pub fn create(data: &Path, opts: &SplitOptions) -> Result<Self> {
        let loaded = dataset::load(data, &opts.label_column)?;
        let classes = dataset::frequent_classes(&loaded.items, opts.min_images);
        if classes.len() < 2 {
            let mut all = dataset::frequent_classes(&loaded.items, 1);
            all.truncate(5);
            bail!(
                "only {} class(es) of `{}` have at least {} images (largest: {}); lower \
                 --min-images or choose another --label-column",
                classes.len(),
                opts.label_column,
                opts.min_images,
                all.iter()
                    .map(|(l, n)| format!("{l} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let labels: Vec<String> = classes.into_iter().map(|(l, _)| l).collect();
        let index: BTreeMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let keep = |items: &[Item]| -> Vec<Entry> {
            items
                .iter()
                .filter_map(|it| index.get(it.label.as_str()).map(|&c| (it.id, c)))
                .collect()
        };
        let pool = keep(&loaded.items);
        let rare = loaded.items.len() - pool.len();
        let hashes = hash_images(data, &pool)?;
        let mut split = Split {
            seed: opts.seed,
            label_column: opts.label_column.clone(),
            min_images: opts.min_images,
            labels: labels.clone(),
            duplicate_groups: 0,
            missing_images: loaded.missing_images,
            bad_rows: loaded.bad_rows.len(),
            rare_class_images: rare,
            train: vec![],
            val: vec![],
            test: vec![],
        };
        match &loaded.fixed_test {
            Some(test_items) => {
                // A shipped test split is used as is; validation comes out of its train part.
                let (train, val, _, dups) = assign(
                    &pool,
                    &hashes,
                    labels.len(),
                    opts.seed,
                    opts.val_fraction,
                    0.0,
                );
                split.train = train;
                split.val = val;
                split.test = keep(test_items);
                split.duplicate_groups = dups;
            }
            None => {
                let (train, val, test, dups) = assign(
                    &pool,
                    &hashes,
                    labels.len(),
                    opts.seed,
                    opts.val_fraction,
                    opts.test_fraction,
                );
                split.train = train;
                split.val = val;
                split.test = test;
                split.duplicate_groups = dups;
            }
        }
        Ok(split)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        write_atomic(path, &json)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| {
                format!(
                    "cannot read split file {}: create it with `training split`",
                    path.display()
                )
            })
            .map_err(crate::error::data)?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a split file", path.display()))
            .map_err(crate::error::data)
    }

    /// SHA-256 of the split file, recorded in every model's JSON.
    pub fn file_hash(path: &Path) -> Result<String> {
        Ok(sha256_hex(&std::fs::read(path)?))
    }

    /// One part by name: "train", "val" or "test" (anything else is test).
    /// The same split with class indices into `labels` (a model's outputs, in its order); every
    /// class of the split must be one of them.
    pub fn relabelled(&self, labels: &[String]) -> Result<Self> {
        let map: Vec<usize> = self
            .labels
            .iter()
            .map(|l| {
                labels
                    .iter()
                    .position(|m| m == l)
                    .with_context(|| format!("the model has no class `{l}`"))
            })
            .collect::<Result<_>>()?;
        let remap = |e: &[Entry]| e.iter().map(|&(id, c)| (id, map[c])).collect();
        Ok(Self {
            labels: labels.to_vec(),
            train: remap(&self.train),
            val: remap(&self.val),
            test: remap(&self.test),
            ..self.clone()
        })
    }

    pub fn part(&self, name: &str) -> &[Entry] {
        match name {
            "train" => &self.train,
            "val" => &self.val,
            _ => &self.test,
        }
    }

    pub fn counts(entries: &[Entry], classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &(_, l) in entries {
            c[l] += 1;
        }
        c
    }
}

pub(crate) fn hash_images(data: &Path, pool: &[Entry]) -> Result<Vec<String>> {
    let bar = crate::util::progress(pool.len() as u64, "hashing images");
    let hashes = pool
        .par_iter()
        .map(|&(id, _)| {
            bar.inc(1);
            let p = dataset::image_path(data, id);
            std::fs::read(&p)
                .map(|b| sha256_hex(&b))
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    hashes
}

/// Assigns whole duplicate groups, class by class, to test, then val, then train.
/// Returns (train, val, test, number of groups with more than one image).
pub(crate) fn assign(
    pool: &[Entry],
    hashes: &[String],
    classes: usize,
    seed: u64,
    val_fraction: f64,
    test_fraction: f64,
) -> (Vec<Entry>, Vec<Entry>, Vec<Entry>, usize) {
    // Group by content; a group's class is that of its smallest id (stable).
    let mut groups: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
    for (e, h) in pool.iter().zip(hashes) {
        groups.entry(h.as_str()).or_default().push(*e);
    }
    let dups = groups.values().filter(|g| g.len() > 1).count();
    let mut per_class: Vec<Vec<Vec<Entry>>> = vec![vec![]; classes];
    for mut g in groups.into_values() {
        g.sort();
        per_class[g[0].1].push(g);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut train, mut val, mut test) = (vec![], vec![], vec![]);
    for mut class_groups in per_class {
        class_groups.sort();
        class_groups.shuffle(&mut rng);
        let total: usize = class_groups.iter().map(Vec::len).sum();
        let want_test = (total as f64 * test_fraction).round() as usize;
        let want_val = (total as f64 * val_fraction).round() as usize;
        let (mut n_test, mut n_val) = (0, 0);
        for g in class_groups {
            if n_test < want_test {
                n_test += g.len();
                test.extend(g);
            } else if n_val < want_val {
                n_val += g.len();
                val.extend(g);
            } else {
                train.extend(g);
            }
        }
    }
    (train, val, test, dups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> (Vec<Entry>, Vec<String>) {
        // 200 images of 2 classes; ids 0..10 of class 0 share one content hash.
        let pool: Vec<Entry> = (0..200u64).map(|i| (i, (i % 2) as usize)).collect();
        let hashes = pool
            .iter()
            .map(|&(id, c)| {
                if id < 20 && c == 0 {
                    "dup".to_string()
                } else {
                    format!("h{id}")
                }
            })
            .collect();
        (pool, hashes)
    }

    #[test]
    fn split_is_deterministic_for_a_seed() {
        let (p, h) = pool();
        let a = assign(&p, &h, 2, 7, 0.1, 0.1);
        let b = assign(&p, &h, 2, 7, 0.1, 0.1);
        assert_eq!(a, b);
        let c = assign(&p, &h, 2, 8, 0.1, 0.1);
        assert_ne!(a.0, c.0, "another seed gives another split");
    }

    #[test]
    fn duplicates_never_straddle_splits() {
        let (p, h) = pool();
        for seed in 0..20 {
            let (train, val, test, dups) = assign(&p, &h, 2, seed, 0.1, 0.1);
            assert_eq!(dups, 1);
            let dup_ids: Vec<u64> = (0..20).filter(|i| i % 2 == 0).collect();
            let in_split = |s: &[Entry]| {
                dup_ids
                    .iter()
                    .filter(|i| s.iter().any(|e| e.0 == **i))
                    .count()
            };
            let counts = [in_split(&train), in_split(&val), in_split(&test)];
            assert!(counts.contains(&dup_ids.len()), "seed {seed}: {counts:?}");
            assert_eq!(train.len() + val.len() + test.len(), 200);
        }
    }

    #[test]
    fn split_is_stratified() {
        let (p, _) = pool();
        let h: Vec<String> = p.iter().map(|e| format!("h{}", e.0)).collect();
        let (train, val, test, _) = assign(&p, &h, 2, 1, 0.1, 0.1);
        assert_eq!(Split::counts(&test, 2), vec![10, 10]);
        assert_eq!(Split::counts(&val, 2), vec![10, 10]);
        assert_eq!(Split::counts(&train, 2), vec![80, 80]);
    }
}
