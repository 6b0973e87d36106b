//! NNEF forms of the two element-wise quantisation ops that tract 0.23.9's NNEF writer has no
//! serializer for (`QuantizeLinearU8`, `DequantizeLinearF32`): what an int8 ONNX model (QDQ or
//! QLinearConv) keeps at its float input and output after tract's declutter. Written here as a
//! small tract-nnef registry rather than patching tract: both ops are plain arithmetic with two
//! parameters, and the NNEF reader of every `tag` build registers the same names.

use tract_nnef::internal::*;
use tract_nnef::tract_core::ops::element_wise::ElementWiseOp;
use tract_nnef::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

const QUANTIZE: &str = "fashion_tagger_quantize_linear_u8";
const DEQUANTIZE: &str = "fashion_tagger_dequantize_linear_f32";

/// The registry the NNEF writer and every reader add to tract's own.
pub fn registry() -> Registry {
    let mut r = Registry::new("fashion_tagger")
        .with_doc("fashion-tagger: int8 quantize/dequantize of float tensors");
    r.register_element_wise(
        QUANTIZE,
        TypeId::of::<QuantizeLinearU8>(),
        Box::new(dump_quantize),
        vec![
            TypeName::Scalar.tensor().named("input"),
            TypeName::Scalar.named("scale"),
            TypeName::Integer.named("zero_point"),
        ],
        load_quantize,
    );
    r.register_dumper(dump_dequantize);
    r.register_primitive(
        DEQUANTIZE,
        &[
            TypeName::Integer.tensor().named("input"),
            TypeName::Scalar.named("scale"),
            TypeName::Integer.named("zero_point"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        load_dequantize,
    );
    r
}

fn dump_quantize(ast: &mut IntoAst, node: &TypedNode) -> TractResult<Option<Arc<RValue>>> {
    let op = node
        .op_as::<ElementWiseOp>()
        .and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>())
        .context("not a QuantizeLinearU8")?;
    Ok(Some(with_qparams(
        ast,
        node,
        QUANTIZE,
        op.scale,
        op.zero_point.into(),
    )))
}

/// `id(input, scale = .., zero_point = ..)`: both ops' one form.
fn with_qparams(ast: &IntoAst, node: &TypedNode, id: &str, scale: f32, zp: i64) -> Arc<RValue> {
    let input = ast.mapping[&node.inputs[0]].clone();
    invocation(
        id,
        &[input],
        &[("scale", numeric(scale)), ("zero_point", numeric(zp))],
    )
}

fn load_quantize(builder: &mut ModelBuilder, inv: &ResolvedInvocation) -> TractResult<Value> {
    let input = inv.named_arg_as(builder, "input")?;
    let scale: f32 = inv.named_arg_as(builder, "scale")?;
    let zero_point: i64 = inv.named_arg_as(builder, "zero_point")?;
    let zero_point = u8::try_from(zero_point).context("zero_point out of u8 range")?;
    let op = QuantizeLinearU8 { scale, zero_point };
    builder.wire(ElementWiseOp(Box::new(op), None), &[input])
}

fn dump_dequantize(
    ast: &mut IntoAst,
    node: &TypedNode,
    op: &DequantizeLinearF32,
) -> TractResult<Option<Arc<RValue>>> {
    Ok(Some(with_qparams(
        ast,
        node,
        DEQUANTIZE,
        op.scale,
        op.zero_point.into(),
    )))
}

fn load_dequantize(builder: &mut ModelBuilder, inv: &ResolvedInvocation) -> TractResult<Value> {
    let input = inv.named_arg_as(builder, "input")?;
    let scale: f32 = inv.named_arg_as(builder, "scale")?;
    let zero_point: i64 = inv.named_arg_as(builder, "zero_point")?;
    let op = DequantizeLinearF32 {
        scale,
        zero_point: i32::try_from(zero_point).context("zero_point out of i32 range")?,
    };
    builder.wire(op, &[input])
}
