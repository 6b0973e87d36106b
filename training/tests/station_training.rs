//! Training for stations on the fixture set: empty belts learnt as `none`, a station run started
//! from a catalogue run, and extra heads trained, exported and quantized with named outputs.

mod fixture;

use fixture::*;
use std::path::Path;
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use training::data::cache::ImageCache;
use training::data::split::Split;
use training::fit::{train, RunPaths, TrainConfig, TrainData};
use training::model::Arch;
use training::onnx::quantize::{self, Calibration, Int8Form};

/// Station training on the fixture photos: composited batches with `none` and flat targets for
/// other kinds, a short run whose loss falls, export with the `none` label, and empty belts
/// told apart from products by the exported model in tract.
#[test]
fn station_training_learns_empty_belts() {
    let _serial = training_lock();
    let full = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&full)).unwrap();
    // Two classes (Topwear, Shoes) and `none`: small enough to learn in seconds.
    let two = |set: &[training::data::split::Entry]| -> Vec<training::data::split::Entry> {
        set.iter().copied().filter(|e| e.1 < 2).collect()
    };
    let s = Split {
        labels: full.labels[..2].to_vec(),
        train: two(&full.train),
        val: two(&full.val),
        test: two(&full.test),
        ..full.clone()
    };
    let mut labels = s.labels.clone();
    labels.push(tagger_core::classify::NONE.into());
    let layers = ["16:4/4v", "32v", "48/2v", "48"].map(|l| l.parse().unwrap());
    let arch = Arch::from_layers(layers.to_vec(), 0.0, labels.len());
    let mut station = training::fit::StationTraining::new(None);
    station.empty_share = 1.0;
    station.cut_jitter = true;
    let mut cfg = TrainConfig {
        labels: labels.clone(),
        ..fixture_config(&s, "station", arch, 40)
    };
    cfg.recipe.station = Some(station);
    cfg.recipe.label_smoothing = 0.05;
    cfg.recipe.warmup_epochs = 1;
    // Batches: composited, deterministic, targets by kind.
    let other = full.train.iter().find(|e| e.1 >= 2).unwrap().0;
    let samples = [
        training::fit::Sample::Product(s.train[0].0, s.train[0].1),
        training::fit::Sample::Empty(3),
        training::fit::Sample::Other(other),
    ];
    let batch = |seed| fixture::batch(&cfg, &cache, &samples, seed);
    let b = batch(1);
    assert_eq!(b.n, 3);
    assert_eq!(b.hard, vec![s.train[0].1 as i64, 2, -1]);
    let k = labels.len();
    let t: Vec<&[f32]> = b.targets.chunks(k).collect();
    let on = 0.95 + 0.05 / k as f32;
    assert!((t[0][s.train[0].1] - on).abs() < 1e-6, "smoothed");
    assert!((t[1][2] - on).abs() < 1e-6, "empty -> none");
    assert_eq!(
        t[2],
        [0.5, 0.5, 0.0],
        "other kinds: flat over the products, no none"
    );
    assert_eq!(b.input, batch(1).input);
    assert_ne!(b.input, batch(2).input);

    let paths = RunPaths::new(&tmp.path().join("run"));
    let negatives = [other];
    let data = TrainData {
        cache: &cache,
        train: &s.train,
        val: &s.val,
        negatives: &negatives,
        heads: &Default::default(),
    };
    let state = train::train(&cfg, &paths, data, false, None).unwrap();
    let h = &state.history;
    assert!(
        h.last().unwrap().train_loss < h[0].train_loss,
        "loss did not fall"
    );
    assert!(h
        .iter()
        .all(|e| e.val_mild.is_some() && e.val_empty_product.is_some()));
    let onnx = tmp.path().join("station.onnx");
    let check = training::eval::evaluate::export(&paths, "test", &s, &cache, &onnx).unwrap();
    assert!(check.max_abs_logit_diff_tract_vs_burn < 1e-4);
    let model = Model::from_path(&onnx, BackendKind::Tract, 1).unwrap();
    assert_eq!(model.info.labels, labels);
    // Temperature scaling folds 1/T into the head: logits divide by T exactly, predictions stay,
    // the metadata records it, and a calibrated model is not calibrated twice.
    {
        use training::onnx::temperature as temp;
        let bytes = std::fs::read(&onnx).unwrap();
        let scaled = temp::apply(&bytes, 0.5).unwrap();
        assert_eq!(temp::folded(&scaled), Some(0.5));
        assert_eq!(temp::folded(&bytes), None);
        assert!(temp::apply(&scaled, 0.5).is_err());
        let m2 = Model::from_bytes(&scaled, "t".into(), BackendKind::Tract, 1).unwrap();
        // Two val photos stand in for other kinds: four looks each, flat targets.
        let others: Vec<u64> = s.val.iter().take(2).map(|e| e.0).collect();
        let products = labels.len() - 1;
        let (frames, truth) = temp::fitting_frames(&s.val, &others, 4, products, &cache);
        assert_eq!(frames.len(), truth.len());
        assert_eq!(frames.len(), s.val.len() * 4 + 2 * 4 + 4);
        let flat = truth
            .iter()
            .filter(|t| **t == temp::Target::Flat(products))
            .count();
        assert_eq!(flat, 2 * 4);
        assert_eq!(truth.last(), Some(&temp::Target::Class(products)));
        let a = temp::logits(&model, &frames).unwrap();
        let b = temp::logits(&m2, &frames).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x / 0.5 - y).abs() < 1e-3 * (1.0 + x.abs()), "{x} {y}");
        }
    }
    // Empty belts get more of the `none` output than product photos do: the model tells them
    // apart after a few seconds of training.
    let p_none = |frames: &[Vec<u8>]| {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let logits = model.logits(&model.batch_input(&refs), refs.len()).unwrap();
        logits
            .chunks(k)
            .map(|l| tagger_core::classify::softmax(l)[2])
            .sum::<f32>()
            / refs.len() as f32
    };
    let empties =
        training::eval::runner::level_inputs(training::scene::Level::Empty, "val", &[], 20, &cache);
    let products: Vec<Vec<u8>> = s
        .val
        .iter()
        .map(|e| cache.get(e.0).unwrap().to_vec())
        .collect();
    let (on_empty, on_products) = (p_none(&empties), p_none(&products));
    eprintln!("p(none): empty belts {on_empty:.3}, products {on_products:.3}");
    assert!(
        on_empty > on_products + 0.3,
        "p(none): empty belts {on_empty}, products {on_products}"
    );
    // The scorer runs end to end on the exported model.
    let scores =
        training::eval::runner::score(&model, "val", &s.val, &[other], 10, &cache).unwrap();
    assert_eq!(scores.images, s.val.len());
    assert_eq!(scores.other_kinds, 1);
    assert!((0.0..=1.0).contains(&scores.mild));
}

/// `--init-from`: a station run starts from a catalogue run's best checkpoint, with the
/// catalogue run's outputs for the shared labels, a fresh `none`, and its training time counted.
#[test]
fn station_run_starts_from_a_catalogue_run() {
    let _serial = training_lock();
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&s)).unwrap();
    let layers: Vec<training::model::Layer> = ["16:4/4v", "32v", "48/2v"]
        .map(|l| l.parse().unwrap())
        .to_vec();
    let plain = fixture_config(
        &s,
        "plain",
        Arch::from_layers(layers.clone(), 0.0, s.labels.len()),
        3,
    );
    let src = RunPaths::new(&tmp.path().join("plain"));
    let done = fit(&plain, &src, &cache, &s, false, None).unwrap();
    let mut labels = s.labels.clone();
    labels.push(tagger_core::classify::NONE.into());
    let mut cfg = TrainConfig {
        labels: labels.clone(),
        ..fixture_config(
            &s,
            "tuned-on",
            Arch::from_layers(layers.clone(), 0.0, labels.len()),
            2,
        )
    };
    cfg.recipe.station = Some(training::fit::StationTraining::new(None));
    cfg.recipe.init_from = Some(src.dir.display().to_string());
    cfg.recipe.seed = 5;
    let device = burn::prelude::Device::flex();
    let (start, seconds) = training::fit::start_from(&cfg, &src.dir, &device).unwrap();
    assert_eq!(seconds, done.train_seconds);
    let old = training::fit::load_module(&plain.arch, &src.best(), &device).unwrap();
    let x = burn::prelude::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(
            cache
                .get(s.val[0].0)
                .unwrap()
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect::<Vec<f32>>(),
            [1, 3, 80, 60],
        ),
        &device,
    );
    let a: Vec<f32> = old.forward(x.clone()).into_data().try_to_vec().unwrap();
    let b: Vec<f32> = start.forward(x).into_data().try_to_vec().unwrap();
    assert_eq!(b.len(), a.len() + 1);
    assert_eq!(&b[..a.len()], &a[..], "product outputs carried over");
    // Other convolutions are refused with the option named.
    let wider = TrainConfig {
        arch: Arch::from_layers(
            ["16:4/4v", "32v", "64/2v"]
                .map(|l| l.parse().unwrap())
                .to_vec(),
            0.0,
            labels.len(),
        ),
        ..cfg.clone()
    };
    let err = training::fit::start_from(&wider, &src.dir, &device).unwrap_err();
    assert!(err.to_string().contains("--init-from"), "{err}");
    // The run itself: trains on from there and counts the source's time.
    let run = RunPaths::new(&tmp.path().join("station"));
    let data = TrainData {
        cache: &cache,
        train: &s.train,
        val: &s.val,
        negatives: &[],
        heads: &Default::default(),
    };
    let state = train::train(&cfg, &run, data, false, None).unwrap();
    assert_eq!(state.epochs_done, 2);
    let epochs: f64 = state.history.iter().map(|h| h.seconds).sum();
    assert!(state.train_seconds >= done.train_seconds + epochs * 0.99);
}

/// Extra heads: a short run with article type, colour, gender and usage heads on the
/// fixture photos exports one named output per head with its labels in the metadata; tract
/// matches burn on every output; the int8 model keeps the heads; a single-head model still
/// loads with none.
#[test]
fn extra_heads_train_export_and_quantize_with_named_outputs() {
    let _serial = training_lock();
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&s)).unwrap();
    let attrs = training::data::heads::Attributes::load(&fixture()).unwrap();
    let train_ids: Vec<u64> = s.train.iter().map(|e| e.0).collect();
    let heads: Vec<training::data::heads::Head> = ["articleType", "colour", "gender", "usage"]
        .iter()
        .map(|k| attrs.head(k, &train_ids, 2, 0.5).unwrap())
        .collect();
    let layers = ["16:4/4v", "32v", "48/2v"].map(|l| l.parse().unwrap());
    let arch = Arch {
        heads: heads.iter().map(|h| h.labels.len()).collect(),
        ..Arch::from_layers(layers.to_vec(), 0.0, s.labels.len())
    };
    let mut cfg = fixture_config(&s, "multi", arch, 3);
    cfg.recipe.heads = heads.clone();
    let ids: Vec<u64> = s.train.iter().chain(&s.val).map(|e| e.0).collect();
    let targets = attrs.targets(&heads, &ids);
    let paths = RunPaths::new(&tmp.path().join("run"));
    // Heads without targets are refused rather than trained on nothing.
    assert!(fit(&cfg, &paths, &cache, &s, false, None).is_err());
    let data = TrainData {
        cache: &cache,
        train: &s.train,
        val: &s.val,
        negatives: &[],
        heads: &targets,
    };
    let state = train::train(&cfg, &paths, data, false, None).unwrap();
    let log = state.history.last().unwrap();
    assert!(log.val_heads.as_deref().unwrap().contains("articleType="));
    let onnx = tmp.path().join("multi.onnx");
    let check = training::eval::evaluate::export(&paths, "test", &s, &cache, &onnx).unwrap();
    assert!(check.max_abs_logit_diff_tract_vs_burn < 1e-4);
    let model = Model::from_path(&onnx, BackendKind::Tract, 1).unwrap();
    let names: Vec<&str> = model.info.heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["articleType", "colour", "gender", "usage"]);
    for (h, want) in model.info.heads.iter().zip(&heads) {
        assert_eq!(h.labels, want.labels);
    }
    let imgs: Vec<&[u8]> = s.test.iter().map(|e| cache.get(e.0).unwrap()).collect();
    let x = model.batch_input(&imgs);
    let out = model.outputs(&x, imgs.len()).unwrap();
    assert_eq!(out.len(), 5);
    for (o, h) in out[1..].iter().zip(&heads) {
        assert_eq!(o.len(), imgs.len() * h.labels.len());
    }
    assert_eq!(out[0], model.logits(&x, imgs.len()).unwrap());
    // Per-head figures through the runtime.
    let present: Vec<_> = s.test.clone();
    let frames: Vec<Vec<u8>> = imgs.iter().map(|i| i.to_vec()).collect();
    let metrics = training::eval::heads::head_metrics(&model, &attrs, &present, &frames).unwrap();
    assert_eq!(metrics.len(), 4);
    assert!(metrics.iter().all(|m| m.n > 0 && m.accuracy <= 1.0));
    // int8 keeps the heads (the head Gemms stay float).
    let bytes = std::fs::read(&onnx).unwrap();
    let proto = {
        use tagger_core::tract_onnx::prelude::Framework;
        tagger_core::tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(&bytes))
            .unwrap()
    };
    let net = quantize::folded_from_onnx(&proto).unwrap();
    assert_eq!(net.aux.len(), 4);
    let calib: Vec<&[u8]> = s.train.iter().map(|e| cache.get(e.0).unwrap()).collect();
    let input = model.batch_input(&calib);
    let ranges =
        quantize::calibrate(&net, &model.info, &input, calib.len(), Calibration::MinMax).unwrap();
    assert_eq!(ranges.len(), net.convs.len());
    let settings = quantize::QuantSettings::new(
        &model.info,
        Int8Form::Qlinear,
        Calibration::MinMax,
        &ranges,
        calib.len(),
        "fixture train split".into(),
    );
    let q = quantize::int8_bytes(&net, &model.info, &ranges, &settings).unwrap();
    let int8 = Model::from_bytes(&q, "int8".into(), BackendKind::Tract, 1).unwrap();
    assert_eq!(int8.info.heads, model.info.heads);
    assert_eq!(int8.outputs(&x, imgs.len()).unwrap().len(), 5);
    // A model without heads has none, as before.
    let single = Model::from_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/robust.onnx"),
        BackendKind::Tract,
        1,
    )
    .unwrap();
    assert!(single.info.heads.is_empty());
}
