//! Fine-tuning a shipped classifier on a station's labelled photos (data/station_photos.rs): the
//! photos join the station recipe's pool (lite.rs) in a fixed share of every epoch, so the classes
//! the station did not show are not forgotten; the model before and after is scored the same way
//! (tract, the exported files) on the photos' validation part, on catalogue test photos and on
//! rendered station frames, and a model that lost more than a margin on catalogue photos is
//! refused.

use crate::data::station_photos::{LabelledPhoto, Layout};
use crate::eval::real::RealScores;
use crate::eval::runner::{logits, reported, StationScores};
use crate::fit::lite::{LiteConfig, LiteState};
use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use tagger_core::model::Model;

/// How often each photo is in the pool so that photos make up `share` of it next to `samples`
/// station samples (at least once).
pub fn repeat_for_share(share: f64, samples: usize, photos: usize) -> usize {
    if photos == 0 || share <= 0.0 {
        return 0;
    }
    let share = share.min(0.95);
    ((share * samples as f64) / ((1.0 - share) * photos as f64))
        .ceil()
        .max(1.0) as usize
}

/// Network inputs of photos (`tag`'s preprocessing); unreadable ones are left out, with the reason.
pub fn inputs(photos: &[LabelledPhoto]) -> (Vec<LabelledPhoto>, Vec<Vec<u8>>, Vec<String>) {
    let read: Vec<_> = photos
        .par_iter()
        .map(|p| tagger_core::preprocess::file_to_chw(&p.path))
        .collect();
    let (mut kept, mut x, mut bad) = (vec![], vec![], vec![]);
    for (p, r) in photos.iter().zip(read) {
        match r {
            Ok(i) => {
                kept.push(p.clone());
                x.push(i);
            }
            Err(e) => bad.push(format!("{}: {e:#}", p.path.display())),
        }
    }
    (kept, x, bad)
}

/// A model's figures on labelled photos: a class target is right when it is the top class;
/// another kind (flat target) when the station would not report it.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoScores {
    pub photos: usize,
    pub right: usize,
    pub accuracy: f64,
    /// Per label as written: (photos, right).
    pub per_label: BTreeMap<String, (usize, usize)>,
}

impl PhotoScores {
    /// Scores `logits` (one row of `labels.len()` per photo) against the photos' targets.
    pub fn of(photos: &[LabelledPhoto], logits: &[f32], labels: &[String]) -> Self {
        let mut per_label: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut right = 0;
        for (p, l) in photos.iter().zip(logits.chunks(labels.len())) {
            let ok = match p.target {
                Some(t) => tagger_core::classify::argmax(l) == t,
                None => reported(l, labels).is_none(),
            };
            let e = per_label.entry(p.label.clone()).or_default();
            e.0 += 1;
            e.1 += ok as usize;
            right += ok as usize;
        }
        PhotoScores {
            photos: photos.len(),
            right,
            accuracy: right as f64 / photos.len().max(1) as f64,
            per_label,
        }
    }

    /// Through an exported model.
    pub fn score(model: &Model, photos: &[LabelledPhoto], inputs: &[Vec<u8>]) -> Result<Self> {
        Ok(Self::of(
            photos,
            &logits(model, inputs)?,
            &model.info.labels,
        ))
    }
}

/// One model's figures for the before/after comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The station photos' validation part.
    pub photos_val: PhotoScores,
    /// Catalogue test photos and rendered station frames of them (`training station`'s scorer).
    pub station_test: StationScores,
    /// Real-val, when the photos are a real-photo folder's real-train part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_val: Option<RealScores>,
}

/// The model fine-tuned from.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub path: String,
    pub name: String,
    pub sha256: String,
    /// Its temperature, undone before training (the new model is not calibrated).
    pub temperature: Option<f32>,
}

/// The photos trained and validated on.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoSet {
    pub dir: String,
    pub layout: Layout,
    pub train: usize,
    pub val: usize,
    /// How the validation part was chosen.
    pub val_rule: String,
    /// Labelled photos not used, with why.
    pub left_out: Vec<(String, String)>,
    /// Each training photo's copies in the pool (`--photo-share`).
    pub repeat: usize,
}

/// `<model>.finetune.json`: the card of a fine-tuned model.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneCard {
    pub name: String,
    pub onnx: String,
    pub onnx_sha256: String,
    pub from: Source,
    pub photos: PhotoSet,
    pub config: LiteConfig,
    pub state: LiteState,
    /// Catalogue test photos (and as many rendered frames of each look) the check used.
    pub check_photos: usize,
    pub before: Check,
    pub after: Check,
    /// Largest catalogue test loss (percentage points) a written model may have.
    pub max_catalogue_drop_pp: f64,
    /// Written although it lost more than that (`--allow-worse`).
    pub allowed_worse: bool,
    pub int8: String,
    pub seconds: f64,
    pub machine: String,
    pub reproduce: String,
}

/// Why a fine-tuned model must not be written: it lost more than `max_drop_pp` on catalogue test.
pub fn refusal(before: &Check, after: &Check, max_drop_pp: f64) -> Option<String> {
    let (b, a) = (before.station_test.catalogue, after.station_test.catalogue);
    let drop = (b - a) * 100.0;
    (drop > max_drop_pp).then(|| {
        format!(
            "catalogue test accuracy fell from {:.2}% to {:.2}% ({drop:.2} pp, more than \
             --max-catalogue-drop {max_drop_pp}): the model was not written. Label more photos, \
             lower --photo-share or --lr, or pass --allow-worse to write it anyway",
            b * 100.0,
            a * 100.0
        )
    })
}

/// The before/after table for the terminal and the docs.
pub fn table(before: &Check, after: &Check) -> String {
    let mut rows = vec![
        (
            "station photos (val)",
            before.photos_val.accuracy,
            after.photos_val.accuracy,
        ),
        (
            "catalogue (test)",
            before.station_test.catalogue,
            after.station_test.catalogue,
        ),
        (
            "mirrored (test)",
            before.station_test.mirrored,
            after.station_test.mirrored,
        ),
        (
            "mild (test)",
            before.station_test.mild,
            after.station_test.mild,
        ),
        (
            "hard (test)",
            before.station_test.hard,
            after.station_test.hard,
        ),
        (
            "tray (test)",
            before.station_test.tray,
            after.station_test.tray,
        ),
        (
            "empty named a product",
            before.station_test.empty_as_product,
            after.station_test.empty_as_product,
        ),
    ];
    if let (Some(b), Some(a)) = (&before.real_val, &after.real_val) {
        rows.push(("real-val balanced", b.balanced, a.balanced));
        for g in &b.groups {
            if let Some(ag) = a.group(&g.group) {
                let name: &'static str = match g.group.as_str() {
                    "Topwear" => "real-val Topwear",
                    "Bottomwear" => "real-val Bottomwear",
                    _ => "real-val Footwear",
                };
                rows.push((name, g.accuracy, ag.accuracy));
            }
        }
    }
    let mut out = String::from("| | before | after | change |\n|---|---|---|---|\n");
    for (what, b, a) in rows {
        out.push_str(&format!(
            "| {what} | {:.2}% | {:.2}% | {:+.2} pp |\n",
            b * 100.0,
            a * 100.0,
            (a - b) * 100.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photos_take_their_share_of_the_pool() {
        assert_eq!(repeat_for_share(0.25, 3000, 100), 10);
        assert_eq!(repeat_for_share(0.01, 3000, 1000), 1, "at least once");
        assert_eq!(repeat_for_share(0.0, 3000, 100), 0);
        assert_eq!(repeat_for_share(0.3, 3000, 0), 0);
    }

    #[test]
    fn other_kinds_are_right_when_not_reported() {
        let labels: Vec<String> = ["Shoes", "Topwear", "none"].map(String::from).to_vec();
        let photo = |label: &str, target| LabelledPhoto {
            id: label.into(),
            path: "x".into(),
            label: label.into(),
            target,
            time: String::new(),
        };
        let photos = [
            photo("Shoes", Some(0)),
            photo("Topwear", Some(1)),
            photo("dress", None),
        ];
        // Shoes right, Topwear called Shoes, the dress reported as Topwear with confidence.
        let logits = [5.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 9.0, 0.0];
        let s = PhotoScores::of(&photos, &logits, &labels);
        assert_eq!((s.photos, s.right), (3, 1));
        assert_eq!(s.per_label["Topwear"], (1, 0));
        assert_eq!(s.per_label["dress"], (1, 0));
    }
}
