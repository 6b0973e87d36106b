//! End to end on the shipped fixture set (78 real product photos, 13 classes): split, cache,
//! preprocessing parity, a short training run in which the loss falls, resume, export and the
//! tract round trip.

use burn::prelude::*;
use std::path::{Path, PathBuf};
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use tagger_core::preprocess::{self, Normalization};
use training::data::cache::ImageCache;
use training::data::split::{Split, SplitOptions};
use training::fit::{train, RunPaths, TrainConfig, TrainData};
use training::model::Arch;
use training::onnx::quantize::{self, Calibration, Int8Form};

/// burn's device seed is process-wide: tests that train run one at a time, so each starts from
/// its own seed whatever else runs (otherwise initialisation depends on scheduling).
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn training_lock() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|p| p.into_inner())
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dataset")
}

fn split() -> Split {
    Split::create(
        &fixture(),
        &SplitOptions {
            seed: 3,
            label_column: "subCategory".into(),
            min_images: 2,
            val_fraction: 0.17,
            test_fraction: 0.17,
        },
    )
    .unwrap()
}

fn all_ids(s: &Split) -> Vec<u64> {
    s.train
        .iter()
        .chain(&s.val)
        .chain(&s.test)
        .map(|e| e.0)
        .collect()
}

/// `train::train` on the fixture split without negatives or extra heads.
fn fit(
    cfg: &TrainConfig,
    paths: &RunPaths,
    cache: &ImageCache,
    s: &Split,
    resume: bool,
    stop_after: Option<usize>,
) -> anyhow::Result<training::fit::RunState> {
    let no_heads = Default::default();
    let data = TrainData {
        cache,
        train: &s.train,
        val: &s.val,
        negatives: &[],
        heads: &no_heads,
    };
    train::train(cfg, paths, data, resume, stop_after)
}

/// Small-batch training settings for the fixture photos.
fn fixture_config(s: &Split, name: &str, arch: Arch, epochs: usize) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        arch,
        epochs,
        recipe: training::fit::Recipe::plain(8, 3e-3, 0.0, 1),
        normalization: Normalization::default(),
        label_column: s.label_column.clone(),
        labels: s.labels.clone(),
    }
}

#[test]
fn split_of_fixture_is_complete_and_deterministic() {
    let a = split();
    assert_eq!(a.labels.len(), 13);
    assert_eq!(a.train.len() + a.val.len() + a.test.len(), 78);
    assert!(!a.val.is_empty() && !a.test.is_empty());
    assert_eq!(a, split());
}

#[test]
fn cached_tensors_equal_runtime_preprocessing() {
    let s = split();
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), dir.path(), &all_ids(&s)).unwrap();
    assert!(cache.rebuilt);
    let norm = Normalization::default();
    for &(id, _) in s.test.iter().chain(&s.train) {
        let path = training::data::dataset::image_path(&fixture(), id);
        let runtime = preprocess::file_to_input(&path, &norm).unwrap();
        let training = preprocess::normalize(cache.get(id).unwrap(), &norm);
        assert_eq!(runtime, training, "image {id}");
    }
    // A second open reuses the file instead of decoding again.
    let again = ImageCache::open(&fixture(), dir.path(), &all_ids(&s)).unwrap();
    assert!(!again.rebuilt);
    assert_eq!(again.get(s.train[0].0), cache.get(s.train[0].0));
}

#[test]
fn cache_skips_corrupt_images_and_counts_them() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("images")).unwrap();
    let good = training::data::dataset::image_path(&fixture(), 1532);
    std::fs::copy(&good, data.path().join("images/1.jpg")).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(data.path().join("images/2.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(data.path().join("images/3.jpg"), b"").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(data.path(), dir.path(), &[1, 2, 3]).unwrap();
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.corrupt.len(), 2);
    assert!(cache.get(2).is_none());
}

/// `--ema`: the average is checkpointed beside the weights, a killed run resumes to the same
/// average, and what is validated and kept as best is the average, not the last weights.
#[test]
fn ema_run_resumes_to_the_same_average() {
    let _serial = training_lock();
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&s)).unwrap();
    let arch = Arch {
        channels: vec![8, 16],
        convs_per_stage: 1,
        layers: vec![],
        dropout: 0.0,
        classes: s.labels.len(),
        heads: vec![],
    };
    let mut cfg = fixture_config(&s, "ema", arch, 4);
    cfg.recipe.ema = Some(0.9);
    let device = Device::flex();
    let run = |dir: &str, split_at: Option<usize>| {
        let paths = RunPaths::new(&tmp.path().join(dir));
        if let Some(n) = split_at {
            fit(&cfg, &paths, &cache, &s, false, Some(n)).unwrap();
        }
        let state = fit(&cfg, &paths, &cache, &s, split_at.is_some(), None).unwrap();
        (paths, state)
    };
    let (whole, a) = run("whole", None);
    let (resumed, b) = run("resumed", Some(2));
    assert!(whole.ema().is_file());
    let val_acc = |h: &[training::fit::EpochLog]| h.iter().map(|e| e.val_acc).collect::<Vec<_>>();
    assert_eq!(val_acc(&a.history), val_acc(&b.history));
    let weights = |p: &Path| {
        let m = training::fit::load_module(&cfg.arch, p, &device).unwrap();
        let x = Tensor::<4>::ones([1, 3, 80, 60], &device);
        m.forward(x).into_data().try_to_vec::<f32>().unwrap()
    };
    assert_eq!(weights(&whole.ema()), weights(&resumed.ema()));
    assert_ne!(weights(&whole.ema()), weights(&whole.last()));
    if a.best_epoch == 4 {
        assert_eq!(weights(&whole.best()), weights(&whole.ema()));
    }
}

#[test]
fn smoke_training_loss_falls_resumes_and_exports() {
    let _serial = training_lock();
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&s)).unwrap();
    let arch = Arch {
        channels: vec![16, 32, 64],
        convs_per_stage: 1,
        layers: vec![],
        dropout: 0.0,
        classes: s.labels.len(),
        heads: vec![],
    };
    let cfg = fixture_config(&s, "smoke", arch, 20);
    let paths = RunPaths::new(&tmp.path().join("run"));
    // Train 10 of 20 epochs (as if killed), then resume from the checkpoint.
    let early = fit(&cfg, &paths, &cache, &s, false, Some(10)).unwrap();
    assert_eq!(early.epochs_done, 10);
    // Same directory without --resume is refused rather than overwritten.
    assert!(fit(&cfg, &paths, &cache, &s, false, None).is_err());
    // Resuming with other settings is refused too.
    let mut other = cfg.clone();
    other.recipe.lr = 1.0;
    assert!(fit(&other, &paths, &cache, &s, true, None).is_err());
    let state = fit(&cfg, &paths, &cache, &s, true, None).unwrap();
    assert_eq!(state.history[9].train_loss, early.history[9].train_loss);
    assert_eq!(state.epochs_done, 20);
    assert_eq!(state.history.len(), 20);
    let (first, last) = (state.history[0].train_loss, state.history[19].train_loss);
    assert!(last < first * 0.75, "loss did not fall: {first} -> {last}");
    assert!(paths.best().is_file() && paths.history_csv().is_file());

    // Export, then tract must agree with burn on real images.
    let onnx = tmp.path().join("smoke.onnx");
    let check = training::eval::evaluate::export(&paths, "test", &s, &cache, &onnx).unwrap();
    assert!(check.images > 0);
    assert!(check.max_abs_logit_diff_tract_vs_burn < 1e-4);
    let model = Model::from_path(&onnx, BackendKind::Tract, 1).unwrap();
    assert_eq!(model.info.labels, s.labels);
    assert_eq!(model.info.name, "smoke");
    // Dynamic batch: 1 and 5 images at once give the same logits per image.
    let imgs: Vec<&[u8]> = s
        .test
        .iter()
        .take(5)
        .map(|e| cache.get(e.0).unwrap())
        .collect();
    let batch = model.logits(&model.batch_input(&imgs), imgs.len()).unwrap();
    let single = model.logits(&model.batch_input(&imgs[..1]), 1).unwrap();
    let k = model.classes();
    for (a, b) in batch[..k].iter().zip(&single) {
        assert!((a - b).abs() < 1e-4);
    }
    // The exported model as a distillation teacher: its softened outputs per photo are
    // distributions whose argmax is the model's own prediction, and a product's target blends
    // them with the label.
    let d = training::fit::distill::Distill {
        teachers: vec![onnx.display().to_string()],
        weight: 0.5,
        temperature: 2.0,
    };
    let ids: Vec<u64> = s.test.iter().take(5).map(|e| e.0).collect();
    let teacher = training::fit::distill::teacher_targets(&d, &cache, &ids, &s.labels).unwrap();
    assert_eq!(teacher.len(), 5);
    for (i, row) in batch.chunks(k).enumerate() {
        let p = teacher.get(ids[i]).unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(argmax(p), argmax(row));
    }
    let mut dcfg = cfg.clone();
    dcfg.recipe.distill = Some(d.clone());
    let sample = [training::fit::Sample::Product(s.test[0].0, s.test[0].1)];
    let b = training::fit::make_batch(
        &dcfg.recipe,
        &dcfg.labels,
        &dcfg.normalization,
        &cache,
        &sample,
        1,
        Some(&teacher),
        &Default::default(),
    );
    let p = teacher.get(s.test[0].0).unwrap();
    for (c, (&t, &q)) in b.targets.iter().zip(p).enumerate() {
        let label = (c == s.test[0].1) as u8 as f32;
        assert!(
            (t - (0.5 * label + 0.5 * q)).abs() < 1e-6,
            "class {c}: {t} vs {q}"
        );
    }
    let mut wrong = d.clone();
    wrong.teachers = vec!["/no/teacher.onnx".into()];
    assert!(training::fit::distill::teacher_targets(&wrong, &cache, &ids, &s.labels).is_err());
    let e = training::fit::distill::teacher_targets(&d, &cache, &ids, &s.labels[..2])
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("same split"), "{e:#}");

    // Batch norm is folded: the graph has no BatchNormalization node.
    let text = String::from_utf8_lossy(&std::fs::read(&onnx).unwrap()).into_owned();
    assert!(!text.contains("BatchNormalization"));
    assert!(text.contains("Conv") && text.contains("logits") && text.contains("image"));

    // int8: calibrated on training images only, close to float, labels kept, refusals.
    let float_bytes = std::fs::read(&onnx).unwrap();
    let proto = {
        use tagger_core::tract_onnx::prelude::Framework;
        tagger_core::tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(&float_bytes))
            .unwrap()
    };
    let net = quantize::folded_from_onnx(&proto).unwrap();
    let info = model.info.clone();
    let calib: Vec<&[u8]> = s.train.iter().map(|e| cache.get(e.0).unwrap()).collect();
    let input = model.batch_input(&calib);
    assert!(quantize::calibrate(&net, &info, &[], 0, Calibration::MinMax).is_err());
    for (method, form) in [
        (Calibration::MinMax, Int8Form::Qlinear),
        (Calibration::Percentile, Int8Form::Qlinear),
        (Calibration::Percentile, Int8Form::Qdq),
    ] {
        let ranges = quantize::calibrate(&net, &info, &input, calib.len(), method).unwrap();
        assert_eq!(ranges.len(), net.convs.len());
        let settings = quantize::QuantSettings::new(
            &info,
            form,
            method,
            &ranges,
            calib.len(),
            "fixture train split".into(),
        );
        let q = quantize::int8_bytes(&net, &info, &ranges, &settings).unwrap();
        let int8 = Model::from_bytes(&q, "int8".into(), BackendKind::Tract, 1).unwrap();
        assert_eq!(int8.info.labels, s.labels);
        assert!(int8.info.quantization.is_some());
        assert!(q.len() * 2 < float_bytes.len(), "int8 file is not smaller");
        // Stated tolerance: logits within 10% of the float logits' spread, same top-1 on >= 90%.
        let imgs: Vec<&[u8]> = s
            .test
            .iter()
            .chain(&s.val)
            .map(|e| cache.get(e.0).unwrap())
            .collect();
        let x = model.batch_input(&imgs);
        let (lf, lq) = (
            model.logits(&x, imgs.len()).unwrap(),
            int8.logits(&x, imgs.len()).unwrap(),
        );
        assert_close(&lf, &lq, &format!("{method:?} {form:?}"));
        let k = model.classes();
        let agree = lf
            .chunks(k)
            .zip(lq.chunks(k))
            .filter(|(a, b)| tagger_core::classify::argmax(a) == tagger_core::classify::argmax(b))
            .count();
        assert!(
            agree * 10 >= imgs.len() * 9,
            "{method:?} {form:?}: top-1 agreement {agree}/{}",
            imgs.len()
        );
        // A quantized model cannot be quantized again.
        let qproto = {
            use tagger_core::tract_onnx::prelude::Framework;
            tagger_core::tract_onnx::onnx()
                .proto_model_for_read(&mut std::io::Cursor::new(&q))
                .unwrap()
        };
        let err = quantize::folded_from_onnx(&qproto).unwrap_err().to_string();
        assert!(err.contains("already quantized"), "{err}");
    }

    // Evaluation writes metrics and plots.
    let m = training::eval::evaluate::evaluate(&paths, &s, &cache).unwrap();
    assert_eq!(m.test.n, s.test.len());
    assert!(paths.dir.join("curves.png").is_file());
    assert!(paths.dir.join("confusion_test.png").is_file());
    let _ = Device::flex();
}

/// Explicit layers (patchify stem, strides, no padding): burn, the exported graph in tract and
/// the int8 graphs all compute the same network.
#[test]
fn strided_layers_export_and_quantize_consistently() {
    let _serial = training_lock();
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), &tmp.path().join("cache"), &all_ids(&s)).unwrap();
    let layers = ["16:4/4v", "32v", "48/2v", "48"].map(|l| l.parse().unwrap());
    let arch = Arch::from_layers(layers.to_vec(), 0.0, s.labels.len());
    let cfg = fixture_config(&s, "strided", arch, 4);
    let paths = RunPaths::new(&tmp.path().join("run"));
    fit(&cfg, &paths, &cache, &s, false, None).unwrap();
    let onnx = tmp.path().join("strided.onnx");
    let check = training::eval::evaluate::export(&paths, "test", &s, &cache, &onnx).unwrap();
    assert!(check.max_abs_logit_diff_tract_vs_burn < 1e-4);
    let bytes = std::fs::read(&onnx).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(!text.contains("MaxPool"));
    let proto = {
        use tagger_core::tract_onnx::prelude::Framework;
        tagger_core::tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(&bytes))
            .unwrap()
    };
    let net = quantize::folded_from_onnx(&proto).unwrap();
    let shapes: Vec<_> = net
        .convs
        .iter()
        .map(|c| (c.kernel, c.stride, c.padding))
        .collect();
    assert_eq!(shapes, [(4, 4, 0), (3, 1, 0), (3, 2, 0), (3, 1, 1)]);
    let model = Model::from_path(&onnx, BackendKind::Tract, 1).unwrap();
    let calib: Vec<&[u8]> = s.train.iter().map(|e| cache.get(e.0).unwrap()).collect();
    let input = model.batch_input(&calib);
    let imgs: Vec<&[u8]> = s.test.iter().map(|e| cache.get(e.0).unwrap()).collect();
    let x = model.batch_input(&imgs);
    let lf = model.logits(&x, imgs.len()).unwrap();
    for form in [Int8Form::Qlinear, Int8Form::Qdq] {
        let ranges =
            quantize::calibrate(&net, &model.info, &input, calib.len(), Calibration::MinMax)
                .unwrap();
        let settings = quantize::QuantSettings::new(
            &model.info,
            form,
            Calibration::MinMax,
            &ranges,
            calib.len(),
            "fixture train split".into(),
        );
        let q = quantize::int8_bytes(&net, &model.info, &ranges, &settings).unwrap();
        // QLinearConv gets one scalar weight zero point (tract then skips its zero-point
        // passes); DequantizeLinear one per channel, like its scales.
        let qproto = {
            use tagger_core::tract_onnx::prelude::Framework;
            tagger_core::tract_onnx::onnx()
                .proto_model_for_read(&mut std::io::Cursor::new(&q))
                .unwrap()
        };
        let zp = qproto
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .find(|t| t.name == "conv1.weight_zero_point")
            .unwrap();
        let per_channel = matches!(form, Int8Form::Qdq);
        assert_eq!(zp.dims, if per_channel { vec![32] } else { vec![] });
        let int8 = Model::from_bytes(&q, "int8".into(), BackendKind::Tract, 1).unwrap();
        let lq = int8.logits(&x, imgs.len()).unwrap();
        assert_close(&lf, &lq, &format!("{form:?}"));
    }
}

/// Stated int8 tolerance: every logit within 10% of the float logits' spread.
fn assert_close(lf: &[f32], lq: &[f32], what: &str) {
    let spread =
        lf.iter().fold(f32::MIN, |m, v| m.max(*v)) - lf.iter().fold(f32::MAX, |m, v| m.min(*v));
    let worst = lf
        .iter()
        .zip(lq)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst < 0.1 * spread,
        "{what}: int8 off by {worst}, spread {spread}"
    );
}

#[test]
fn augmentation_keeps_labels_and_shapes_and_spares_evaluation() {
    let s = split();
    let tmp = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(&fixture(), tmp.path(), &all_ids(&s)).unwrap();
    let device = Device::flex();
    let norm = Normalization::default();
    let arch = Arch::from_layers(vec!["8:4/4v".parse().unwrap()], 0.0, s.labels.len());
    let mut cfg = fixture_config(&s, "aug", arch, 1);
    cfg.recipe.augment = Some(training::fit::augment::Augment::default());
    let samples: Vec<training::fit::Sample> = s.train[..8]
        .iter()
        .map(|&(id, c)| training::fit::Sample::Product(id, c))
        .collect();
    let a = training::fit::make_batch(
        &cfg.recipe,
        &cfg.labels,
        &cfg.normalization,
        &cache,
        &samples,
        5,
        None,
        &Default::default(),
    );
    let b = training::fit::make_batch(
        &cfg.recipe,
        &cfg.labels,
        &cfg.normalization,
        &cache,
        &samples,
        5,
        None,
        &Default::default(),
    );
    assert_eq!(a.n, 8);
    assert_eq!(a.input.len(), 8 * preprocess::IMAGE_LEN);
    let labels: Vec<i64> = s.train[..8].iter().map(|e| e.1 as i64).collect();
    assert_eq!(a.hard, labels);
    // One-hot targets (no smoothing) on the labels.
    for (t, &l) in a.targets.chunks(s.labels.len()).zip(&labels) {
        assert_eq!(t[l as usize], 1.0);
        assert_eq!(t.iter().sum::<f32>(), 1.0);
    }
    assert_eq!(a.input, b.input, "same seed, same batch");
    assert_ne!(
        a.input,
        training::fit::make_batch(
            &cfg.recipe,
            &cfg.labels,
            &cfg.normalization,
            &cache,
            &samples,
            6,
            None,
            &Default::default()
        )
        .input
    );
    // The evaluation path (no augmentation) feeds exactly the preprocessed images.
    let entries = &s.train[..8];
    let (xe, _, _) = training::fit::batch_tensors(&cache, entries, &norm, &device);
    let plain: Vec<f32> = entries
        .iter()
        .flat_map(|e| preprocess::normalize(cache.get(e.0).unwrap(), &norm))
        .collect();
    assert_eq!(xe.into_data().try_to_vec::<f32>().unwrap(), plain);
    assert_ne!(a.input, plain, "augmentation changed the training batch");
}

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
    let b = training::fit::make_batch(
        &cfg.recipe,
        &cfg.labels,
        &cfg.normalization,
        &cache,
        &samples,
        1,
        None,
        &Default::default(),
    );
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
    assert_eq!(
        b.input,
        training::fit::make_batch(
            &cfg.recipe,
            &cfg.labels,
            &cfg.normalization,
            &cache,
            &samples,
            1,
            None,
            &Default::default()
        )
        .input
    );
    assert_ne!(
        b.input,
        training::fit::make_batch(
            &cfg.recipe,
            &cfg.labels,
            &cfg.normalization,
            &cache,
            &samples,
            2,
            None,
            &Default::default()
        )
        .input
    );

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
        let (frames, truth) = temp::fitting_frames(&s.val, 4, labels.len() - 1, &cache);
        assert_eq!(frames.len(), truth.len());
        assert_eq!(frames.len(), s.val.len() * 4 + 4);
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
