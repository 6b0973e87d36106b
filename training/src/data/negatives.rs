//! Products of other kinds (socks, ties, scarves, make-up: every class the split leaves out),
//! split train/val/test like the rest: they teach a station model to be unsure about what it
//! was not made for, and their test part measures how often it is.
//!
//! Written once to `models/negatives.json` beside `models/split.json`, which stays unchanged so
//! every existing model card still points at its split. Images byte-identical to one of the
//! split's images are left out, so no photo is both a product and a negative.

use crate::data::dataset;
use crate::data::split::{assign, hash_images, Entry, Split};
use crate::util::{sha256_hex, write_atomic};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Negatives {
    /// SHA-256 of the split file these complement.
    pub split_sha256: String,
    pub seed: u64,
    /// The other kinds (values of the split's label column), most frequent first; an entry's
    /// class index points here.
    pub kinds: Vec<String>,
    /// Images left out because they are byte-identical to one of the split's images.
    pub shared_with_split: usize,
    pub train: Vec<Entry>,
    pub val: Vec<Entry>,
    pub test: Vec<Entry>,
}

impl Negatives {
    /// Every image of a kind the split does not classify, split 80/10/10 per kind.
    pub fn create(data: &Path, split: &Split, split_file: &Path, seed: u64) -> Result<Self> {
        let loaded = dataset::load(data, &split.label_column)?;
        let known: HashSet<&str> = split.labels.iter().map(String::as_str).collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for it in &loaded.items {
            if !known.contains(it.label.as_str()) {
                *counts.entry(it.label.as_str()).or_default() += 1;
            }
        }
        let mut kinds: Vec<(&str, usize)> = counts.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let index: BTreeMap<&str, usize> = kinds
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, i))
            .collect();
        let pool: Vec<Entry> = loaded
            .items
            .iter()
            .filter_map(|it| index.get(it.label.as_str()).map(|&k| (it.id, k)))
            .collect();
        if pool.is_empty() {
            bail!("the data set has no images outside the split's classes: nothing to use as negatives");
        }
        let split_entries: Vec<Entry> = split
            .train
            .iter()
            .chain(&split.val)
            .chain(&split.test)
            .copied()
            .collect();
        let split_hashes: HashSet<String> =
            hash_images(data, &split_entries)?.into_iter().collect();
        let hashes = hash_images(data, &pool)?;
        let (mut kept, mut kept_hashes, mut shared) = (vec![], vec![], 0);
        for (e, h) in pool.into_iter().zip(hashes) {
            if split_hashes.contains(&h) {
                shared += 1;
            } else {
                kept.push(e);
                kept_hashes.push(h);
            }
        }
        let (train, val, test, _) = assign(&kept, &kept_hashes, kinds.len(), seed, 0.1, 0.1);
        Ok(Self {
            split_sha256: Split::file_hash(split_file)?,
            seed,
            kinds: kinds.into_iter().map(|(k, _)| k.to_string()).collect(),
            shared_with_split: shared,
            train,
            val,
            test,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &serde_json::to_vec(self)?)
    }

    /// Loads the negatives and checks they were made for this split file.
    pub fn load(path: &Path, split_file: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read {}: create it with `training negatives`",
                path.display()
            )
        })?;
        let n: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a negatives file", path.display()))?;
        let split_hash = sha256_hex(&std::fs::read(split_file)?);
        if n.split_sha256 != split_hash {
            bail!(
                "{} was made for another split than {}: recreate it with `training negatives`",
                path.display(),
                split_file.display()
            );
        }
        Ok(n)
    }

    /// Ids of one part ("train", "val" or "test").
    pub fn ids(&self, part: &str) -> Vec<u64> {
        let set = match part {
            "train" => &self.train,
            "val" => &self.val,
            _ => &self.test,
        };
        set.iter().map(|e| e.0).collect()
    }
}
