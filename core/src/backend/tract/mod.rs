//! tract backend: the default, pure Rust, no system libraries; reads ONNX and NNEF files.
//!
//! The graph is decluttered once with a symbolic batch dimension; a fully optimised plan is
//! then built per batch size actually used (batch 1 for single images and frames, the folder
//! batch size, the last partial batch) because tract optimises best with concrete shapes.

mod depthwise_kernel;
mod depthwise_op;

use super::Backend;
use crate::preprocess::{CHANNELS, HEIGHT, WIDTH};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tract_nnef::prelude::*;

pub type Plan = Arc<TypedRunnableModel>;

pub struct TractBackend {
    model: TypedModel,
    /// Symbols of the input's batch dimension (empty when the model has a fixed batch).
    batch_symbols: Vec<Symbol>,
    fixed_batch: Option<usize>,
    plans: Mutex<HashMap<usize, Plan>>,
}

impl TractBackend {
    /// A model file's bytes (ONNX or NNEF).
    pub fn new(bytes: &[u8], threads: usize) -> Result<Self> {
        Self::from_model(crate::format::typed_model(bytes)?, threads)
    }

    /// A graph already loaded and decluttered ([`crate::format::typed_model`]).
    pub fn from_model(model: TypedModel, threads: usize) -> Result<Self> {
        set_threads(threads);
        if model.inputs.len() != 1 || model.outputs.is_empty() {
            bail!(
                "model has {} inputs and {} outputs; expected one image input and a logits output \
                 (then one per extra head)",
                model.inputs.len(),
                model.outputs.len()
            );
        }
        let fact = model.input_fact(0)?.clone();
        let shape = fact.shape.to_tvec();
        let expected = [CHANNELS as i64, HEIGHT as i64, WIDTH as i64];
        let matches = shape.len() == 4
            && shape[1..]
                .iter()
                .zip(expected)
                .all(|(d, e)| d.to_i64().ok() == Some(e));
        if !matches || fact.datum_type != f32::datum_type() {
            bail!(
                "model input is {:?} {:?}; this tagger feeds f32 [N, 3, {HEIGHT}, {WIDTH}] \
                 (export the model with `training export`)",
                fact.datum_type,
                shape
            );
        }
        let batch_symbols: Vec<Symbol> = shape[0].symbols().into_iter().collect();
        let fixed_batch = shape[0].to_i64().ok().map(|b| b as usize);
        Ok(Self {
            model,
            batch_symbols,
            fixed_batch,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The optimised plan for batch `n`, built on first use and kept: what [`Backend::run_all`]
    /// runs (`examples/profile` times its nodes).
    pub fn plan(&self, n: usize) -> Result<Plan> {
        if let Some(p) = self.plans.lock().expect("plan cache").get(&n) {
            return Ok(p.clone());
        }
        if let Some(b) = self.fixed_batch {
            if b != n {
                bail!("model has a fixed batch size of {b}; cannot run {n} images at once");
            }
        }
        let subs: HashMap<Symbol, TDim> = self
            .batch_symbols
            .iter()
            .map(|s| (s.clone(), TDim::Val(n as i64)))
            .collect();
        let mut concrete = self
            .model
            .set_symbols(&subs)
            .map_err(|e| anyhow!("tract could not fix the batch size {n}: {e:#}"))?;
        // A graph that expands to a huge tensor is refused before anything is allocated.
        for node in concrete.nodes() {
            for o in &node.outputs {
                let bytes = o
                    .fact
                    .shape
                    .as_concrete()
                    .map_or(0u128, |d| d.iter().map(|&x| x as u128).product::<u128>())
                    * o.fact.datum_type.size_of() as u128;
                if bytes > crate::limits::MAX_TENSOR_BYTES as u128 {
                    bail!(
                        "model node `{}` makes a tensor of {} MiB at batch {n} (limit {} MiB): \
                         not a model this tagger can run",
                        node.name,
                        bytes / (1024 * 1024),
                        crate::limits::MAX_TENSOR_BYTES / (1024 * 1024)
                    );
                }
            }
        }
        depthwise_op::rewrite(&mut concrete)
            .map_err(|e| anyhow!("could not set up the depthwise kernel: {e:#}"))?;
        let plan = concrete
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow!("tract could not optimise the model for batch {n}: {e:#}"))?;
        self.plans
            .lock()
            .expect("plan cache")
            .insert(n, plan.clone());
        Ok(plan)
    }
}

/// Sets tract's matrix-multiply executor: 1 = single thread, more = a rayon pool of that size.
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads > 1 {
        set_default_executor(Executor::multithread(threads));
    } else {
        set_default_executor(Executor::SingleThread);
    }
}

impl Backend for TractBackend {
    /// One image at a time: tract runs this model faster per image at batch 1 than at batch 32
    /// (measured: 0.92 vs 1.25 ms per image, docs/BENCHMARKS.md `tract/baseline/f32/t1`).
    fn max_batch(&self) -> usize {
        1
    }

    fn name(&self) -> &'static str {
        "tract"
    }

    fn kernels(&self) -> Option<String> {
        if depthwise_op::kept_tracts() {
            return Some(format!("depthwise: tract's ({}=tract)", depthwise_op::ENV));
        }
        let plans = self.plans.lock().expect("plan cache");
        let ours = plans.values().map(|p| depthwise_op::count(p.model())).max();
        match ours.unwrap_or(0) {
            0 => None,
            n => Some(format!(
                "depthwise: ours, {} ({n} layers)",
                depthwise_kernel::instructions()
            )),
        }
    }

    fn run_all(&self, input: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let plan = self.plan(n)?;
        let tensor = Tensor::from_shape(&[n, CHANNELS, HEIGHT as usize, WIDTH as usize], input)
            .context("input batch has the wrong length")?;
        // A panic inside tract (a model it cannot really run) becomes this input's error.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            plan.run(tvec!(tensor.into_tvalue()))
        }))
        .map_err(|_| anyhow!("tract crashed running this model; it is not usable"))?
        .map_err(|e| anyhow!("tract inference failed: {e:#}"))?;
        out.iter()
            .map(|o| {
                let view = o
                    .to_plain_array_view::<f32>()
                    .map_err(|e| anyhow!("model output is not f32 logits: {e:#}"))?;
                Ok(view.iter().copied().collect())
            })
            .collect()
    }
}
