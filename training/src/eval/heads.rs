//! Scoring a multi-head model's extra heads through the runtime (tract, the ONNX file that
//! ships): accuracy and macro-F1 per head on catalogue photos and on station frames, over the
//! photos whose styles.csv value the head knows (masked values are left out, as in training).

use crate::data::cache::ImageCache;
use crate::data::heads::{Attributes, Head};
use crate::data::split::Entry;
use crate::eval::metrics::Metrics;
use crate::scene::Level;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tagger_core::model::Model;

/// One head on one kind of frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadScore {
    pub head: String,
    /// `catalogue`, `mild` or `hard` (station frames of the same photos).
    pub frames: String,
    /// Photos with a known value for this head.
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// Metrics of each extra head of `model` on `frames` (one per entry of `present`, same order).
pub fn head_metrics(
    model: &Model,
    attrs: &Attributes,
    present: &[Entry],
    frames: &[Vec<u8>],
) -> Result<Vec<Metrics>> {
    if model.info.heads.is_empty() {
        bail!(
            "{} has no extra heads (train with --heads articleType,colour,gender,usage)",
            model.source
        );
    }
    let out = crate::eval::runner::outputs(model, frames)?;
    Ok(model
        .info
        .heads
        .iter()
        .zip(&out[1..])
        .map(|(info, values)| {
            let head = Head {
                name: info.name.clone(),
                labels: info.labels.clone(),
                weight: 0.0,
            };
            let k = head.labels.len();
            let (mut pred, mut truth) = (vec![], vec![]);
            for (i, &(id, _)) in present.iter().enumerate() {
                if let Some(t) = attrs.target(&head, id) {
                    pred.push(tagger_core::classify::argmax(&values[i * k..(i + 1) * k]));
                    truth.push(t);
                }
            }
            Metrics::compute(&pred, &truth, &head.labels)
        })
        .collect())
}

/// Scores of every head on the catalogue photos and the `mild` and `hard` station frames of
/// `entries`; also the catalogue metrics per head (for confusion matrices).
pub fn score(
    model: &Model,
    attrs: &Attributes,
    part: &str,
    entries: &[Entry],
    cache: &ImageCache,
) -> Result<(Vec<HeadScore>, Vec<Metrics>)> {
    let present: Vec<Entry> = entries
        .iter()
        .copied()
        .filter(|e| cache.get(e.0).is_some())
        .collect();
    let catalogue: Vec<Vec<u8>> = present
        .iter()
        .map(|e| cache.get(e.0).expect("present").to_vec())
        .collect();
    let mut scores = vec![];
    let mut catalogue_metrics = vec![];
    for (frames_name, frames) in [
        ("catalogue", catalogue),
        (
            "mild",
            crate::eval::runner::level_inputs(Level::Mild, part, &present, 0, cache),
        ),
        (
            "hard",
            crate::eval::runner::level_inputs(Level::Hard, part, &present, 0, cache),
        ),
    ] {
        let metrics = head_metrics(model, attrs, &present, &frames)?;
        for (info, m) in model.info.heads.iter().zip(&metrics) {
            scores.push(HeadScore {
                head: info.name.clone(),
                frames: frames_name.to_string(),
                n: m.n,
                accuracy: m.accuracy,
                macro_f1: m.macro_f1,
            });
        }
        if frames_name == "catalogue" {
            catalogue_metrics = metrics;
        }
    }
    Ok((scores, catalogue_metrics))
}
