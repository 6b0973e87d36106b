//! What a model file says about itself, stored in the ONNX `metadata_props`. The exporter and
//! the runtime both use these keys, so a model is self-describing: `tag --model any.onnx`
//! needs nothing else.

use crate::preprocess::{Normalization, HEIGHT, WIDTH};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const KEY_LABELS: &str = "labels";
pub const KEY_LABEL_COLUMN: &str = "label_column";
pub const KEY_MODEL_NAME: &str = "model_name";
pub const KEY_MODEL_VERSION: &str = "model_version";
pub const KEY_INPUT_SIZE: &str = "input_size";
pub const KEY_NORMALIZATION: &str = "normalization";
pub const KEY_PREPROCESSING: &str = "preprocessing";
pub const KEY_QUANTIZATION: &str = "quantization";
/// Extra output heads: JSON `[{"name": "articleType", "labels": [...]}, ...]`, one ONNX output
/// each, named like the head, after `logits`. Absent for single-head models.
pub const KEY_HEADS: &str = "heads";
/// Name of the network input, `[N, 3, 80, 60]` f32.
pub const INPUT_NAME: &str = "image";
/// Name of the network output, `[N, classes]` f32 logits.
pub const OUTPUT_NAME: &str = "logits";
/// Human description of the preprocessing, so other runtimes can reproduce it.
pub const PREPROCESSING_DOC: &str = "decode -> RGB (grey replicated) -> fit into 60x80 \
    (WxH) keeping aspect, white padding, bilinear (triangle) resize -> CHW -> (x/255-mean)/std";

/// Self-description of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Class names in output order.
    pub labels: Vec<String>,
    /// The styles.csv column the labels come from.
    pub label_column: String,
    pub name: String,
    pub version: String,
    pub normalization: Normalization,
    /// JSON description of the int8 quantization, absent for float models.
    pub quantization: Option<String>,
    /// Extra heads (article type, colour, ...), in output order after `logits`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<HeadInfo>,
}

/// One extra output of a multi-head model: its name (also the ONNX output name) and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    pub name: String,
    pub labels: Vec<String>,
}

/// Why a model's metadata cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("model has no `{0}` metadata: export it with `training export` (labels and preprocessing travel inside the ONNX file)")]
    Missing(&'static str),
    #[error("model metadata `{key}` is malformed ({reason})")]
    Malformed { key: &'static str, reason: String },
}

impl ModelInfo {
    /// Key/value pairs for `metadata_props`.
    pub fn to_props(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(
            KEY_LABELS.into(),
            serde_json::to_string(&self.labels).expect("labels serialise"),
        );
        m.insert(KEY_LABEL_COLUMN.into(), self.label_column.clone());
        m.insert(KEY_MODEL_NAME.into(), self.name.clone());
        m.insert(KEY_MODEL_VERSION.into(), self.version.clone());
        m.insert(KEY_INPUT_SIZE.into(), format!("3x{HEIGHT}x{WIDTH}"));
        m.insert(
            KEY_NORMALIZATION.into(),
            serde_json::to_string(&self.normalization).expect("normalisation serialises"),
        );
        m.insert(KEY_PREPROCESSING.into(), PREPROCESSING_DOC.into());
        if let Some(q) = &self.quantization {
            m.insert(KEY_QUANTIZATION.into(), q.clone());
        }
        if !self.heads.is_empty() {
            m.insert(
                KEY_HEADS.into(),
                serde_json::to_string(&self.heads).expect("heads serialise"),
            );
        }
        m
    }

    /// Reads the pairs written by [`ModelInfo::to_props`], checking what the runtime relies on.
    pub fn from_props(get: impl Fn(&str) -> Option<String>) -> Result<Self, MetadataError> {
        let labels_raw = get(KEY_LABELS).ok_or(MetadataError::Missing(KEY_LABELS))?;
        let labels: Vec<String> =
            serde_json::from_str(&labels_raw).map_err(|e| MetadataError::Malformed {
                key: KEY_LABELS,
                reason: format!("expected a JSON array of strings: {e}"),
            })?;
        if labels.is_empty() {
            return Err(MetadataError::Malformed {
                key: KEY_LABELS,
                reason: "no labels".into(),
            });
        }
        let expected_size = format!("3x{HEIGHT}x{WIDTH}");
        match get(KEY_INPUT_SIZE) {
            Some(s) if s == expected_size => {}
            Some(s) => {
                return Err(MetadataError::Malformed {
                    key: KEY_INPUT_SIZE,
                    reason: format!("model was trained on {s}, this tagger feeds {expected_size}"),
                })
            }
            None => return Err(MetadataError::Missing(KEY_INPUT_SIZE)),
        }
        let normalization: crate::preprocess::Normalization = match get(KEY_NORMALIZATION) {
            Some(s) => serde_json::from_str(&s).map_err(|e| MetadataError::Malformed {
                key: KEY_NORMALIZATION,
                reason: e.to_string(),
            })?,
            None => return Err(MetadataError::Missing(KEY_NORMALIZATION)),
        };
        // std 0 would divide every pixel by zero: all inputs become NaN or infinity.
        let n = &normalization;
        if n.mean.iter().chain(&n.std).any(|v| !v.is_finite())
            || n.std.iter().any(|&s| s.abs() < 1e-6)
        {
            return Err(MetadataError::Malformed {
                key: KEY_NORMALIZATION,
                reason: format!(
                    "mean {:?} / std {:?}: every value must be finite and std above 0",
                    n.mean, n.std
                ),
            });
        }
        let heads: Vec<HeadInfo> = match get(KEY_HEADS) {
            Some(s) => serde_json::from_str(&s).map_err(|e| MetadataError::Malformed {
                key: KEY_HEADS,
                reason: format!("expected [{{\"name\": ..., \"labels\": [...]}}, ...]: {e}"),
            })?,
            None => vec![],
        };
        for (i, h) in heads.iter().enumerate() {
            let bad = |reason: String| MetadataError::Malformed {
                key: KEY_HEADS,
                reason,
            };
            if h.name.is_empty() || h.name == OUTPUT_NAME || h.name == INPUT_NAME {
                return Err(bad(format!("head {i} has the name `{}`", h.name)));
            }
            if h.labels.is_empty() {
                return Err(bad(format!("head `{}` has no labels", h.name)));
            }
            if heads[..i].iter().any(|o| o.name == h.name) {
                return Err(bad(format!("two heads are named `{}`", h.name)));
            }
        }
        Ok(Self {
            labels,
            heads,
            label_column: get(KEY_LABEL_COLUMN).unwrap_or_else(|| "subCategory".into()),
            name: get(KEY_MODEL_NAME).unwrap_or_else(|| "unnamed".into()),
            version: get(KEY_MODEL_VERSION).unwrap_or_else(|| "unknown".into()),
            normalization,
            quantization: get(KEY_QUANTIZATION),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            labels: vec!["Shoes".into(), "Bags".into()],
            label_column: "subCategory".into(),
            name: "baseline".into(),
            version: "1".into(),
            normalization: Normalization::default(),
            quantization: None,
            heads: vec![],
        }
    }

    #[test]
    fn props_round_trip() {
        let props = info().to_props();
        let back = ModelInfo::from_props(|k| props.get(k).cloned()).unwrap();
        assert_eq!(back, info());
    }

    #[test]
    fn missing_labels_is_a_clear_error() {
        let mut props = info().to_props();
        props.remove(KEY_LABELS);
        let err = ModelInfo::from_props(|k| props.get(k).cloned()).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }

    #[test]
    fn heads_round_trip_and_bad_ones_are_refused() {
        let multi = ModelInfo {
            heads: vec![
                HeadInfo {
                    name: "articleType".into(),
                    labels: vec!["Tshirts".into(), "other".into()],
                },
                HeadInfo {
                    name: "gender".into(),
                    labels: vec!["Men".into(), "Women".into()],
                },
            ],
            ..info()
        };
        let props = multi.to_props();
        assert!(
            !info().to_props().contains_key(KEY_HEADS),
            "single-head models unchanged"
        );
        assert_eq!(
            ModelInfo::from_props(|k| props.get(k).cloned()).unwrap(),
            multi
        );
        for bad in [
            r#"[{"name": "logits", "labels": ["a"]}]"#,
            r#"[{"name": "x", "labels": []}]"#,
            r#"[{"name": "x", "labels": ["a"]}, {"name": "x", "labels": ["b"]}]"#,
            r#"{"name": "x"}"#,
        ] {
            let mut p = props.clone();
            p.insert(KEY_HEADS.into(), bad.into());
            let err = ModelInfo::from_props(|k| p.get(k).cloned()).unwrap_err();
            assert!(err.to_string().contains("heads"), "{bad}: {err}");
        }
    }

    #[test]
    fn wrong_input_size_is_rejected() {
        let mut props = info().to_props();
        props.insert(KEY_INPUT_SIZE.into(), "3x224x224".into());
        assert!(ModelInfo::from_props(|k| props.get(k).cloned()).is_err());
    }
}
