//! The model card, `<model>.json` beside `<model>.onnx`: one type that every command reads and
//! writes. `export` writes the model part; `calibrate`, `quantize` and `station` add their
//! sections; `report` reads it all. Each writer loads the whole card, changes its part and writes
//! it back atomically, so no command drops what another wrote, and fields this version does not
//! know are kept as they are.

use crate::eval::compare::Comparison;
use crate::eval::runner::StationScores;
use crate::onnx::quantize::QuantSettings;
use crate::onnx::temperature::TemperatureScaling;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Everything about one shipped model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    #[serde(flatten)]
    pub model: ExportedModel,
    /// Temperature folded into the head (`training calibrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<TemperatureSection>,
    /// The QLinearConv int8 model (`training quantize --form qlinear`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8Section>,
    /// The QDQ int8 model (`training quantize --form qdq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_qdq: Option<Int8Section>,
    /// Station-frame figures (`training station`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<StationSection>,
    /// Extra heads' figures (`training heads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<HeadsSection>,
    /// Real-photo figures (`training real`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealSection>,
    /// Fields this version does not know, kept through every rewrite.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// What `export` writes: the model file, how it was trained, its catalogue metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedModel {
    pub name: String,
    pub version: String,
    pub onnx: String,
    pub onnx_bytes: usize,
    pub onnx_sha256: String,
    pub label_column: String,
    pub labels: Vec<String>,
    pub arch: Network,
    pub params: u64,
    pub flops_per_image: u64,
    pub receptive_field_px: usize,
    pub training: TrainingSummary,
    pub split: SplitSummary,
    pub metrics: crate::eval::metrics::SplitMetrics,
    pub export_check: crate::onnx::export::ExportCheck,
    /// Commands that reproduce this file, in order.
    pub reproduce: Vec<String>,
}

/// The network behind a card: one of our CNNs (model.rs), or the pretrained backbone
/// fine-tuned (`training lite`). Untagged, so the CNN cards read and write as they always have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Network {
    Cnn(crate::model::Arch),
    Lite(LiteNetwork),
}

/// A fine-tuned EfficientNet-Lite0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiteNetwork {
    /// Where the pretrained weights come from.
    pub backbone: String,
    /// Size (h, w) the 80x60 input is enlarged to inside the network (80x60: not enlarged).
    pub input: (usize, usize),
    /// Leading blocks kept at their pretrained weights.
    pub frozen_blocks: usize,
    pub dropout: f64,
    pub outputs: usize,
}

impl Network {
    /// The CNN's architecture, when it is one.
    pub fn cnn(&self) -> Option<&crate::model::Arch> {
        match self {
            Network::Cnn(a) => Some(a),
            Network::Lite(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Network::Cnn(a) => a.describe(),
            Network::Lite(l) => format!(
                "{} at {}x{}, first {} blocks frozen",
                l.backbone, l.input.0, l.input.1, l.frozen_blocks
            ),
        }
    }

    pub fn dropout(&self) -> f64 {
        match self {
            Network::Cnn(a) => a.dropout,
            Network::Lite(l) => l.dropout,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub epochs: usize,
    pub best_epoch: usize,
    #[serde(flatten)]
    pub recipe: crate::fit::Recipe,
    pub train_seconds: f64,
    /// Median over epochs of training images per second on the machine that trained it.
    pub images_per_s: f64,
    pub skipped_corrupt_images: usize,
    pub machine: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitSummary {
    pub file: String,
    pub sha256: String,
    pub seed: u64,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub duplicate_groups: usize,
}

impl SplitSummary {
    /// The split loaded from `file`, as a card records it.
    pub fn of(split: &crate::data::split::Split, file: &Path) -> Result<Self> {
        Ok(Self {
            file: file.display().to_string(),
            sha256: crate::data::split::Split::file_hash(file)?,
            seed: split.seed,
            train: split.train.len(),
            val: split.val.len(),
            test: split.test.len(),
            duplicate_groups: split.duplicate_groups,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemperatureSection {
    #[serde(flatten)]
    pub scaling: TemperatureScaling,
    pub reproduce: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Int8Section {
    pub onnx: String,
    pub onnx_bytes: usize,
    pub onnx_sha256: String,
    pub settings: QuantSettings,
    /// Float and int8 side by side on val and test.
    pub comparison: Comparison,
    pub reproduce: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StationSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_val: Option<StationScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_test: Option<StationScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_val: Option<StationScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_test: Option<StationScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduce: Option<String>,
}

/// Real photos (eval::real), float and int8, on real-val and real-train.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealSection {
    /// The sender split the parts come from (its file and labels hash).
    pub split: String,
    pub split_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_val: Option<crate::eval::real::RealScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_train: Option<crate::eval::real::RealScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_val: Option<crate::eval::real::RealScores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_train: Option<crate::eval::real::RealScores>,
    /// The real-val confusion picture (float), groups against the model's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<String>,
    pub reproduce: String,
}

/// Per extra head, accuracy and macro-F1 on the test split's catalogue photos and station frames
/// (`training heads`), float and int8.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeadsSection {
    pub float: Vec<crate::eval::heads::HeadScore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub int8: Vec<crate::eval::heads::HeadScore>,
    /// The article-type confusion matrix on the test photos (float), a picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article_type_confusion: Option<String>,
    pub reproduce: String,
}

/// Whether `path` is a model card: a JSON file naming its model's `onnx_sha256`, not the
/// `<model>.lite.json` training summary that sits beside a fine-tuned model (split.json,
/// negatives.json and real-split.json are not cards either).
pub fn is_card(path: &Path) -> Result<bool> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if !name.ends_with(".json") || name.ends_with(".lite.json") {
        return Ok(false);
    }
    let v: Value = serde_json::from_slice(&std::fs::read(path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    Ok(v.get("onnx_sha256").is_some())
}

impl ModelCard {
    /// Where the card of the model file `onnx` lives.
    pub fn path_for(onnx: &Path) -> PathBuf {
        onnx.with_extension("json")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a model card", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::write_json(path, self)
    }

    /// A fresh export's card. Sections the other commands wrote into `previous` survive when the
    /// model file is the same (same SHA-256); for a changed model they would describe files and
    /// figures of the old one, so they are dropped and the commands to redo are returned.
    pub fn exported(
        model: ExportedModel,
        previous: Option<ModelCard>,
    ) -> (Self, Vec<&'static str>) {
        let mut card = ModelCard {
            model,
            temperature: None,
            int8: None,
            int8_qdq: None,
            station: None,
            heads: None,
            real: None,
            other: Map::new(),
        };
        let mut redo = vec![];
        if let Some(old) = previous {
            if old.model.onnx_sha256 == card.model.onnx_sha256 {
                card.temperature = old.temperature;
                card.int8 = old.int8;
                card.int8_qdq = old.int8_qdq;
                card.station = old.station;
                card.heads = old.heads;
                card.real = old.real;
                card.other = old.other;
            } else {
                for (had, command) in [
                    (old.temperature.is_some(), "calibrate"),
                    (old.int8.is_some() || old.int8_qdq.is_some(), "quantize"),
                    (old.station.is_some(), "station"),
                    (old.heads.is_some(), "heads"),
                    (old.real.is_some(), "real"),
                ] {
                    if had {
                        redo.push(command);
                    }
                }
            }
        }
        (card, redo)
    }
}

/// Loads the card of the model file `onnx`, lets `change` edit it and writes it back atomically.
/// `Ok(None)` when the model has no card.
pub fn update(onnx: &Path, change: impl FnOnce(&mut ModelCard)) -> Result<Option<PathBuf>> {
    let path = ModelCard::path_for(onnx);
    if !path.is_file() {
        return Ok(None);
    }
    let mut card = ModelCard::load(&path)?;
    change(&mut card);
    card.save(&path)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_cards() -> Vec<PathBuf> {
        // Every card under models/.
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let mut cards: Vec<PathBuf> = std::fs::read_dir(&models)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| is_card(p).unwrap())
            .collect();
        cards.sort();
        assert!(
            !cards.is_empty(),
            "no model cards under {}",
            models.display()
        );
        cards
    }

    /// The first value of `original` that `back` lost or changed (fields `back` adds, such as
    /// defaults newer versions write, are fine; numbers equal at f32 precision): a readable
    /// failure instead of two whole cards.
    fn lost_or_changed(original: &Value, back: &Value, at: &str) -> Option<String> {
        match (original, back) {
            (Value::Object(x), Value::Object(y)) => x.iter().find_map(|(k, u)| match y.get(k) {
                Some(v) => lost_or_changed(u, v, &format!("{at}.{k}")),
                None => Some(format!("{at}.{k} lost")),
            }),
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (u, v))| lost_or_changed(u, v, &format!("{at}[{i}]"))),
            // f32 fields (thresholds, scales) were written in either of their decimal forms.
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                ((x - y).abs() > 1e-7 * x.abs().max(y.abs()))
                    .then(|| format!("{at}: {original} became {back}"))
            }
            _ => (original != back).then(|| format!("{at}: {original} became {back}")),
        }
    }

    #[test]
    fn every_committed_card_reads_and_writes_back_without_losing_a_value() {
        for path in committed_cards() {
            let original: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let card = ModelCard::load(&path).unwrap();
            assert!(
                card.other.is_empty(),
                "{}: unknown fields {:?}",
                path.display(),
                card.other.keys()
            );
            // As `save` writes it.
            let back: Value = serde_json::from_slice(&serde_json::to_vec(&card).unwrap()).unwrap();
            let diff = lost_or_changed(&original, &back, "");
            assert_eq!(diff, None, "{}", path.display());
        }
    }

    #[test]
    fn sections_and_unknown_fields_survive_a_rewrite_and_a_re_export() {
        let dir = tempfile::tempdir().unwrap();
        let source = committed_cards()
            .into_iter()
            .find(|p| ModelCard::load(p).unwrap().int8.is_some())
            .expect("a committed card with an int8 section");
        let mut card = ModelCard::load(&source).unwrap();
        card.other.insert("added_later".into(), Value::from(7));
        let onnx = dir.path().join("m.onnx");
        card.save(&ModelCard::path_for(&onnx)).unwrap();

        // A command that writes its own section (here: station) keeps everything else.
        update(&onnx, |c| c.station = Some(StationSection::default())).unwrap();
        let after = ModelCard::load(&ModelCard::path_for(&onnx)).unwrap();
        assert!(after.int8.is_some() && after.station.is_some());
        assert_eq!(after.other["added_later"], 7);

        // Re-exporting the same model keeps the sections; a changed model drops them and says
        // which commands to run again.
        let (same, redo) = ModelCard::exported(card.model.clone(), Some(after.clone()));
        assert!(redo.is_empty());
        assert!(same.int8.is_some() && same.station.is_some());
        assert_eq!(same.other["added_later"], 7);
        let mut changed = card.model.clone();
        changed.onnx_sha256 = "0".repeat(64);
        let (fresh, redo) = ModelCard::exported(changed, Some(after));
        assert!(fresh.int8.is_none() && fresh.station.is_none());
        assert!(
            redo.contains(&"quantize") && redo.contains(&"station"),
            "{redo:?}"
        );

        // No card: nothing is written.
        assert!(update(&dir.path().join("other.onnx"), |_| {})
            .unwrap()
            .is_none());
    }
}
