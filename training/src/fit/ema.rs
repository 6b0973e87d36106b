//! A weight moving average (EMA) of the model being trained, evaluated and exported instead of
//! the last weights (one of the known aids of small CNNs).
//!
//! After every optimizer step each weight and batch-norm running statistic of the average moves
//! towards the trained model's: `avg = d * avg + (1 - d) * w`, with `d` ramped up over the first
//! steps (`min(decay, (1 + n) / (10 + n))`, as timm's `ModelEmaV2` and TensorFlow do) so the
//! random initial weights are forgotten quickly. burn 0.22 offers no EMA outside its `Learner`,
//! which this project does not use (train.rs), so it is written here on burn's module
//! visitor/mapper: ~60 lines.

use crate::model::Cnn;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use std::collections::VecDeque;

/// The averaged model and how many updates it has seen.
pub struct Ema {
    pub decay: f64,
    pub updates: u64,
    /// The average, on the inference (non-autodiff) device.
    pub model: Cnn,
}

impl Ema {
    /// Starts the average at `model` (already `valid()`: it must not share batch-norm state with
    /// the trained model, which a plain clone would).
    pub fn new(decay: f64, model: Cnn) -> Self {
        Self {
            decay,
            updates: 0,
            model,
        }
    }

    /// The decay used for the next update.
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Moves the average towards `trained` (the model after an optimizer step, `valid()`).
    pub fn update(&mut self, trained: &Cnn) {
        let d = self.current_decay();
        let mut current = Collect::default();
        trained.visit(&mut current);
        let mut mix = Mix {
            d,
            current: current.0,
        };
        let model = std::mem::replace(&mut self.model, trained.clone());
        self.model = model.map(&mut mix);
        self.updates += 1;
    }
}

/// Every float tensor of a model (weights and running statistics), flattened, in visiting
/// order. Matched by position, not by `ParamId`: a model loaded from a checkpoint gets new ids,
/// and both models have one architecture, so the order is the same.
#[derive(Default)]
struct Collect(VecDeque<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push_back(param.val().flatten::<1>(0, D - 1));
    }
}

struct Mix {
    d: f64,
    current: VecDeque<Tensor<1>>,
}

impl ModuleMapper for Mix {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(w) = self.current.pop_front() else {
            // Not in the trained model (cannot happen for one architecture): keep the average.
            return param;
        };
        let d = self.d;
        param.map(|avg| {
            let shape = avg.shape();
            avg.mul_scalar(d) + w.reshape(shape).mul_scalar(1.0 - d)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    fn floats(m: &Cnn) -> Vec<f32> {
        let mut c = Collect::default();
        m.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    /// The average lies between its start and the trained weights, by the ramped decay.
    #[test]
    fn moves_towards_the_trained_weights() {
        let device = Device::flex();
        let arch = Arch::from_layers(vec!["8".parse().unwrap(), "16/2".parse().unwrap()], 0.0, 3);
        device.seed(1);
        let a = arch.init(&device);
        device.seed(2);
        let b = arch.init(&device);
        let (fa, fb) = (floats(&a), floats(&b));
        let mut ema = Ema::new(0.99, a.valid());
        assert!((ema.current_decay() - 0.1).abs() < 1e-12);
        ema.update(&b.valid());
        let fe = floats(&ema.model);
        assert_eq!(fe.len(), fa.len());
        let mut moved = 0;
        for ((e, x), y) in fe.iter().zip(&fa).zip(&fb) {
            let want = 0.1 * x + 0.9 * y;
            assert!((e - want).abs() < 1e-5, "{e} vs {want}");
            moved += (x != y) as usize;
        }
        assert!(moved > 0, "the two initialisations should differ");
        // The trained model is untouched.
        assert_eq!(floats(&b), fb);
    }
}
