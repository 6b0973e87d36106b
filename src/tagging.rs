//! Tagging a list of inputs: parallel decode, batched inference, results in input order.
//! A failing input becomes an error result; it never stops the others.

use crate::classify::{self, verdict, Tag, Verdict};
use crate::inputs::Input;
use crate::model::Model;
use crate::preprocess;
use rayon::prelude::*;
use std::ops::ControlFlow;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TagOptions {
    pub top_k: usize,
    pub threshold: f32,
    /// Confidence an extra head's label needs to be shown (multi-head models).
    pub head_threshold: f32,
    /// Images per inference call when tagging many inputs.
    pub batch_size: usize,
}

impl Default for TagOptions {
    fn default() -> Self {
        Self {
            top_k: 3,
            threshold: 0.0,
            head_threshold: classify::HEAD_THRESHOLD,
            batch_size: 32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tagged {
    pub verdict: Verdict,
    /// Extra heads' tags (multi-head models, products only), in the model's head order.
    pub tags: Vec<Tag>,
    /// This image's decode + preprocessing time plus its share of the batch's inference time.
    pub latency_ms: f64,
}

#[derive(Debug, Clone)]
pub struct TagResult {
    pub path: String,
    pub outcome: Result<Tagged, String>,
}

/// Tags `inputs` chunk by chunk, calling `emit` for each result in input order; `emit` ends
/// the work early with `Break` (the reader of the output has gone).
pub fn tag_inputs(
    model: &Model,
    inputs: &[Input],
    opts: &TagOptions,
    mut emit: impl FnMut(TagResult) -> ControlFlow<()>,
) {
    for chunk in inputs.chunks(opts.batch_size.max(1)) {
        let prepared: Vec<(Result<Vec<u8>, String>, f64)> = chunk
            .par_iter()
            .map(|input| {
                let t = Instant::now();
                let r = input.read().and_then(|bytes| {
                    preprocess::bytes_to_chw(&bytes, &input.name()).map_err(|e| e.to_string())
                });
                (r, t.elapsed().as_secs_f64() * 1e3)
            })
            .collect();
        let ok: Vec<&[u8]> = prepared
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok().map(Vec::as_slice))
            .collect();
        let mut outputs = Ok(vec![]);
        let mut share_ms = 0.0;
        if !ok.is_empty() {
            let t = Instant::now();
            outputs = model.outputs(&model.batch_input(&ok), ok.len());
            share_ms = t.elapsed().as_secs_f64() * 1e3 / ok.len() as f64;
        }
        let classes = model.classes();
        let heads = &model.info.heads;
        let mut next = 0;
        for (input, (r, prep_ms)) in chunk.iter().zip(prepared) {
            let outcome = match (r, &outputs) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(format!("inference failed: {e:#}")),
                (Ok(_), Ok(o)) => {
                    let row = &o[0][next * classes..(next + 1) * classes];
                    let v = verdict(row, &model.info.labels, opts.top_k, opts.threshold);
                    let rows: Vec<&[f32]> = heads
                        .iter()
                        .zip(&o[1..])
                        .map(|(h, out)| {
                            let k = h.labels.len();
                            &out[next * k..(next + 1) * k]
                        })
                        .collect();
                    next += 1;
                    Ok(Tagged {
                        tags: classify::tags(&v, &rows, heads, opts.top_k, opts.head_threshold),
                        verdict: v,
                        latency_ms: prep_ms + share_ms,
                    })
                }
            };
            if emit(TagResult {
                path: input.name(),
                outcome,
            })
            .is_break()
            {
                return;
            }
        }
    }
}
