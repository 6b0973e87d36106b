//! A classifier that graph.rs exported, read back into plain numbers so it can be fine-tuned
//! again (`training finetune --from model.onnx`): a shipped model is a file, its run folder may be
//! long gone. graph.rs writes one Conv per folded convolution in the backbone's order, the
//! optional enlargement as `resize.rows` / `resize.cols`, and the head as `logits.w` / `logits.b`;
//! this reads exactly that and refuses any other graph. A calibrated model's head had its
//! temperature divided in (onnx/temperature.rs): it is multiplied back, so training starts from
//! the network's own logits.

use super::efficientnet::{Lite, FEATURES};
use crate::onnx::f32_initializer;
use crate::onnx::temperature::KEY_TEMPERATURE;
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use tagger_core::metadata::ModelInfo;
use tagger_core::tract_onnx::pb;
use tagger_core::tract_onnx::prelude::Framework;

/// An exported EfficientNet-Lite0 classifier.
pub struct Classifier {
    /// The backbone with the model's weights (ImageNet's classifier from `base`).
    pub lite: Lite,
    /// Head weights `[1280, outputs]` and bias, temperature undone.
    pub head: (Vec<f32>, Vec<f32>),
    /// The size the 80x60 input is enlarged to, when it is.
    pub resize: Option<(usize, usize)>,
    pub info: ModelInfo,
    /// The temperature the file was calibrated with, if any.
    pub temperature: Option<f32>,
}

/// Reads `bytes` (an ONNX model written by graph.rs's `classifier_bytes`); `base` (the pretrained
/// backbone) gives the shapes every weight must have.
pub fn classifier(bytes: &[u8], base: &Lite) -> Result<Classifier> {
    let proto = tagger_core::tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("not an ONNX model: {e:#}"))?;
    let info = tagger_core::model::read_info(bytes)?;
    let graph = proto.graph.as_ref().context("the model has no graph")?;
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let get = |name: &str| -> Result<Vec<f32>> {
        f32_initializer(
            inits
                .get(name)
                .with_context(|| format!("no initializer {name}"))?,
        )
    };
    let not_lite = "not an EfficientNet-Lite0 classifier exported by `training lite`";
    let convs: Vec<&pb::NodeProto> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
    let mut lite = base.clone();
    ensure!(
        convs.len() == base.convs().count(),
        "{not_lite}: {} convolutions, expected {}",
        convs.len(),
        base.convs().count()
    );
    let mut slots: Vec<&mut super::efficientnet::LiteConv> = vec![&mut lite.stem];
    for b in &mut lite.blocks {
        if let Some(e) = b.expand.as_mut() {
            slots.push(e);
        }
        slots.push(&mut b.depthwise);
        slots.push(&mut b.project);
    }
    slots.push(&mut lite.head);
    for (slot, node) in slots.into_iter().zip(convs) {
        ensure!(node.input.len() == 3, "{not_lite}: a Conv without bias");
        let (w, b) = (get(&node.input[1])?, get(&node.input[2])?);
        if w.len() != slot.w.len() || b.len() != slot.b.len() {
            bail!("{not_lite}: {} has other shapes", node.name);
        }
        (slot.w, slot.b) = (w, b);
    }
    let (mut hw, mut hb) = (get("logits.w")?, get("logits.b")?);
    let outputs = info.labels.len();
    ensure!(
        hw.len() == FEATURES * outputs && hb.len() == outputs,
        "{not_lite}: its head does not match its {outputs} labels"
    );
    let temperature = proto
        .metadata_props
        .iter()
        .find(|p| p.key == KEY_TEMPERATURE)
        .map(|p| p.value.parse::<f32>())
        .transpose()
        .context("the temperature in the metadata is not a number")?;
    if let Some(t) = temperature {
        hw.iter_mut().chain(hb.iter_mut()).for_each(|v| *v *= t);
    }
    let resize = match inits.get("resize.rows") {
        Some(rows) => {
            let cols = inits.get("resize.cols").context("resize.cols missing")?;
            ensure!(rows.dims.len() == 2 && cols.dims.len() == 2, "{not_lite}");
            Some((rows.dims[0] as usize, cols.dims[1] as usize))
        }
        None => None,
    };
    Ok(Classifier {
        lite,
        head: (hw, hb),
        resize,
        info,
        temperature,
    })
}
