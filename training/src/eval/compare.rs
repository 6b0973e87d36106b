//! Float vs int8, side by side, on val and test, both run by tract exactly as `tag` runs them.

use crate::data::cache::ImageCache;
use crate::data::split::{Entry, Split};
use crate::eval::metrics::Metrics;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tagger_core::backend::BackendKind;
use tagger_core::classify::argmax;
use tagger_core::model::Model;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Recall per class, in label order.
    pub recall: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideBySide {
    pub images: usize,
    pub float: Scores,
    pub int8: Scores,
    /// Share of images whose top-1 label is the same in both.
    pub agreement: f64,
    /// Accuracy change in percentage points (int8 - float).
    pub accuracy_delta_pp: f64,
    /// The class whose recall dropped most, and by how many percentage points.
    pub largest_class_drop: (String, f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub val: SideBySide,
    pub test: SideBySide,
}

fn predictions(
    model: &Model,
    cache: &ImageCache,
    set: &[Entry],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let (mut pred, mut truth) = (vec![], vec![]);
    let k = model.classes();
    for chunk in set.chunks(64) {
        let present: Vec<(&[u8], usize)> = chunk
            .iter()
            .filter_map(|&(id, c)| cache.get(id).map(|img| (img, c)))
            .collect();
        if present.is_empty() {
            continue;
        }
        let imgs: Vec<&[u8]> = present.iter().map(|p| p.0).collect();
        let logits = model.logits(&model.batch_input(&imgs), imgs.len())?;
        pred.extend(logits.chunks(k).map(argmax));
        truth.extend(present.iter().map(|p| p.1));
    }
    Ok((pred, truth))
}

fn scores(m: &Metrics) -> Scores {
    Scores {
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
        recall: m.per_class.iter().map(|c| c.recall).collect(),
    }
}

fn side_by_side(
    float: &Model,
    int8: &Model,
    cache: &ImageCache,
    set: &[Entry],
) -> Result<SideBySide> {
    let labels = &float.info.labels;
    let (pf, truth) = predictions(float, cache, set)?;
    let (pq, _) = predictions(int8, cache, set)?;
    let (mf, mq) = (
        Metrics::compute(&pf, &truth, labels),
        Metrics::compute(&pq, &truth, labels),
    );
    let agreement =
        pf.iter().zip(&pq).filter(|(a, b)| a == b).count() as f64 / pf.len().max(1) as f64;
    let drop = mf
        .per_class
        .iter()
        .zip(&mq.per_class)
        .map(|(f, q)| (f.label.clone(), 100.0 * (f.recall - q.recall)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    Ok(SideBySide {
        images: truth.len(),
        accuracy_delta_pp: 100.0 * (mq.accuracy - mf.accuracy),
        float: scores(&mf),
        int8: scores(&mq),
        agreement,
        largest_class_drop: drop,
    })
}

/// Scores both models (ONNX bytes) on the val and test splits.
pub fn float_vs_int8(
    float: &[u8],
    int8: &[u8],
    split: &Split,
    cache: &ImageCache,
) -> Result<Comparison> {
    let f = Model::from_bytes(float, "float".into(), BackendKind::Tract, 1)?;
    let q = Model::from_bytes(int8, "int8".into(), BackendKind::Tract, 1)?;
    Ok(Comparison {
        val: side_by_side(&f, &q, cache, &split.val)?,
        test: side_by_side(&f, &q, cache, &split.test)?,
    })
}

impl Comparison {
    pub fn print(&self) {
        eprintln!(
            "{:<5} {:>10} {:>10} {:>9} {:>9} {:>10}  largest class drop",
            "split", "float acc", "int8 acc", "delta pp", "agree", "int8 F1"
        );
        for (name, s) in [("val", &self.val), ("test", &self.test)] {
            eprintln!(
                "{name:<5} {:>10.4} {:>10.4} {:>+9.2} {:>9.4} {:>10.4}  {} {:+.2} pp",
                s.float.accuracy,
                s.int8.accuracy,
                s.accuracy_delta_pp,
                s.agreement,
                s.int8.macro_f1,
                s.largest_class_drop.0,
                -s.largest_class_drop.1
            );
        }
    }
}
