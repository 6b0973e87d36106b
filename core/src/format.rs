//! Model file formats. ONNX is what training exports and what onnxruntime reads; NNEF is tract's
//! own format (a tar, usually gzipped, of `graph.nnef` and one `.dat` file per weight tensor).
//! Every build reads NNEF; only builds with the `onnx` feature link tract's ONNX parser (most of
//! `tag`'s size), so a station binary without it stays small and runs the `.nnef.tgz` form of any
//! exported model. [`onnx_to_nnef`] writes that form from the decluttered graph, and tract keeps
//! the ONNX `metadata_props` as model properties (`onnx.metadata_props.<key>`), so the NNEF file
//! describes itself exactly as the ONNX one does.

use crate::metadata::ModelInfo;
use anyhow::{anyhow, bail, Result};
use std::io::Cursor;
use tract_nnef::prelude::*;

/// Prefix tract gives an ONNX model's `metadata_props` among its properties.
const PROPERTY_PREFIX: &str = "onnx.metadata_props.";

/// How a model file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Onnx,
    Nnef,
}

impl Format {
    /// NNEF archives start with gzip's magic or carry tar's `ustar` mark; anything else is taken
    /// for ONNX (a protobuf has no magic) and its parser says whether it is one.
    pub fn sniff(bytes: &[u8]) -> Format {
        let gzip = bytes.starts_with(&[0x1f, 0x8b]);
        let tar = bytes.get(257..262) == Some(b"ustar".as_slice());
        if gzip || tar {
            Format::Nnef
        } else {
            Format::Onnx
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Onnx => "ONNX",
            Format::Nnef => "NNEF",
        }
    }
}

/// The model as tract's typed, decluttered graph (batch dimension still symbolic for ONNX
/// exports), from either format.
pub fn typed_model(bytes: &[u8]) -> Result<TypedModel> {
    match Format::sniff(bytes) {
        Format::Nnef => nnef_model(bytes),
        Format::Onnx => onnx_model(bytes),
    }
}

/// tract's NNEF framework with the project's registry (int8 quantize/dequantize, nnef_ops).
fn nnef() -> tract_nnef::framework::Nnef {
    tract_nnef::nnef().with_registry(crate::nnef_ops::registry())
}

fn nnef_model(bytes: &[u8]) -> Result<TypedModel> {
    nnef()
        .model_for_read(&mut Cursor::new(bytes))
        .map_err(|e| anyhow!("not a loadable NNEF model: {e:#}"))?
        .into_decluttered()
        .map_err(|e| anyhow!("NNEF model could not be simplified by tract: {e:#}"))
}

#[cfg(feature = "onnx")]
fn onnx_model(bytes: &[u8]) -> Result<TypedModel> {
    use tract_onnx::prelude::InferenceModelExt;
    tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(bytes))
        .map_err(|e| anyhow!("not a loadable ONNX model: {e:#}"))?
        .into_typed()
        .map_err(|e| anyhow!("ONNX model could not be typed by tract: {e:#}"))?
        .into_decluttered()
        .map_err(|e| anyhow!("ONNX model could not be simplified by tract: {e:#}"))
}

#[cfg(not(feature = "onnx"))]
fn onnx_model(_bytes: &[u8]) -> Result<TypedModel> {
    bail!(
        "this `tag` reads NNEF models only (built without the `onnx` feature, as the station \
         build is): convert the ONNX file with `tag convert MODEL.onnx MODEL.nnef.tgz` on a full \
         build, or use a file that is already .nnef.tgz"
    )
}

/// The self-description of a model file of either format, without optimising it for a run.
pub fn read_info(bytes: &[u8]) -> Result<ModelInfo> {
    match Format::sniff(bytes) {
        Format::Nnef => {
            let model = nnef()
                .model_for_read(&mut Cursor::new(bytes))
                .map_err(|e| anyhow!("not a loadable NNEF model: {e:#}"))?;
            info_from_properties(&model)
        }
        Format::Onnx => onnx_info(bytes),
    }
}

#[cfg(feature = "onnx")]
fn onnx_info(bytes: &[u8]) -> Result<ModelInfo> {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut Cursor::new(bytes))
        .map_err(|e| anyhow!("not an ONNX model: {e:#}"))?;
    let props = &proto.metadata_props;
    Ok(ModelInfo::from_props(|k| {
        props.iter().find(|p| p.key == k).map(|p| p.value.clone())
    })?)
}

#[cfg(not(feature = "onnx"))]
fn onnx_info(bytes: &[u8]) -> Result<ModelInfo> {
    onnx_model(bytes).map(|_| unreachable!("onnx_model always fails without the onnx feature"))
}

/// The metadata tract keeps among a model's properties (any model loaded from ONNX or NNEF).
pub fn info_from_properties(model: &TypedModel) -> Result<ModelInfo> {
    Ok(ModelInfo::from_props(|k| {
        model
            .properties
            .get(&format!("{PROPERTY_PREFIX}{k}"))
            .and_then(|t| {
                Some(
                    t.try_as_plain_ram()
                        .ok()?
                        .to_scalar::<String>()
                        .ok()?
                        .clone(),
                )
            })
    })?)
}

/// The NNEF form (gzipped tar) of an ONNX model: its decluttered graph, symbolic batch and
/// metadata kept, bytes reproducible (fixed timestamps). The result loads with [`typed_model`]
/// in every build and gives the same outputs (tests/nnef.rs).
#[cfg(feature = "onnx")]
pub fn onnx_to_nnef(onnx: &[u8]) -> Result<Vec<u8>> {
    if Format::sniff(onnx) != Format::Onnx {
        bail!("the model is NNEF already: nothing to convert");
    }
    let info = onnx_info(onnx)?;
    let model = onnx_model(onnx)?;
    // Written uncompressed first: tract's writer checks each tensor as it goes, and gzip over
    // the whole archive compresses the graph text and the metadata as well as the weights.
    let tar = nnef()
        .write_to_tar_with_config(&model, Vec::new(), false, true)
        .map_err(|e| anyhow!("tract could not write this model as NNEF: {e:#}"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &tar)?;
    let nnef = gz.finish()?;
    // Checked before anyone relies on it: the NNEF file must load and describe itself as before.
    let back = read_info(&nnef).map_err(|e| anyhow!("the NNEF form does not load back: {e:#}"))?;
    if back != info {
        bail!("the NNEF form lost the model's metadata: {back:?} vs {info:?}");
    }
    Ok(nnef)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_gzip_and_tar_as_nnef_and_the_rest_as_onnx() {
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Format::Nnef);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(Format::sniff(&tar), Format::Nnef);
        assert_eq!(Format::sniff(&[0x08, 0x07, 0x12]), Format::Onnx);
        assert_eq!(Format::sniff(&[]), Format::Onnx);
    }

    #[test]
    fn a_broken_archive_is_an_nnef_error() {
        let err = typed_model(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err().to_string();
        assert!(err.contains("NNEF"), "{err}");
    }
}
