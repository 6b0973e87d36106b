//! A tract operator running [`super::depthwise_kernel`], and the rewrite that puts it in place
//! of tract's own depthwise convolution before a plan is optimised.
//!
//! Only float NCHW depthwise convolutions with constant weights, no dilation and a concrete
//! input shape are rewritten; anything else (int8, grouped but not depthwise) stays tract's.
//! The rewrite runs on the concrete graph a plan is built from, so model files never contain
//! the operator. `TAG_DEPTHWISE=tract` keeps tract's own (for comparison: `tag bench`,
//! docs/speed.md). A following clamp (`Max` with a constant, then `Min` with a constant: how
//! tract reads ONNX's `Clip`, the ReLU6 of EfficientNet-Lite) is folded into the operator.

use super::depthwise_kernel::{depthwise, Clamp, Geometry, Weights};
use tract_nnef::internal::*;
use tract_nnef::tract_core::ops::binary::TypedBinOp;
use tract_nnef::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_nnef::tract_core::ops::math::{Max, Min};
use tract_nnef::tract_core::ops::nn::DataFormat;

/// Environment variable that keeps tract's own depthwise convolution when set to `tract`.
pub const ENV: &str = "TAG_DEPTHWISE";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastDepthwise {
    geometry: Geometry,
    clamp: Option<Clamp>,
}

impl Op for FastDepthwise {
    fn name(&self) -> StaticName {
        "FastDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} {:?}", self.geometry, self.clamp)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for FastDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (input, taps, bias) = args_3!(inputs);
        let g = &self.geometry;
        let input = input.try_as_plain_ram()?;
        let input = input.as_slice::<f32>()?;
        ensure!(
            input.len() == g.input_len(),
            "FastDepthwise input has the wrong size"
        );
        let taps = taps.try_as_plain_ram()?;
        let bias = bias.try_as_plain_ram()?;
        let mut out = vec![0f32; g.output_len()];
        let w = Weights {
            taps: taps.as_slice::<f32>()?,
            bias: bias.as_slice::<f32>()?,
            clamp: self.clamp,
        };
        depthwise(g, w, input, &mut out);
        let out =
            tract_ndarray::Array4::from_shape_vec((g.batch, g.channels, g.out_h, g.out_w), out)?
                .into_tensor();
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for FastDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geometry;
        ensure!(inputs.len() == 3 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact([g.batch, g.channels, g.out_h, g.out_w])))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (g.output_len() * g.taps()).to_dim()
        )))
    }

    as_op!();
}

/// Replaces every depthwise convolution the kernel covers; returns how many it replaced.
/// Does nothing when [`ENV`] says `tract`.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    if kept_tracts() {
        return Ok(0);
    }
    let before = count(model);
    Rewriter::<()>::default()
        .with_rule_for("fast-depthwise", rule)
        .rewrite(&(), model)?;
    Rewriter::<()>::default()
        .with_rule_for("fast-depthwise-clamp", clamp_rule)
        .rewrite(&(), model)?;
    Ok(count(model) - before)
}

/// Whether [`ENV`] asks for tract's own depthwise convolution.
pub fn kept_tracts() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "tract")
}

/// Nodes of `model` that run the project's depthwise kernel.
pub fn count(model: &TypedModel) -> usize {
    model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<FastDepthwise>())
        .count()
}

fn rule(
    _ctx: &(),
    model: &TypedModel,
    node: &TypedNode,
    name: &str,
    conv: &Conv,
) -> TractResult<Option<TypedModelPatch>> {
    let spec = &conv.pool_spec;
    let c = conv.input_channels();
    rule_if!(conv.q_params.is_none() && node.inputs.len() == 3);
    rule_if!(spec.data_format == DataFormat::NCHW && conv.kernel_fmt == KernelFormat::OIHW);
    rule_if!(c > 1 && conv.group == c && conv.output_channels() == c);
    rule_if!(spec.kernel_shape.len() == 2 && spec.dilations().iter().all(|&d| d == 1));
    let fact = model.outlet_fact(node.inputs[0])?;
    rule_if!(fact.datum_type == f32::datum_type());
    rule_if_some!(shape = fact.shape.as_concrete());
    rule_if_some!(kernel = model.outlet_fact(node.inputs[1])?.konst.clone());
    rule_if_some!(bias = model.outlet_fact(node.inputs[2])?.konst.clone());
    rule_if!(shape.len() == 4 && shape[1] == c);
    let padding = spec.computed_padding(&shape[2..]);
    let strides = spec.strides();
    let geometry = Geometry {
        batch: shape[0],
        channels: c,
        height: shape[2],
        width: shape[3],
        kernel_h: spec.kernel_shape[0],
        kernel_w: spec.kernel_shape[1],
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: padding[0].pad_before,
        pad_left: padding[1].pad_before,
        out_h: padding[0].convoluted,
        out_w: padding[1].convoluted,
    };
    rule_if!(geometry.out_h > 0 && geometry.out_w > 0 && geometry.stride_h * geometry.stride_w > 0);
    let kernel = kernel.cast_to::<f32>()?;
    let kernel = kernel.try_as_plain_ram()?;
    let kernel = kernel.as_slice::<f32>()?;
    let taps = geometry.taps();
    rule_if!(kernel.len() == c * taps);
    // OIHW [c, 1, kh, kw] to tap-major [kh * kw, c].
    let mut tap_major = vec![0f32; c * taps];
    for (ch, filter) in kernel.chunks_exact(taps).enumerate() {
        for (t, w) in filter.iter().enumerate() {
            tap_major[t * c + ch] = *w;
        }
    }
    let bias = bias.cast_to::<f32>()?;
    let bias = bias.try_as_plain_ram()?;
    let bias = bias.as_slice::<f32>()?;
    let bias = match bias.len() {
        1 => vec![bias[0]; c],
        n if n == c => bias.to_vec(),
        _ => return Ok(None),
    };
    let mut patch = TypedModelPatch::default();
    let input = patch.tap_model(model, node.inputs[0])?;
    let taps = patch.add_const(
        format!("{name}.taps"),
        Tensor::from_shape(&[geometry.taps(), c], &tap_major)?,
    )?;
    let bias = patch.add_const(format!("{name}.bias"), Tensor::from_shape(&[c], &bias)?)?;
    let op = FastDepthwise {
        geometry,
        clamp: None,
    };
    let out = patch.wire_node(name, op, &[input, taps, bias])?;
    patch.shunt_outside(model, node.id.into(), out[0])?;
    Ok(Some(patch))
}

/// Folds a `Max` and/or `Min` with a constant that follow the operator into its clamp.
fn clamp_rule(
    _ctx: &(),
    model: &TypedModel,
    node: &TypedNode,
    name: &str,
    op: &FastDepthwise,
) -> TractResult<Option<TypedModelPatch>> {
    rule_if!(op.clamp.is_none());
    let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
    let mut last = node;
    while let Some(next) = model.single_succ(last.id)? {
        if model.outputs.contains(&OutletId::new(last.id, 0)) {
            break;
        }
        match bound(model, next, last.id)? {
            Some(Bound::Lower(v)) if lo == f32::NEG_INFINITY => lo = v,
            Some(Bound::Upper(v)) if hi == f32::INFINITY => hi = v,
            _ => break,
        }
        last = next;
    }
    // With lo > hi the order of max and min would matter; the kernel applies max first.
    rule_if!(last.id != node.id && lo <= hi);
    let mut patch = TypedModelPatch::default();
    let inputs: TVec<OutletId> = node
        .inputs
        .iter()
        .map(|i| patch.tap_model(model, *i))
        .collect::<TractResult<_>>()?;
    let fused = FastDepthwise {
        geometry: op.geometry,
        clamp: Some(Clamp::new(lo, hi)),
    };
    let out = patch.wire_node(name, fused, &inputs)?;
    patch.shunt_outside(model, last.id.into(), out[0])?;
    Ok(Some(patch))
}

enum Bound {
    Lower(f32),
    Upper(f32),
}

/// What `node` does to the output of `from` when it is `max(x, c)` or `min(x, c)` with one
/// constant `c` that leaves the shape as it is.
fn bound(model: &TypedModel, node: &TypedNode, from: usize) -> TractResult<Option<Bound>> {
    let Some(bin) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if node.inputs.len() != 2 || node.inputs.iter().filter(|i| i.node == from).count() != 1 {
        return Ok(None);
    }
    let other = node
        .inputs
        .iter()
        .find(|i| i.node != from)
        .expect("two inputs");
    let x = model.outlet_fact(OutletId::new(from, 0))?;
    let c = model.outlet_fact(*other)?;
    let y = model.outlet_fact(OutletId::new(node.id, 0))?;
    let konst = match &c.konst {
        Some(k) if k.is_uniform() && y.shape == x.shape && y.datum_type == f32::datum_type() => {
            k.cast_to_scalar::<f32>()?
        }
        _ => return Ok(None),
    };
    Ok(if bin.0.is::<Max>() {
        Some(Bound::Lower(konst))
    } else if bin.0.is::<Min>() {
        Some(Bound::Upper(konst))
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_nnef::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    /// One depthwise convolution, 5x5 stride 2 as in EfficientNet-Lite, with the given padding.
    fn model(channels: usize, padding: PaddingSpec) -> TypedModel {
        model_then(channels, padding, &[])
    }

    /// [`model`] followed by `max(x, c)` (true) or `min(x, c)` (false) with each constant.
    fn model_then(channels: usize, padding: PaddingSpec, bounds: &[(bool, f32)]) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model
            .add_source("x", f32::fact([1, channels, 13, 10]))
            .unwrap();
        let kernel: Vec<f32> = (0..channels * 25)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let bias: Vec<f32> = (0..channels).map(|i| i as f32 * 0.1 - 0.5).collect();
        let k = model
            .add_const(
                "k",
                Tensor::from_shape(&[channels, 1, 5, 5], &kernel).unwrap(),
            )
            .unwrap();
        let b = model
            .add_const("b", Tensor::from_shape(&[channels], &bias).unwrap())
            .unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec!(5, 5),
            padding,
            dilations: None,
            strides: Some(tvec!(2, 2)),
            input_channels: channels,
            output_channels: channels,
        };
        let conv = Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: channels,
            q_params: None,
        };
        let mut out = model.wire_node("dw", conv, &[x, k, b]).unwrap();
        for (i, &(is_max, c)) in bounds.iter().enumerate() {
            let c = model
                .add_const(format!("c{i}"), tensor4(&[[[[c]]]]))
                .unwrap();
            let op = if is_max {
                tract_nnef::tract_core::ops::math::max()
            } else {
                tract_nnef::tract_core::ops::math::min()
            };
            out = model
                .wire_node(format!("bound{i}"), op, &[out[0], c])
                .unwrap();
        }
        model.select_output_outlets(&out).unwrap();
        model
    }

    fn run(model: TypedModel, input: &Tensor) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    /// Every output within 1e-4 of tract's.
    fn assert_close(got: &[f32], expected: &[f32], case: &str) {
        assert_eq!(got.len(), expected.len(), "{case}");
        for (a, b) in got.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{case}: {a} vs {b}");
        }
    }

    #[test]
    fn the_rewritten_graph_computes_what_tract_computes() {
        for padding in [
            PaddingSpec::SameUpper,
            PaddingSpec::Valid,
            PaddingSpec::ExplicitOnnxPool(tvec!(1, 2), tvec!(2, 1), false),
        ] {
            let channels = 19;
            let values: Vec<f32> = (0..channels * 130)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let input = Tensor::from_shape(&[1, channels, 13, 10], &values).unwrap();
            let expected = run(model(channels, padding.clone()), &input);
            let mut rewritten = model(channels, padding.clone());
            assert_eq!(rewrite(&mut rewritten).unwrap(), 1, "{padding:?}");
            assert_close(&run(rewritten, &input), &expected, &format!("{padding:?}"));
        }
    }

    #[test]
    fn a_following_relu6_is_folded_in_and_computes_what_tract_computes() {
        let channels = 7;
        let values: Vec<f32> = (0..channels * 130)
            .map(|i| (i as f32 * 0.23).sin() * 9.0)
            .collect();
        let input = Tensor::from_shape(&[1, channels, 13, 10], &values).unwrap();
        let relu6 = [(true, 0.0), (false, 6.0)];
        // ReLU6, a lone upper bound, and a second max that stays tract's.
        let cases: [(&[(bool, f32)], usize); 3] = [
            (&relu6, 0),
            (&relu6[1..], 0),
            (&[(true, 0.0), (true, 1.0)], 1),
        ];
        for (bounds, left) in cases {
            let expected = run(model_then(channels, PaddingSpec::SameUpper, bounds), &input);
            assert!(expected.contains(&6.0) || bounds.len() > 1);
            let mut rewritten = model_then(channels, PaddingSpec::SameUpper, bounds);
            assert_eq!(rewrite(&mut rewritten).unwrap(), 1);
            let binary_ops = rewritten
                .nodes()
                .iter()
                .filter(|n| n.op_is::<TypedBinOp>())
                .count();
            assert_eq!(binary_ops, left, "{bounds:?}");
            assert_close(&run(rewritten, &input), &expected, &format!("{bounds:?}"));
        }
    }

    #[test]
    fn a_quantized_convolution_is_left_alone() {
        let mut m = model(4, PaddingSpec::Valid);
        let dw = m.node_by_name("dw").unwrap().id;
        let conv = m.node_mut(dw).op_as_mut::<Conv>().unwrap();
        conv.q_params = Some(i8::datum_type());
        assert_eq!(rewrite(&mut m).unwrap(), 0);
    }
}
