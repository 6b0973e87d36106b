//! A head on the frozen pretrained backbone: fixed views of every training photo (catalogue look,
//! mirrored, station frames), empty frames for `none`, other kinds towards a flat output, and
//! optionally the real-train photos, each through the backbone once (features.rs, cached), then a
//! dense head fitted in burn (linear.rs) and written with the backbone as one ONNX model.

use crate::backbone::efficientnet::{Lite, FEATURES};
use crate::backbone::features::{cached, Extractor};
use crate::data::cache::ImageCache;
use crate::data::real_photos::{Photo, RealPhotos, GROUPS, OTHER_KIND};
use crate::data::split::Entry;
use crate::fit::linear::Head;
use crate::scene::{self, Level};
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::path::Path;

/// One fixed view of a catalogue photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    Catalogue,
    Mirrored,
    Mild,
    Hard,
    Tray,
}

impl std::str::FromStr for View {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "catalogue" => View::Catalogue,
            "mirrored" => View::Mirrored,
            "mild" => View::Mild,
            "hard" => View::Hard,
            "tray" => View::Tray,
            _ => {
                return Err(format!(
                    "unknown view `{s}`: catalogue, mirrored, mild, hard or tray"
                ))
            }
        })
    }
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Catalogue => "catalogue",
            View::Mirrored => "mirrored",
            View::Mild => "mild",
            View::Hard => "hard",
            View::Tray => "tray",
        }
    }

    /// Network inputs of `ids` in this view (deterministic per photo and part).
    pub fn inputs(self, part: &str, ids: &[u64], cache: &ImageCache) -> Vec<Vec<u8>> {
        ids.par_iter()
            .map(|&id| {
                let img = cache.get(id).expect("ids are filtered to the cache");
                let level = match self {
                    View::Catalogue => return img.to_vec(),
                    View::Mirrored => return scene::mirrored(img),
                    View::Mild => Level::Mild,
                    View::Hard => Level::Hard,
                    View::Tray => Level::Tray,
                };
                crate::eval::runner::product_frame(level, part, id, img)
            })
            .collect()
    }
}

/// Cached features of a set of inputs made on demand.
pub struct Features<'a> {
    pub extractor: &'a Extractor,
    /// Folder of the cache files; their names carry the backbone input size.
    pub dir: &'a Path,
    pub tag: String,
}

impl Features<'_> {
    pub fn get(
        &self,
        key: &str,
        n: usize,
        make: impl FnOnce() -> Vec<Vec<u8>>,
    ) -> Result<Vec<f32>> {
        let path = self.dir.join(format!("{}-{key}.f32", self.tag));
        cached(&path, n, || {
            let inputs = make();
            self.extractor.features(&inputs, key)
        })
    }
}

/// What a real photo trains towards: `Some(Some(label index))`, `Some(None)` for a flat target
/// (other kinds), `None` when it is not trained on (ambiguous photos, or a group whose label the
/// model lacks).
pub fn real_target(p: &Photo, labels: &[String]) -> Option<Option<usize>> {
    if p.group == OTHER_KIND {
        return Some(None);
    }
    let g = GROUPS.iter().find(|g| g.0 == p.group)?;
    labels.iter().position(|l| l == g.1[0]).map(Some)
}

/// Soft-target rows being assembled: features and targets over `outputs` labels, of which the
/// first `products` are products (flat targets spread over those).
pub struct RowSet {
    pub x: Vec<f32>,
    pub t: Vec<f32>,
    pub outputs: usize,
    pub products: usize,
}

impl RowSet {
    pub fn new(outputs: usize, products: usize) -> Self {
        Self {
            x: vec![],
            t: vec![],
            outputs,
            products,
        }
    }

    /// Adds rows: `target` per row, `None` for a flat target over the products.
    pub fn add(&mut self, features: &[f32], targets: &[Option<usize>]) -> Result<()> {
        if features.len() != targets.len() * FEATURES {
            bail!(
                "{} feature values for {} targets",
                features.len(),
                targets.len()
            );
        }
        self.x.extend_from_slice(features);
        for t in targets {
            let mut row = vec![0f32; self.outputs];
            match t {
                Some(c) => row[*c] = 1.0,
                None => row[..self.products].fill(1.0 / self.products as f32),
            }
            self.t.extend(row);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.x.len() / FEATURES
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Top-1 accuracy of `head` on features with true labels.
pub fn accuracy(head: &Head, features: &[f32], truth: &[usize]) -> f64 {
    let hits = features
        .par_chunks(FEATURES)
        .zip(truth.par_iter())
        .filter(|(f, &t)| tagger_core::classify::argmax(&head.logits(f)) == t)
        .count();
    hits as f64 / truth.len().max(1) as f64
}

/// The split's entries present in the cache: their ids and classes.
pub fn present(entries: &[Entry], cache: &ImageCache) -> (Vec<u64>, Vec<usize>) {
    entries
        .iter()
        .filter(|e| cache.get(e.0).is_some())
        .map(|e| (e.0, e.1))
        .unzip()
}

/// Network inputs of real photos (`tag`'s preprocessing); unreadable ones are left out, with
/// their photos.
pub fn real_inputs<'a>(real: &RealPhotos, photos: &[&'a Photo]) -> (Vec<&'a Photo>, Vec<Vec<u8>>) {
    let prepared = crate::eval::real::inputs(real, photos);
    photos
        .iter()
        .zip(prepared)
        .filter_map(|(p, i)| i.map(|i| (*p, i)))
        .unzip()
}

/// The backbone's parameter count and MACs at `resize`, for logs and cards.
pub fn describe(lite: &Lite, resize: (usize, usize)) -> String {
    format!(
        "EfficientNet-Lite0 at {}x{} (HxW): {:.2}M parameters, {:.0}M MACs",
        resize.0,
        resize.1,
        lite.params() as f64 / 1e6,
        lite.macs(resize.0, resize.1) as f64 / 1e6
    )
}

/// Validation figures of one epoch's head, on cached features (the exported model gives the same
/// logits: the export check compares them).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProbeEpoch {
    pub epoch: usize,
    pub loss: f64,
    pub catalogue_val: f64,
    pub mild_val: f64,
    pub hard_val: f64,
    pub real_val: crate::eval::real::RealScores,
}

/// What `training probe` saves beside the model (`<model>.probe.json`), read by the report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProbeSummary {
    pub name: String,
    pub onnx: String,
    pub onnx_sha256: String,
    pub backbone: String,
    pub resize: (usize, usize),
    pub macs: u64,
    pub params: usize,
    pub views: Vec<View>,
    pub empties: usize,
    pub negatives: usize,
    /// Real-train photos in the training rows (each repeat counted).
    pub real_train_rows: usize,
    pub rows: usize,
    pub fit: crate::fit::linear::LinearFit,
    pub epochs: Vec<ProbeEpoch>,
    /// Largest logit difference between the exported model (tract) and the head on features.
    pub export_check: f32,
    pub reproduce: String,
}

/// Answers of `head` for cached real-photo features (all readable).
pub fn real_answers(
    head: &Head,
    features: &[f32],
    labels: &[String],
) -> Vec<Option<crate::eval::real::Answer>> {
    features
        .chunks(FEATURES)
        .map(|f| {
            Some(crate::eval::real::Answer::from_logits(
                &head.logits(f),
                labels,
            ))
        })
        .collect()
}
