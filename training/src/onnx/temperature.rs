//! Temperature scaling (Guo et al., 2017) of an exported model: one number T, fitted on the
//! validation split by minimising the negative log-likelihood, divides the logits. Accuracy is
//! unchanged (the argmax is the same); confidences become honest. It matters at a station,
//! where a fixed threshold (0.6) decides what is reported: label smoothing, distillation and
//! the flat targets of other kinds leave the station model under-confident, so correct tags
//! fall below the threshold more often than they should.
//!
//! T is fitted on what the station sees: val catalogue photos, the `mild`, `hard` and `tray`
//! station frames and empty frames (target `none`), through `tag`'s preprocessing and tract;
//! optionally also val photos of other kinds of product (dresses, hats, ...) in the same looks,
//! whose target is the same probability for every product class (as in training). Without them
//! the fit only sees products it should name, and sharpening (T < 1) pushes the other kinds above
//! the station threshold too.
//! It is folded into the head (weights and bias divided by T), so the runtime needs nothing new;
//! the ONNX metadata records it as `temperature`.

use crate::data::cache::ImageCache;
use crate::data::split::Entry;
use crate::eval::runner::level_inputs;
use crate::onnx;
use crate::onnx::export::float_model;
use crate::scene::Level;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use tagger_core::tract_onnx::pb;
use tagger_core::tract_onnx::prelude::Framework;

/// The metadata key that records the folded temperature.
pub const KEY_TEMPERATURE: &str = "temperature";

/// What `training calibrate` writes into the model card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemperatureScaling {
    /// In steps of 0.01, as fitted.
    pub temperature: f64,
    pub fitted_on: String,
    pub frames: usize,
    pub nll_before: f64,
    pub nll_after: f64,
    /// Expected calibration error (15 bins of top-1 confidence), before and after.
    pub ece_before: f64,
    pub ece_after: f64,
}

fn softmax_t(row: &[f32], t: f32) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let e: Vec<f64> = row
        .iter()
        .map(|&v| ((v as f64 - max) / t as f64).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// What a fitting frame should give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// This output.
    Class(usize),
    /// The same probability for each of the first `n` outputs (the products): another kind.
    Flat(usize),
}

/// Mean negative log-likelihood (cross-entropy) of `truth` under softmax(logits / t).
pub fn nll(logits: &[f32], classes: usize, truth: &[Target], t: f32) -> f64 {
    let sum: f64 = logits
        .chunks(classes)
        .zip(truth)
        .map(|(row, y)| {
            let p = softmax_t(row, t);
            match *y {
                Target::Class(c) => -p[c].max(1e-12).ln(),
                Target::Flat(n) => {
                    -p[..n].iter().map(|v| v.max(1e-12).ln()).sum::<f64>() / n.max(1) as f64
                }
            }
        })
        .sum();
    sum / truth.len().max(1) as f64
}

/// Expected calibration error over 15 equal-width bins of top-1 confidence, over the frames
/// with a class (another kind has no right answer).
pub fn ece(logits: &[f32], classes: usize, truth: &[Target], t: f32) -> f64 {
    const BINS: usize = 15;
    let mut count = [0usize; BINS];
    let (mut conf, mut hits) = ([0f64; BINS], [0f64; BINS]);
    let rows = logits.chunks(classes).zip(truth);
    let labelled: Vec<(&[f32], usize)> = rows
        .filter_map(|(row, y)| match *y {
            Target::Class(c) => Some((row, c)),
            Target::Flat(_) => None,
        })
        .collect();
    for &(row, y) in &labelled {
        let p = softmax_t(row, t);
        let (arg, top) = p
            .iter()
            .enumerate()
            .fold((0, 0.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        let bin = ((top * BINS as f64) as usize).min(BINS - 1);
        count[bin] += 1;
        conf[bin] += top;
        hits[bin] += (arg == y) as usize as f64;
    }
    let n = labelled.len().max(1) as f64;
    (0..BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| (hits[b] - conf[b]).abs() / n)
        .sum()
}

/// The temperature in [0.25, 2.0] (steps of 0.01) with the lowest NLL.
pub fn fit(logits: &[f32], classes: usize, truth: &[Target]) -> f32 {
    (25..=200)
        .map(|i| i as f32 / 100.0)
        .map(|t| (t, nll(logits, classes, truth, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(1.0, |(t, _)| t)
}

/// Val frames the temperature is fitted on, with their targets: catalogue, `mild`, `hard`,
/// `tray` (the product's class), the same looks of `others` (other kinds: flat over the first
/// `products` outputs) and `empties` empty frames (`none`, output `products`).
pub fn fitting_frames(
    entries: &[Entry],
    others: &[u64],
    empties: usize,
    products: usize,
    cache: &ImageCache,
) -> (Vec<Vec<u8>>, Vec<Target>) {
    let present = |entries: Vec<Entry>| -> Vec<Entry> {
        entries
            .into_iter()
            .filter(|e| cache.get(e.0).is_some())
            .collect()
    };
    let products_in = present(entries.to_vec());
    let others_in = present(others.iter().map(|&id| (id, 0)).collect());
    let (mut frames, mut truth) = (vec![], vec![]);
    for (set, target) in [
        (&products_in, None),
        (&others_in, Some(Target::Flat(products))),
    ] {
        let targets = || set.iter().map(|e| target.unwrap_or(Target::Class(e.1)));
        frames.extend(
            set.iter()
                .map(|e| cache.get(e.0).expect("present").to_vec()),
        );
        truth.extend(targets());
        for level in [Level::Mild, Level::Hard, Level::Tray] {
            frames.extend(level_inputs(level, "val", set, 0, cache));
            truth.extend(targets());
        }
    }
    frames.extend(level_inputs(Level::Empty, "val", &[], empties, cache));
    truth.extend(std::iter::repeat_n(Target::Class(products), empties));
    (frames, truth)
}

/// Logits of `frames` through the runtime (the station scorer's).
pub use crate::eval::runner::logits;

/// The float ONNX `bytes` with its head divided by `t`, recorded in the metadata. Refuses a model
/// that is calibrated already or quantized (calibrate the float model, then quantize it).
pub fn apply(bytes: &[u8], t: f32) -> Result<Vec<u8>> {
    if !(t.is_finite() && t > 0.0) {
        bail!("temperature must be a positive number, got {t}");
    }
    let proto = tagger_core::tract_onnx::onnx()
        .proto_model_for_read(&mut Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("not an ONNX model: {e:#}"))?;
    if proto
        .metadata_props
        .iter()
        .any(|p| p.key == KEY_TEMPERATURE)
    {
        bail!("the model is calibrated already; re-export it to calibrate again");
    }
    let info = tagger_core::model::read_info(bytes)?;
    let mut m = match crate::onnx::quantize::folded_from_onnx(&proto) {
        Ok(mut net) => {
            net.head_w.iter_mut().for_each(|w| *w /= t);
            net.head_b.iter_mut().for_each(|b| *b /= t);
            float_model(&net, &info)
        }
        // Not one of the CNNs: a graph whose class output comes from a Gemm (the fine-tuned
        // backbone) gets that Gemm's weights and bias divided in place.
        Err(cnn) => scale_output_gemm(proto, t)
            .with_context(|| format!("reading the float model: {cnn:#}"))?,
    };
    m.metadata_props.push(pb::StringStringEntryProto {
        key: KEY_TEMPERATURE.into(),
        value: format!("{t}"),
    });
    Ok(onnx::encode(&m))
}

/// `model` with the Gemm that computes its first output (the class logits) divided by `t`.
fn scale_output_gemm(mut model: pb::ModelProto, t: f32) -> Result<pb::ModelProto> {
    let graph = model.graph.as_mut().context("the model has no graph")?;
    let output = &graph
        .output
        .first()
        .context("the model has no output")?
        .name;
    let gemm = graph
        .node
        .iter()
        .find(|n| n.output.first() == Some(output))
        .filter(|n| n.op_type == "Gemm" && n.input.len() == 3)
        .with_context(|| format!("the output {output} does not come from a Gemm with a bias"))?;
    let params: Vec<String> = gemm.input.iter().skip(1).cloned().collect();
    for name in params {
        let init = graph
            .initializer
            .iter_mut()
            .find(|i| i.name == name)
            .with_context(|| format!("the head's {name} is not an initializer"))?;
        let scaled: Vec<f32> = onnx::f32_initializer(init)?.iter().map(|v| v / t).collect();
        *init = onnx::tensor_f32(&name, &init.dims.clone(), &scaled);
    }
    Ok(model)
}

/// The temperature folded into a model, if any.
pub fn folded(bytes: &[u8]) -> Option<f32> {
    let proto = tagger_core::tract_onnx::onnx()
        .proto_model_for_read(&mut Cursor::new(bytes))
        .ok()?;
    proto
        .metadata_props
        .iter()
        .find(|p| p.key == KEY_TEMPERATURE)
        .and_then(|p| p.value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gemm_head_is_divided_in_place_and_the_rest_left_alone() {
        let graph = pb::GraphProto {
            node: vec![
                onnx::node("Relu", "r", &["input"], &["features"], vec![]),
                onnx::node("Gemm", "head", &["features", "w", "b"], &["logits"], vec![]),
            ],
            initializer: vec![
                onnx::tensor_f32("w", &[2, 2], &[1.0, -2.0, 4.0, 8.0]),
                onnx::tensor_f32("b", &[2], &[0.5, -1.0]),
                onnx::tensor_f32("other", &[1], &[3.0]),
            ],
            output: vec![onnx::batched_value("logits", &[2])],
            ..Default::default()
        };
        let model = pb::ModelProto {
            graph: Some(graph),
            ..Default::default()
        };
        let scaled = scale_output_gemm(model.clone(), 0.5).unwrap();
        let get = |m: &pb::ModelProto, name: &str| {
            let g = m.graph.as_ref().unwrap();
            onnx::f32_initializer(g.initializer.iter().find(|i| i.name == name).unwrap()).unwrap()
        };
        assert_eq!(get(&scaled, "w"), [2.0, -4.0, 8.0, 16.0]);
        assert_eq!(get(&scaled, "b"), [1.0, -2.0]);
        assert_eq!(get(&scaled, "other"), [3.0]);
        // An output that no Gemm computes is refused, not guessed at.
        let mut relu_out = model;
        relu_out.graph.as_mut().unwrap().output[0].name = "features".into();
        assert!(scale_output_gemm(relu_out, 0.5).is_err());
    }

    #[test]
    fn fitting_sharpens_an_underconfident_model_and_softens_an_overconfident_one() {
        // Two classes; every example right with logit margin 1: p = 0.73 at T = 1, while the
        // labels say they are always right -> a lower T fits better.
        let logits: Vec<f32> = (0..100).flat_map(|_| [1.0, 0.0]).collect();
        let truth = vec![Target::Class(0); 100];
        let t = fit(&logits, 2, &truth);
        assert!(t < 0.5, "{t}");
        assert!(nll(&logits, 2, &truth, t) < nll(&logits, 2, &truth, 1.0));
        // Margin 8 but right only 80% of the time: a higher T fits better.
        let logits: Vec<f32> = (0..100).flat_map(|_| [8.0, 0.0]).collect();
        let truth: Vec<Target> = (0..100)
            .map(|i| Target::Class((i % 5 == 0) as usize))
            .collect();
        assert!(fit(&logits, 2, &truth) > 1.5);
        assert!(ece(&logits, 2, &truth, fit(&logits, 2, &truth)) < ece(&logits, 2, &truth, 1.0));
    }

    #[test]
    fn other_kinds_with_flat_targets_hold_the_temperature_up() {
        // Products right with margin 1 (sharpening fits them), and other kinds the model is as
        // sure of: their flat targets argue against sharpening, so T lands higher.
        let products: Vec<f32> = (0..100).flat_map(|_| [1.0, 0.0]).collect();
        let truth = vec![Target::Class(0); 100];
        let alone = fit(&products, 2, &truth);
        let mut logits = products.clone();
        logits.extend((0..50).flat_map(|_| [1.0, 0.0]));
        let mut with_others = truth.clone();
        with_others.extend([Target::Flat(2); 50]);
        let t = fit(&logits, 2, &with_others);
        assert!(t > alone, "{t} vs {alone}");
        // A flat target is best met by equal logits, whatever T.
        let flat = nll(&[0.0, 0.0], 2, &[Target::Flat(2)], 0.5);
        assert!((flat - 2f64.ln()).abs() < 1e-9);
        assert!(nll(&[1.0, 0.0], 2, &[Target::Flat(2)], 0.5) > flat);
        // They do not count towards the calibration error, which has no right answer for them.
        assert_eq!(
            ece(&logits, 2, &with_others, t),
            ece(&products, 2, &truth, t)
        );
    }
}
