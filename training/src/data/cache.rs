//! Decode once: every image of the split, preprocessed to 3x80x60 u8 (14.4 kB each, ~600 MB for
//! the whole set), in one file keyed by the files' sizes and modification times and by the
//! preprocessing version. Epochs then read bytes instead of decoding 35k JPEGs each time.

use crate::data::dataset::image_path;
use crate::util::{progress, sha256_hex, write_atomic, write_json};
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tagger_core::preprocess::{self, IMAGE_LEN};

/// Bump when preprocessing changes: old caches are then rebuilt, never silently reused.
pub const PREPROCESS_VERSION: u32 = 1;

pub struct ImageCache {
    slots: HashMap<u64, usize>,
    data: Vec<u8>,
    /// Images that could not be decoded: skipped and counted, never fatal.
    pub corrupt: Vec<(u64, String)>,
    pub path: PathBuf,
    pub rebuilt: bool,
}

#[derive(Serialize, Deserialize)]
struct Index {
    key: String,
    ids: Vec<u64>,
    corrupt: Vec<(u64, String)>,
}

/// Cache key: preprocessing version plus each file's id, size and mtime.
fn key(data: &Path, ids: &[u64]) -> String {
    let mut s = format!("v{PREPROCESS_VERSION};");
    for &id in ids {
        let meta = std::fs::metadata(image_path(data, id)).ok();
        let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        s.push_str(&format!("{id}:{size}:{mtime};"));
    }
    sha256_hex(s.as_bytes())
}

impl ImageCache {
    /// Opens the cache for these ids, building it when absent or stale.
    pub fn open(data: &Path, cache_dir: &Path, ids: &[u64]) -> Result<Self> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let key = key(data, &ids);
        let short = &key[..16];
        let bin = cache_dir.join(format!("images-{short}.u8"));
        let idx = cache_dir.join(format!("images-{short}.json"));
        if let (Ok(index), Ok(bytes)) = (std::fs::read(&idx), std::fs::read(&bin)) {
            if let Ok(index) = serde_json::from_slice::<Index>(&index) {
                if index.key == key && bytes.len() == index.ids.len() * IMAGE_LEN {
                    return Ok(Self::from_parts(index, bytes, bin, false));
                }
            }
        }
        let bar = progress(ids.len() as u64, "decoding images");
        let decoded: Vec<(u64, Result<Vec<u8>, String>)> = ids
            .par_iter()
            .map(|&id| {
                let r = preprocess::file_to_chw(&image_path(data, id)).map_err(|e| e.to_string());
                bar.inc(1);
                (id, r)
            })
            .collect();
        bar.finish_and_clear();
        let mut index = Index {
            key,
            ids: vec![],
            corrupt: vec![],
        };
        let mut bytes = Vec::with_capacity(ids.len() * IMAGE_LEN);
        for (id, r) in decoded {
            match r {
                Ok(chw) => {
                    index.ids.push(id);
                    bytes.extend_from_slice(&chw);
                }
                Err(e) => index.corrupt.push((id, e)),
            }
        }
        write_atomic(&bin, &bytes).context("writing the image cache")?;
        write_json(&idx, &index)?;
        Ok(Self::from_parts(index, bytes, bin, true))
    }

    fn from_parts(index: Index, data: Vec<u8>, path: PathBuf, rebuilt: bool) -> Self {
        let slots = index
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        Self {
            slots,
            data,
            corrupt: index.corrupt,
            path,
            rebuilt,
        }
    }

    /// The preprocessed CHW bytes of an image, `None` when it was corrupt.
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        self.slots
            .get(&id)
            .map(|&s| &self.data[s * IMAGE_LEN..(s + 1) * IMAGE_LEN])
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
