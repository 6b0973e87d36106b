//! Fine-tuning EfficientNet-Lite0: burn's network (backbone/trainable.rs) gives the logits of the
//! ONNX graph that is exported from it, before and after training, at 80x60 and enlarged; and a
//! fixture-sized `fit::lite` run trains, checkpoints, refuses to overwrite and resumes.
//! Needs the pretrained weights (training/scripts/pretrained.sh); CI sets TAG_REQUIRE_PRETRAINED=1
//! so a missing file fails there instead of skipping.

use burn::prelude::*;
use burn::tensor::TensorData;
use tagger_core::backend::tract::TractBackend;
use tagger_core::backend::Backend;
use tagger_core::preprocess::{self, Normalization, IMAGE_LEN};
use training::backbone::efficientnet::Lite;
use training::backbone::graph;
use training::backbone::trainable::LiteNet;
use training::backbone::weights;
use training::data::cache::ImageCache;
use training::fit::lite::{fit, LiteConfig, LiteData, RealRows, Validation};
use training::fit::{Recipe, RunPaths, Sample, StationTraining};

mod common;
mod fixture;
use common::root;

fn pretrained() -> Option<Lite> {
    let path = common::pretrained_path()?;
    Some(Lite::from_state_dict(&weights::StateDict::load(&path).unwrap()).unwrap())
}

/// Normalised inputs of the ten fixture phone photos.
fn photos() -> (Vec<f32>, usize) {
    let dir = root().join("tests/fixtures/real/images");
    let mut x = vec![];
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        let chw = preprocess::file_to_chw(f).unwrap();
        x.extend(preprocess::normalize(&chw, &Normalization::default()));
    }
    (x, files.len())
}

fn exported_logits(
    net: &LiteNet,
    lite: &Lite,
    resize: Option<(usize, usize)>,
    x: &[f32],
) -> Vec<f32> {
    let (w, b) = net.head();
    let labels: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let bytes = graph::classifier_bytes(&net.to_lite(lite), resize, (&w, &b), "lite", &labels, "");
    let backend = TractBackend::new(&bytes, 1).unwrap();
    backend.run(x, x.len() / IMAGE_LEN).unwrap()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-3,
        "{what}: burn and the exported graph differ by {worst}"
    );
}

#[test]
fn burn_network_and_exported_graph_agree_before_and_after_a_step() {
    let Some(lite) = pretrained() else { return };
    let (x, n) = photos();
    let device = Device::flex();
    for resize in [None, Some((96, 72))] {
        let net = LiteNet::new(&lite, (80, 60), resize, 5, None, 0.0, &device);
        let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, 80, 60]), &device);
        let got: Vec<f32> = net.forward(input).into_data().try_to_vec().unwrap();
        assert_close(
            &got,
            &exported_logits(&net, &lite, resize, &x),
            "pretrained",
        );
    }
    // One optimiser step moves the trainable weights, not the frozen ones; the export follows.
    use burn::optim::{AdamWConfig, GradientsParams};
    let ad = device.clone().autodiff();
    let net = LiteNet::new(&lite, (80, 60), None, 5, None, 0.0, &ad).freeze(3);
    let mut optim = AdamWConfig::new().init();
    let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, 80, 60]), &ad);
    let loss = net.forward(input).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let net = optim.step(1e-2, net, grads);
    let valid = net.valid();
    let after = valid.to_lite(&lite);
    assert_eq!(after.stem.w, lite.stem.w, "the stem is frozen");
    assert_eq!(
        after.blocks[2].project.w, lite.blocks[2].project.w,
        "block 2 is frozen"
    );
    assert_ne!(
        after.blocks[3].project.w, lite.blocks[3].project.w,
        "block 3 trains"
    );
    assert_ne!(after.head.w, lite.head.w, "the last convolution trains");
    let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, 80, 60]), &device);
    let got: Vec<f32> = valid.forward(input).into_data().try_to_vec().unwrap();
    assert_close(
        &got,
        &exported_logits(&valid, &lite, None, &x),
        "after a step",
    );
}

#[test]
fn fixture_run_trains_checkpoints_and_resumes() {
    let Some(lite) = pretrained() else { return };
    let fixture = fixture::fixture();
    let s = fixture::split();
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<u64> = s.train.iter().chain(&s.val).map(|e| e.0).collect();
    let cache = ImageCache::open(&fixture, &tmp.path().join("cache"), &ids).unwrap();
    let mut labels = s.labels.clone();
    labels.push("none".into());
    let mut recipe = Recipe::plain(8, 1e-3, 1e-2, 1);
    recipe.station = Some(StationTraining::new(None));
    let cfg = LiteConfig {
        name: "fixture".into(),
        resize: None,
        freeze_blocks: 3,
        epochs: 2,
        epoch_size: 16,
        dropout: 0.2,
        recipe,
        real_train_repeat: 1,
        teacher: None,
        normalization: Normalization::default(),
        labels,
    };
    // Two fixture photos stand in for real-train photos: one a product, one another kind.
    let real = RealRows {
        inputs: s.train[..2]
            .iter()
            .map(|e| cache.get(e.0).unwrap().to_vec())
            .collect(),
        targets: vec![Some(s.train[0].1), None],
    };
    let data = LiteData {
        cache: &cache,
        samples: s
            .train
            .iter()
            .map(|&(id, c)| Sample::Product(id, c))
            .chain([Sample::Empty(0), Sample::Empty(1)])
            .collect(),
        real,
        teacher: None,
        head: None,
    };
    let paths = RunPaths::new(&tmp.path().join("run"));
    let scores = |_: &LiteNet| {
        Ok(Validation {
            catalogue: 0.5,
            mild: 0.5,
            hard: 0.5,
            real: training::eval::real::score("val", &[], &[], &cfg.labels),
            photos: None,
        })
    };
    let (best, state) = fit(&cfg, &lite, &paths, &data, false, scores).unwrap();
    assert_eq!(state.epochs_done, 2);
    assert_eq!(state.history.len(), 2);
    assert!(state
        .history
        .iter()
        .all(|h| h.train_loss.is_finite() && h.train_loss > 0.0));
    for f in [
        paths.config(),
        paths.state(),
        paths.last(),
        paths.best(),
        paths.optimizer(),
    ] {
        assert!(f.is_file(), "{} written", f.display());
    }
    let err = fit(&cfg, &lite, &paths, &data, false, scores).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let mut other = cfg.clone();
    other.recipe.lr = 1.0;
    let err = fit(&other, &lite, &paths, &data, true, scores).unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
    // Resuming a finished run trains nothing and gives the same kept weights.
    let (again, state2) = fit(&cfg, &lite, &paths, &data, true, scores).unwrap();
    assert_eq!(state2.history.len(), 2);
    assert_eq!(again.head(), best.head());
}

#[test]
fn int8_qdq_export_of_the_backbone_agrees_with_float() {
    use training::onnx::qdq_graph;
    use training::onnx::quantize::Calibration;
    let Some(lite) = pretrained() else { return };
    let (x, n) = photos();
    let info = tagger_core::metadata::ModelInfo {
        labels: (0..1280).map(|i| format!("f{i}")).collect(),
        label_column: String::new(),
        name: "features".into(),
        version: "1".into(),
        normalization: Normalization::default(),
        quantization: None,
        heads: vec![],
    };
    for resize in [None, Some((96, 72))] {
        // The pooled features: what every head reads.
        let g = graph::graph(&lite, (80, 60), resize, &graph::Output::Features);
        let float = training::onnx::encode(&training::onnx::model(g, &info));
        let ranges = qdq_graph::calibrate(&float, &x, n, Calibration::Percentile).unwrap();
        let (q, convs) = qdq_graph::qdq_bytes(&float, &ranges, "{}").unwrap();
        assert_eq!(convs, lite.convs().count());
        let want = TractBackend::new(&float, 1).unwrap().run(&x, n).unwrap();
        let got = TractBackend::new(&q, 1).unwrap().run(&x, n).unwrap();
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        let cosines: Vec<f32> = want
            .chunks(1280)
            .zip(got.chunks(1280))
            .map(|(f, i)| f.iter().zip(i).map(|(a, b)| a * b).sum::<f32>() / (norm(f) * norm(i)))
            .collect();
        let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
        eprintln!("resize {resize:?}: feature cosines int8 vs float {cosines:?}");
        // Ten photos calibrate and are scored: a broken scale or zero point gives far less.
        assert!(
            mean > 0.98 && cosines.iter().all(|&c| c > 0.93),
            "{cosines:?}"
        );
        let info = tagger_core::model::read_info(&q).unwrap();
        assert_eq!(info.quantization.as_deref(), Some("{}"));
        assert!(
            q.len() * 3 < float.len(),
            "int8 weights: {} vs {}",
            q.len(),
            float.len()
        );
    }
}
