//! What every subcommand shares: the model options, their parsers, and the stop signal.

use std::path::PathBuf;
use tagger::backend::BackendKind;
use tagger::limits;
use tagger::model::Model;

#[derive(clap::Args)]
pub struct ModelArgs {
    /// ONNX model exported by the training crate (default: the model built into `tag`).
    #[arg(long, global = true)]
    pub model: Option<PathBuf>,
    /// Inference backend: tract (pure Rust) or ort (onnxruntime: a build with `--features ort`
    /// and ORT_DYLIB_PATH naming libonnxruntime.so) [default: tract].
    #[arg(long, global = true, value_parser = backend_parser())]
    pub backend: Option<BackendKind>,
    /// Threads for inference, 1 to 64 [default: 1].
    #[arg(long, global = true, value_parser = parse_threads)]
    pub threads: Option<usize>,
}

/// A whole number within limits.rs's range for `name`.
pub fn parse_count(s: &str, name: &str, min: usize, max: usize) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    limits::check_range(name, v, min, max)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    parse_count(s, "--threads", 1, limits::MAX_THREADS)
}

/// `--backend`: the core's names, checked by clap (the core has no clap types).
fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(BackendKind::ALL.map(BackendKind::name)).map(|s| {
        s.parse::<BackendKind>()
            .expect("clap only passes listed names")
    })
}

pub fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let threads = args.threads.unwrap_or(1);
    let backend = args.backend.unwrap_or(BackendKind::Tract);
    let model = match &args.model {
        Some(p) => Model::from_path(p, backend, threads),
        None => tagger::builtin::model(backend, threads),
    }?;
    if let Some(w) = tagger::advice::slow_form(&model) {
        eprintln!("tag: warning: {w}");
    }
    Ok(model)
}

/// A flag that Ctrl-C and SIGTERM set (the one handler for the process); if it cannot be
/// installed, `who` warns what is lost. SIGHUP is left to `tag watch`, which reloads its model.
pub fn stop_on_signals(who: &str, lost: &str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("{who}: warning: cannot catch Ctrl-C/SIGTERM ({e}); {lost}");
        }
    }
    stop
}
