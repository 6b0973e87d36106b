//! Training batches as plain data, built off the training thread: one sample (a catalogue
//! photo, a station frame, another kind or an empty surface) rendered, augmented and
//! normalised, and its soft and head targets.

use super::run::*;
use crate::data::cache::ImageCache;
use crate::data::heads::HeadTargets;
use crate::data::split::Entry;
use crate::fit::distill::{self, TeacherTargets};
use crate::scene::cutout::{product_mask_with, CutStyle};
use crate::scene::{self, mix, Product, Scene};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use tagger_core::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// One training sample.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// A product photo of the split and its class.
    Product(u64, usize),
    /// A photo of another kind (negatives.json).
    Other(u64),
    /// An empty surface, numbered.
    Empty(u64),
}

/// A batch as plain data, built off the training thread.
pub struct Batch {
    pub input: Vec<f32>,
    /// Soft targets, `n x outputs`.
    pub targets: Vec<f32>,
    /// The hard class per sample, -1 for other kinds (not counted in training accuracy).
    pub hard: Vec<i64>,
    /// Extra heads: `n x heads` target indices, -1 where masked (empty frames, other kinds,
    /// missing values).
    pub aux: Vec<i32>,
    pub n: usize,
}

/// The network input of one training sample, or None for a corrupt image.
pub(crate) fn sample_input(
    recipe: &Recipe,
    cache: &ImageCache,
    s: Sample,
    epoch: usize,
) -> Option<Vec<u8>> {
    let seed = mix(recipe.seed
        ^ ((epoch as u64) << 32)
        ^ mix(match s {
            Sample::Product(id, _) | Sample::Other(id) => id,
            Sample::Empty(k) => !k,
        }));
    let render = |product: Option<Product>, scene: &Scene| {
        scene::network_frame(product, scene, mix(seed ^ 1), seed).to_chw()
    };
    match (s, &recipe.station, &recipe.augment) {
        (Sample::Empty(_), Some(st), _) => Some(render(None, &st.scene)),
        (Sample::Product(id, _) | Sample::Other(id), Some(st), _) => {
            let img = cache.get(id)?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed ^ 2));
            let style = match (st.cut_jitter, rng.random_range(0..20)) {
                (false, _) | (true, 0..14) => CutStyle::Standard,
                (true, 14..17) => CutStyle::Loose,
                (true, _) => CutStyle::Tight,
            };
            let mask = product_mask_with(img, style);
            // Recipes without room scenes draw nothing more: their frames stay as they were.
            let scene = if rng.random_bool(st.catalogue_share as f64) {
                Scene::catalogue()
            } else if st.room_share > 0.0 && rng.random_bool(st.room_share as f64) {
                let paired = matches!(s, Sample::Product(_, c) if st.pair_classes.contains(&c));
                Scene::room(if paired { 0.7 } else { 0.0 })
            } else {
                st.scene.clone()
            };
            Some(render(
                Some(Product {
                    chw: img,
                    mask: &mask,
                }),
                &scene,
            ))
        }
        (Sample::Product(id, _) | Sample::Other(id), None, Some(aug)) => {
            let img = cache.get(id)?;
            let mut out = vec![0u8; IMAGE_LEN];
            aug.apply(
                img,
                &mut out,
                (recipe.seed ^ ((epoch as u64) << 32)) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            Some(out)
        }
        (Sample::Product(id, _) | Sample::Other(id), None, None) => {
            cache.get(id).map(<[u8]>::to_vec)
        }
        (Sample::Empty(_), None, _) => None,
    }
}

/// One sample of a batch: input, soft targets, hard class, extra-head targets.
pub(crate) type BuiltSample = (Vec<f32>, Vec<f32>, i64, Vec<i32>);

/// Builds one batch on rayon's workers: augmentation and compositing never run on the thread
/// that trains. `labels`: the outputs (`none` last for station recipes); `teacher`: distillation
/// targets of the product photos (distill.rs).
#[allow(clippy::too_many_arguments)]
pub fn make_batch(
    recipe: &Recipe,
    labels: &[String],
    norm: &Normalization,
    cache: &ImageCache,
    samples: &[Sample],
    epoch: usize,
    teacher: Option<&TeacherTargets>,
    heads: &HeadTargets,
) -> Batch {
    let k = labels.len();
    let h = recipe.heads.len();
    let none = recipe.station.as_ref().map(|_| k - 1);
    let products = none.unwrap_or(k);
    let eps = recipe.label_smoothing as f32;
    let built: Vec<BuiltSample> = samples
        .par_iter()
        .filter_map(|&s| {
            let chw = sample_input(recipe, cache, s, epoch)?;
            let mut x = vec![0f32; IMAGE_LEN];
            normalize_into(&chw, norm, &mut x);
            let mut t = vec![0f32; k];
            let hard = match s {
                Sample::Product(_, c) => c as i64,
                Sample::Empty(_) => none? as i64,
                Sample::Other(_) => -1,
            };
            if hard >= 0 {
                t.iter_mut().for_each(|v| *v = eps / k as f32);
                t[hard as usize] += 1.0 - eps;
                if let (Sample::Product(id, _), Some(tt), Some(d)) = (s, teacher, &recipe.distill) {
                    if let Some(p) = tt.get(id) {
                        distill::blend(&mut t, p, d.weight);
                    }
                }
            } else {
                t[..products]
                    .iter_mut()
                    .for_each(|v| *v = 1.0 / products as f32);
            }
            let aux = match s {
                Sample::Product(id, _) => heads.get(id).map(<[i32]>::to_vec),
                _ => None,
            }
            .unwrap_or_else(|| vec![-1; h]);
            Some((x, t, hard, aux))
        })
        .collect();
    let n = built.len();
    let (mut input, mut targets, mut hard, mut aux) = (
        Vec::with_capacity(n * IMAGE_LEN),
        Vec::with_capacity(n * k),
        Vec::with_capacity(n),
        Vec::with_capacity(n * h),
    );
    for (x, t, c, a) in built {
        input.extend(x);
        targets.extend(t);
        hard.push(c);
        aux.extend(a);
    }
    Batch {
        input,
        targets,
        hard,
        aux,
        n,
    }
}

/// A batch of normalised (unaugmented) images and their targets, ready for burn: what
/// evaluation feeds.
pub fn batch_tensors(
    cache: &ImageCache,
    entries: &[Entry],
    norm: &Normalization,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>, usize) {
    let mut input = vec![0f32; entries.len() * IMAGE_LEN];
    let mut targets = Vec::with_capacity(entries.len());
    let mut n = 0;
    for &(id, class) in entries {
        let Some(img) = cache.get(id) else { continue };
        normalize_into(img, norm, &mut input[n * IMAGE_LEN..(n + 1) * IMAGE_LEN]);
        targets.push(class as i64);
        n += 1;
    }
    input.truncate(n * IMAGE_LEN);
    let x = Tensor::<4>::from_data(
        TensorData::new(input, [n, 3, HEIGHT as usize, WIDTH as usize]),
        device,
    );
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device);
    (x, y, n)
}
