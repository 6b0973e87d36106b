//! The project's depthwise kernel (core/src/backend/tract/depthwise_*.rs) replaces every
//! depthwise convolution of the built-in model and tags the fixture photos as tract's own
//! operator does (`TAG_DEPTHWISE=tract`), through the real binary.

mod common;

use common::{jsonl, robust_model, stderr, tag_command};
use std::path::Path;
use tagger_core::backend::tract::TractBackend;

/// Largest confidence difference allowed between the two kernels on a photo.
const TOLERANCE: f64 = 1e-4;

fn builtin_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(tagger::builtin::MODEL_FILE)).unwrap()
}

#[test]
fn every_depthwise_layer_of_the_builtin_model_is_replaced() {
    let model = tagger_core::format::typed_model(&builtin_bytes()).unwrap();
    let depthwise = model
        .nodes()
        .iter()
        .filter(|n| {
            n.op_as::<tagger::tract_onnx::tract_core::ops::cnn::Conv>()
                .is_some_and(|c| c.group > 1 && c.group == c.input_channels())
        })
        .count();
    assert!(depthwise >= 10, "{depthwise} depthwise convolutions");
    // The plan the tract backend runs for one image.
    let plan = TractBackend::from_model(model, 1).unwrap().plan(1).unwrap();
    let op_count = |name: &str| {
        plan.model()
            .nodes()
            .iter()
            .filter(|n| n.op.name() == name)
            .count()
    };
    assert_eq!(op_count("FastDepthwise"), depthwise);
    assert_eq!(op_count("DepthWiseConv"), 0);
    // Each layer's ReLU6 is folded in: no clamp of tract's runs after one.
    let nodes = plan.model().nodes();
    for n in nodes.iter().filter(|n| n.op.name() == "FastDepthwise") {
        for next in &n.outputs[0].successors {
            let next = &nodes[next.node];
            let op = next.op.name();
            assert!(
                !op.contains("Max") && !op.contains("Min"),
                "{} ({op}) follows {}",
                next.name,
                n.name
            );
        }
    }
}

#[test]
fn the_builtin_model_tags_the_same_with_either_kernel() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let run = |tract_kernel: bool| {
        let mut c = tag_command();
        c.args(["--format", "jsonl", "--top-k", "3"]).arg(&fixtures);
        if tract_kernel {
            c.env("TAG_DEPTHWISE", "tract");
        } else {
            c.env_remove("TAG_DEPTHWISE");
        }
        let o = c.output().unwrap();
        // Some fixtures are unreadable on purpose (exit 1); every readable photo is tagged.
        assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
        jsonl(&o)
    };
    let (ours, theirs) = (run(false), run(true));
    let tagged = ours.iter().filter(|r| r["label"].is_string()).count();
    assert!(tagged >= 100, "{tagged} photos tagged");
    assert_eq!(ours.len(), theirs.len());
    for (x, y) in ours.iter().zip(&theirs) {
        assert_eq!(x["path"], y["path"]);
        assert_eq!(x["label"], y["label"], "{}", x["path"]);
        let (Some(a), Some(b)) = (x["top"].as_array(), y["top"].as_array()) else {
            continue;
        };
        for (p, q) in a.iter().zip(b) {
            assert_eq!(p["label"], q["label"], "{}", x["path"]);
            let d = (p["score"].as_f64().unwrap() - q["score"].as_f64().unwrap()).abs();
            assert!(d <= TOLERANCE, "{} differs by {d}", x["path"]);
        }
    }
}

#[test]
fn tag_bench_names_the_depthwise_kernel_it_ran() {
    let bench = |model: Option<&str>, tract_kernel: bool| {
        let mut c = tag_command();
        c.args(["bench", "--iterations", "2", "--format", "json"]);
        if let Some(m) = model {
            c.args(["--model", m]);
        }
        if tract_kernel {
            c.env("TAG_DEPTHWISE", "tract");
        } else {
            c.env_remove("TAG_DEPTHWISE");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        r["kernels"].clone()
    };
    let ours = bench(None, false);
    let ours = ours.as_str().unwrap_or_default();
    assert!(
        ours.starts_with("depthwise: ours") && ours.ends_with("layers)"),
        "{ours}"
    );
    assert_eq!(
        bench(None, true).as_str(),
        Some("depthwise: tract's (TAG_DEPTHWISE=tract)")
    );
    // A model without depthwise convolutions runs only tract's kernels.
    assert!(bench(Some(&robust_model()), false).is_null());
}
