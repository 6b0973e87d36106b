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
/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
        let gzip = bytes.starts_with(&GZIP_MAGIC);
        let tar = bytes.get(257..262) == Some(b"ustar".as_slice());
        if gzip || tar {
            Format::Nnef
        } else {
            Format::Onnx
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
    let tar = bounded_tar(bytes)?;
    nnef()
        .model_for_read(&mut Cursor::new(&tar[..]))
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

/// The archive as a plain tar, checked before tract reads it: tract-nnef inflates every entry
/// and allocates each weight tensor from the shape its `.dat` header declares before reading
/// it, so a few hostile bytes could ask for gigabytes. Here the inflated archive stays within
/// [`MAX_MODEL_BYTES`](crate::limits::MAX_MODEL_BYTES) and every tensor must hold the bytes
/// its header declares, at most [`MAX_TENSOR_BYTES`](crate::limits::MAX_TENSOR_BYTES).
fn bounded_tar(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    use std::io::Read;
    let limit = crate::limits::MAX_MODEL_BYTES;
    let tar = if bytes.starts_with(&GZIP_MAGIC) {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut tar)
            .map_err(|e| anyhow!("not a loadable NNEF model: its gzip stream is broken ({e})"))?;
        if tar.len() as u64 > limit {
            bail!(
                "NNEF model expands past {} MiB: not a model this tagger can run",
                limit >> 20
            );
        }
        std::borrow::Cow::Owned(tar)
    } else {
        std::borrow::Cow::Borrowed(bytes)
    };
    let mut archive = tar::Archive::new(&tar[..]);
    let entries = archive
        .entries()
        .map_err(|e| anyhow!("not a loadable NNEF model: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| anyhow!("not a loadable NNEF model: {e}"))?;
        let path = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !path.ends_with(".dat") {
            continue;
        }
        let mut header = [0u8; 128];
        let held = entry.size().saturating_sub(128);
        entry
            .read_exact(&mut header)
            .map_err(|_| anyhow!("NNEF tensor {path} is shorter than its 128-byte header"))?;
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap()) as u128;
        let rank = word(8) as usize;
        if rank > 8 {
            bail!("NNEF tensor {path} declares rank {rank} (at most 8)");
        }
        let items: u128 = (0..rank).map(|i| word(12 + 4 * i)).product();
        let declared = (items * word(44)).div_ceil(8);
        if declared > held as u128 || declared > crate::limits::MAX_TENSOR_BYTES as u128 {
            bail!(
                "NNEF tensor {path} declares {declared} bytes but holds {held}: not a model this \
                 tagger can run"
            );
        }
    }
    Ok(tar)
}

/// The self-description of a model file of either format, without optimising it for a run.
pub fn read_info(bytes: &[u8]) -> Result<ModelInfo> {
    match Format::sniff(bytes) {
        Format::Nnef => {
            let tar = bounded_tar(bytes)?;
            let model = nnef()
                .model_for_read(&mut Cursor::new(&tar[..]))
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

    /// A tar holding one `.dat` entry with this header and `data` after it.
    fn archive_with_tensor(dims: &[u32], bits: u32, data: usize) -> Vec<u8> {
        let mut dat = vec![0u8; 128 + data];
        dat[..2].copy_from_slice(&[0x4e, 0xef]);
        dat[8..12].copy_from_slice(&(dims.len() as u32).to_le_bytes());
        for (i, d) in dims.iter().enumerate() {
            dat[12 + 4 * i..16 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        dat[44..48].copy_from_slice(&bits.to_le_bytes());
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(dat.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, "w.dat", &dat[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn a_tensor_must_hold_what_its_header_declares() {
        assert!(bounded_tar(&archive_with_tensor(&[2, 3], 32, 24)).is_ok());
        let err = bounded_tar(&archive_with_tensor(&[65536, 65536, 64], 32, 24))
            .unwrap_err()
            .to_string();
        assert!(err.contains("w.dat") && err.contains("holds 24"), "{err}");
        let err = typed_model(&archive_with_tensor(&[1; 9], 8, 1)).unwrap_err();
        assert!(err.to_string().contains("rank 9"), "{err}");
    }

    #[test]
    fn a_gzip_bomb_is_refused_before_tract_sees_it() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=(crate::limits::MAX_MODEL_BYTES >> 20) {
            std::io::Write::write_all(&mut gz, &zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let err = typed_model(&bomb).unwrap_err().to_string();
        assert!(err.contains("expands past"), "{err}");
    }

    #[test]
    fn a_broken_archive_is_an_nnef_error() {
        let err = typed_model(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err().to_string();
        assert!(err.contains("NNEF"), "{err}");
    }
}
