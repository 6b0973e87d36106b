//! Writing ONNX graphs with the protobuf types tract-onnx exposes (`tract_onnx::pb`).
//!
//! Why not burn-onnx's exporter: it is experimental, names tensors automatically, fixes the batch
//! size and does not fold batch norm; our contract (`image` -> `logits`, dynamic batch, folded
//! BN, metadata) would need a rewrite of its output anyway, and the int8 quantizer has to write
//! QLinearConv graphs that no exporter produces. The network is a plain chain of a few op
//! types, so building the graph directly is short and fully tested against tract and burn.

pub mod export;
pub mod qdq_graph;
pub mod quantize;
pub mod temperature;

use prost::Message;
use tagger_core::metadata::ModelInfo;
use tagger_core::tract_onnx::pb::{
    self, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};

pub const OPSET: i64 = 13;
pub const IR_VERSION: i64 = 7;

pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// 2x2 max pooling with stride 2 (works on f32 and on u8/i8 tensors alike).
pub fn max_pool_2x2(name: &str, input: &str, output: &str) -> pb::NodeProto {
    node(
        "MaxPool",
        name,
        &[input],
        &[output],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    )
}

pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn tensor_i8(name: &str, dims: &[i64], data: &[i8]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: data.iter().map(|&v| v as u8).collect(),
        ..Default::default()
    }
}

pub fn tensor_u8(name: &str, dims: &[i64], data: &[u8]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Uint8 as i32,
        raw_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn tensor_i32(name: &str, dims: &[i64], data: &[i32]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int32 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A float tensor value with a symbolic first (batch) dimension `N`.
pub fn batched_value(name: &str, rest: &[i64]) -> pb::ValueInfoProto {
    let mut dim = vec![tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimParam("N".into())),
        ..Default::default()
    }];
    dim.extend(rest.iter().map(|&d| tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
        ..Default::default()
    }));
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Wraps a graph into a model carrying the tagger's metadata.
pub fn model(graph: pb::GraphProto, info: &ModelInfo) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "fashion-tagger-training".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: info
            .to_props()
            .into_iter()
            .map(|(key, value)| pb::StringStringEntryProto { key, value })
            .collect(),
        ..Default::default()
    }
}

/// The values of a float initializer (raw little-endian bytes or `float_data`).
pub fn f32_initializer(t: &pb::TensorProto) -> anyhow::Result<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        anyhow::bail!("initializer {} is not f32", t.name);
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
