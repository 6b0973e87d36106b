//! End to end on the shipped fixture set (78 real product photos, 13 classes): split, cache,
//! preprocessing parity, a short training run in which the loss falls, resume, export and the
//! tract round trip.

mod fixture;

use burn::prelude::*;
use fixture::*;
use std::path::Path;
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use tagger_core::preprocess::{self, Normalization};
use training::data::cache::ImageCache;
use training::fit::RunPaths;
use training::model::Arch;
use training::onnx::quantize::{self, Calibration, Int8Form};

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
    let batch = |seed| fixture::batch(&cfg, &cache, &samples, seed);
    let (a, b) = (batch(5), batch(5));
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
    assert_ne!(a.input, batch(6).input);
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
