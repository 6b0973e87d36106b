//! Models `tag` must refuse with a clear error: no labels, a wrong input shape, labels that do
//! not match the outputs, NaN outputs, a std of 0, a graph that would allocate without bound.
//! Built with the same ONNX writer as real exports.

use tagger_core::backend::BackendKind;
use tagger_core::metadata::{ModelInfo, KEY_LABELS};
use tagger_core::model::Model;
use tagger_core::preprocess::Normalization;
use tagger_core::tract_onnx::pb;
use training::onnx::export::{float_model, FoldedConv, FoldedNet};

fn tiny_net(classes: usize) -> FoldedNet {
    FoldedNet {
        convs: vec![FoldedConv {
            c_in: 3,
            c_out: 4,
            kernel: 3,
            stride: 1,
            padding: 1,
            w: vec![0.01; 4 * 3 * 9],
            b: vec![0.0; 4],
            pool: false,
        }],
        head_w: vec![0.1; 4 * classes],
        head_b: vec![0.0; classes],
        features: 4,
        classes,
        aux: vec![],
    }
}

fn info(labels: usize) -> ModelInfo {
    ModelInfo {
        labels: (0..labels).map(|i| format!("class{i}")).collect(),
        label_column: "subCategory".into(),
        name: "tiny".into(),
        version: "0".into(),
        normalization: Normalization::default(),
        quantization: None,
        heads: vec![],
    }
}

fn load(model: &pb::ModelProto) -> anyhow::Result<Model> {
    let bytes = training::onnx::encode(model);
    Model::from_bytes(&bytes, "test".into(), BackendKind::Tract, 1)
}

#[test]
fn a_well_formed_tiny_model_loads() {
    let m = load(&float_model(&tiny_net(3), &info(3))).unwrap();
    assert_eq!(m.classes(), 3);
}

#[test]
fn model_without_labels_is_refused() {
    let mut m = float_model(&tiny_net(3), &info(3));
    m.metadata_props.retain(|p| p.key != KEY_LABELS);
    let err = format!("{:#}", load(&m).err().expect("must fail"));
    assert!(
        err.contains("labels") && err.contains("training export"),
        "{err}"
    );
}

#[test]
fn labels_not_matching_outputs_are_refused() {
    let err = format!(
        "{:#}",
        load(&float_model(&tiny_net(3), &info(5)))
            .err()
            .expect("must fail")
    );
    assert!(
        err.contains("3 classes") && err.contains("5 labels"),
        "{err}"
    );
}

#[test]
fn wrong_input_shape_is_refused() {
    let mut m = float_model(&tiny_net(3), &info(3));
    let graph = m.graph.as_mut().unwrap();
    // Claim a 224x224 input, as an ImageNet model would have.
    let input = &mut graph.input[0];
    if let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        for d in &mut dims[2..] {
            d.value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(224));
        }
    }
    let err = format!("{:#}", load(&m).err().expect("must fail"));
    assert!(err.contains("224") && err.contains("80"), "{err}");
}

#[test]
fn models_with_non_finite_outputs_are_refused() {
    let mut net = tiny_net(3);
    net.head_b[1] = f32::NAN;
    let err = format!(
        "{:#}",
        load(&float_model(&net, &info(3))).err().expect("must fail")
    );
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn degenerate_normalisation_is_refused() {
    let mut i = info(3);
    i.normalization.std = [0.5, 0.0, 0.5];
    let err = format!(
        "{:#}",
        load(&float_model(&tiny_net(3), &i))
            .err()
            .expect("must fail")
    );
    assert!(err.contains("std above 0"), "{err}");
}

#[test]
fn a_graph_that_expands_to_a_huge_tensor_is_refused_before_running() {
    // 40,000 channels of 80x60 floats: 768 MiB for one image.
    let c = 40_000;
    let net = FoldedNet {
        convs: vec![FoldedConv {
            c_in: 3,
            c_out: c,
            kernel: 1,
            stride: 1,
            padding: 0,
            w: vec![0.01; c * 3],
            b: vec![0.0; c],
            pool: false,
        }],
        head_w: vec![0.1; c * 3],
        head_b: vec![0.0; 3],
        features: c,
        classes: 3,
        aux: vec![],
    };
    let err = format!(
        "{:#}",
        load(&float_model(&net, &info(3))).err().expect("must fail")
    );
    assert!(err.contains("MiB") && err.contains("limit"), "{err}");
}
