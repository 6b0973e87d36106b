//! Scoring an exported model on station frames, through the runtime (`tagger_core::model`, tract):
//! each frame is encoded as a camera would send it, decoded and fitted by `tag`'s own
//! preprocessing, and classified by the ONNX file that ships. The figures are therefore those
//! `tag` gets, float or int8, not those of the training graph.
//!
//! Columns: catalogue (the photos as they are), mirrored catalogue, station `mild`, `hard` and
//! `tray` (top-1 accuracy over the split's classes), `empty` (share of product-less frames
//! reported as a product at the station threshold), and for products of other kinds the share
//! left below the threshold (or called `none`), next to the share of the split's own photos
//! still tagged right above it.

use crate::data::cache::ImageCache;
use crate::data::split::Entry;
use crate::scene::cutout::product_mask;
use crate::scene::{self, Level, Product};
use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tagger_core::classify;
use tagger_core::model::Model;

/// The station threshold of the device configs (`[verdict] threshold`).
pub const STATION_THRESHOLD: f32 = 0.6;

/// One model's figures on one split part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationScores {
    pub part: String,
    pub threshold: f32,
    pub images: usize,
    pub catalogue: f64,
    pub mirrored: f64,
    pub mild: f64,
    pub hard: f64,
    pub tray: f64,
    pub empty_frames: usize,
    /// Share of empty frames reported as a product (neither `none` nor below the threshold).
    pub empty_as_product: f64,
    pub other_kinds: usize,
    /// Share of other-kind photos not reported as one of the classes (below threshold or `none`).
    pub others_not_reported: Option<f64>,
    /// Share of the split's catalogue photos tagged right at or above the threshold.
    pub catalogue_right_above_threshold: f64,
}

/// The product a station would report for one frame's logits: the label at or above
/// [`STATION_THRESHOLD`] unless it is `none`; `None` when nothing is reported.
pub fn reported(logits: &[f32], labels: &[String]) -> Option<String> {
    let v = classify::verdict(logits, labels, 1, STATION_THRESHOLD);
    classify::is_product(&v.label).then_some(v.label)
}

/// Logits of network-sized CHW frames through the runtime, `classes` per frame (see
/// [`outputs`]).
pub fn logits<F: AsRef<[u8]>>(model: &Model, frames: &[F]) -> Result<Vec<f32>> {
    Ok(outputs(model, frames)?.swap_remove(0))
}

/// Every output of the model (class logits, then each extra head's) for network-sized CHW
/// frames through the runtime: per output, the values of all frames. 256 frames per call
/// (bounded input memory); non-finite outputs are an error.
pub fn outputs<F: AsRef<[u8]>>(model: &Model, frames: &[F]) -> Result<Vec<Vec<f32>>> {
    let mut out: Vec<Vec<f32>> = vec![vec![]; 1 + model.info.heads.len()];
    for chunk in frames.chunks(256) {
        let refs: Vec<&[u8]> = chunk.iter().map(AsRef::as_ref).collect();
        let o = model.outputs(&model.batch_input(&refs), refs.len())?;
        if o.iter().flatten().any(|v| !v.is_finite()) {
            bail!("{}: non-finite logits", model.source);
        }
        for (acc, part) in out.iter_mut().zip(o) {
            acc.extend(part);
        }
    }
    Ok(out)
}

/// Classifies network-sized CHW frames; returns (argmax, reported label or None) per frame.
fn classify(model: &Model, frames: &[Vec<u8>]) -> Result<Vec<(usize, Option<String>)>> {
    Ok(logits(model, frames)?
        .chunks(model.classes())
        .map(|l| (classify::argmax(l), reported(l, &model.info.labels)))
        .collect())
}

fn accuracy(pred: &[(usize, Option<String>)], truth: &[usize]) -> f64 {
    let hits = pred.iter().zip(truth).filter(|(p, &t)| p.0 == t).count();
    hits as f64 / truth.len().max(1) as f64
}

/// Renders one level's frames for `entries` (empty: `empties` frames) as network input bytes.
pub fn level_inputs(
    level: Level,
    part: &str,
    entries: &[Entry],
    empties: usize,
    cache: &ImageCache,
) -> Vec<Vec<u8>> {
    if !level.has_product() {
        return (0..empties as u64)
            .into_par_iter()
            .map(|i| scene::level_frame(level, part, i, None).to_chw())
            .collect();
    }
    entries
        .par_iter()
        .filter_map(|&(id, _)| cache.get(id).map(|img| (id, img)))
        .map(|(id, img)| product_frame(level, part, id, img))
        .collect()
}

/// One level's frame of the catalogue photo `img` (CHW u8, network size), cut out of its
/// background and composited; deterministic per level, part and id.
pub fn product_frame(level: Level, part: &str, id: u64, img: &[u8]) -> Vec<u8> {
    let mask = product_mask(img);
    let p = Product {
        chw: img,
        mask: &mask,
    };
    scene::level_frame(level, part, id, Some(p)).to_chw()
}

/// Scores `model` on `part` ("val" or "test"): `entries` of the split's classes (class index =
/// the model's output index), `others` the other kinds' ids, `empties` empty frames.
pub fn score(
    model: &Model,
    part: &str,
    entries: &[Entry],
    others: &[u64],
    empties: usize,
    cache: &ImageCache,
) -> Result<StationScores> {
    let present: Vec<Entry> = entries
        .iter()
        .copied()
        .filter(|e| cache.get(e.0).is_some())
        .collect();
    if present.is_empty() {
        bail!("no {part} images to score");
    }
    let truth: Vec<usize> = present.iter().map(|e| e.1).collect();
    // Five looks of every photo, the empty frames and the other kinds: minutes for a large model.
    let bar = crate::util::progress(
        (present.len() * 5 + empties + others.len()) as u64,
        &format!("scoring {part}"),
    );
    let run = |frames: &[Vec<u8>]| {
        let r = classify(model, frames);
        bar.inc(frames.len() as u64);
        r
    };
    let catalogue: Vec<Vec<u8>> = present
        .iter()
        .map(|e| cache.get(e.0).expect("present").to_vec())
        .collect();
    let cat = run(&catalogue)?;
    let right_above = cat
        .iter()
        .zip(&present)
        .filter(|(p, e)| p.1.as_deref() == Some(model.info.labels[e.1].as_str()))
        .count() as f64
        / present.len() as f64;
    let mirrored: Vec<Vec<u8>> = catalogue.iter().map(|c| scene::mirrored(c)).collect();
    let mirrored = accuracy(&run(&mirrored)?, &truth);
    let level_acc = |level: Level| -> Result<f64> {
        let frames = level_inputs(level, part, &present, 0, cache);
        Ok(accuracy(&run(&frames)?, &truth))
    };
    let (mild, hard, tray) = (
        level_acc(Level::Mild)?,
        level_acc(Level::Hard)?,
        level_acc(Level::Tray)?,
    );
    let empty = run(&level_inputs(Level::Empty, part, &[], empties, cache))?;
    let empty_as_product =
        empty.iter().filter(|p| p.1.is_some()).count() as f64 / empties.max(1) as f64;
    let other_imgs: Vec<Vec<u8>> = others
        .iter()
        .filter_map(|&id| cache.get(id).map(<[u8]>::to_vec))
        .collect();
    let others_not_reported = if other_imgs.is_empty() {
        None
    } else {
        let p = run(&other_imgs)?;
        Some(p.iter().filter(|p| p.1.is_none()).count() as f64 / p.len() as f64)
    };
    bar.finish_and_clear();
    Ok(StationScores {
        part: part.to_string(),
        threshold: STATION_THRESHOLD,
        images: present.len(),
        catalogue: accuracy(&cat, &truth),
        mirrored,
        mild,
        hard,
        tray,
        empty_frames: empties,
        empty_as_product,
        other_kinds: other_imgs.len(),
        others_not_reported,
        catalogue_right_above_threshold: right_above,
    })
}
