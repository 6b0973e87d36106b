//! `tag FILES...`: tag image files, folders and stdin in batches.

use crate::shared::{load_model, parse_count, ModelArgs};
use std::io::IsTerminal;
use tagger::error::Error;
use tagger::limits;
use tagger::output::{Format, RecordContext, Writer};
use tagger::tagging::{tag_inputs, TagOptions};

#[derive(clap::Args)]
pub struct TagArgs {
    /// Image files, folders (searched recursively) or `-` for image bytes on stdin.
    pub inputs: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// How many of the best classes to report (1 to the model's number of classes).
    #[arg(long, default_value_t = 1, value_parser = parse_top_k)]
    top_k: usize,
    /// Below this confidence (0..1) the label is `unknown`: the needs-review path.
    #[arg(long, default_value_t = 0.0)]
    threshold: f32,
    /// Multi-head models: below this confidence (0..1) an extra head's label (article type,
    /// colour, gender, usage) is `unknown` and left out of the human line.
    #[arg(long, default_value_t = tagger::classify::HEAD_THRESHOLD)]
    head_threshold: f32,
    /// Images per inference call when tagging many files (1 to 4096).
    #[arg(long, default_value_t = 32, value_parser = parse_batch_size)]
    batch_size: usize,
}

fn parse_top_k(s: &str) -> Result<usize, String> {
    // The model's class count is checked once it is loaded.
    parse_count(s, "--top-k", 1, 1000)
}

fn parse_batch_size(s: &str) -> Result<usize, String> {
    parse_count(s, "--batch-size", 1, limits::MAX_BATCH)
}

pub fn run(args: TagArgs) -> Result<(), Error> {
    if args.inputs.is_empty() {
        return Err(Error::Usage(
            "no input given; name image files, folders or `-` (see tag --help)".into(),
        ));
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        return Err(Error::Usage("--threshold must be between 0 and 1".into()));
    }
    if !(0.0..=1.0).contains(&args.head_threshold) {
        return Err(Error::Usage(
            "--head-threshold must be between 0 and 1".into(),
        ));
    }
    let model = load_model(&args.model).map_err(Error::Model)?;
    if args.top_k > model.classes() {
        return Err(Error::Usage(format!(
            "--top-k {} is more than the model's {} classes",
            args.top_k,
            model.classes()
        )));
    }
    let inputs = tagger::inputs::expand(&args.inputs);
    if inputs.is_empty() {
        return Err(Error::NoInputs(
            "no images found in the given folders (looked for .jpg .jpeg .png .webp .bmp)".into(),
        ));
    }
    let opts = TagOptions {
        top_k: args.top_k,
        threshold: args.threshold,
        head_threshold: args.head_threshold,
        batch_size: args.batch_size,
    };
    let ctx = RecordContext {
        model: &format!("{} v{}", model.info.name, model.info.version),
        backend: model.backend_name(),
    };
    let stdout = std::io::stdout();
    let heads: Vec<String> = model.info.heads.iter().map(|h| h.name.clone()).collect();
    let mut out = Writer::new(stdout.lock(), args.format, &heads).map_err(Error::Output)?;
    let bar = if inputs.len() > 1 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(inputs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (mut failed, mut write_error) = (0usize, None);
    tag_inputs(&model, &inputs, &opts, |r| {
        if r.outcome.is_err() {
            failed += 1;
        }
        bar.suspend(|| {
            if let Err(e) = out.write(&r, &ctx) {
                write_error = Some(e);
            }
        });
        bar.inc(1);
        // Nobody reads any more (`tag photos/ | head -1`, a full disk): stop working.
        if write_error.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(Error::Output(e));
    }
    if failed > 0 {
        return Err(Error::Inputs {
            failed,
            total: inputs.len(),
        });
    }
    Ok(())
}
