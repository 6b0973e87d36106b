//! `tag convert MODEL.onnx [OUT.nnef.tgz]`: the NNEF form the station binary runs.

use std::path::PathBuf;
use tagger::error::Error;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  tag convert models/lite0-distilled-112-e16-seed2.onnx     writes models/lite0-distilled-112-e16-seed2.nnef.tgz
  tag convert my.onnx /srv/station/model.nnef.tgz

The NNEF file carries the same labels and preprocessing and is checked to give the same outputs
(tract, blank and noise images) before it is written. Station builds of `tag` (no ONNX parser)
run only this form.")]
pub struct ConvertArgs {
    /// The exported ONNX model.
    model: PathBuf,
    /// Where to write the NNEF form (default: MODEL with .onnx replaced by .nnef.tgz).
    out: Option<PathBuf>,
}

pub fn run(args: ConvertArgs) -> Result<(), Error> {
    let out = args
        .out
        .unwrap_or_else(|| tagger::convert::default_out(&args.model));
    let c = tagger::convert::to_nnef(&args.model, &out).map_err(Error::Model)?;
    println!(
        "{} -> {}: {:.1} MB -> {:.1} MB, outputs agree within {:.1e} on {} probe images",
        args.model.display(),
        c.out.display(),
        c.onnx_bytes as f64 / 1e6,
        c.nnef_bytes as f64 / 1e6,
        c.max_abs_diff,
        c.images
    );
    Ok(())
}
