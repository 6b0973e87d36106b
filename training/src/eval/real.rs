//! Scoring a model on real photos (data::real_photos) through `tag`'s own path: each photo is
//! read and fitted by `tagger_core::preprocess` and classified by the ONNX file that ships, so the
//! figures are those a user of `tag` gets.
//!
//! Per scored group (Topwear, Bottomwear, Footwear): top-1 accuracy, where any label of the group
//! counts (Shoes, Sandal and Flip Flops for Footwear); the balanced accuracy is their mean, since
//! the groups' shares differ from a warehouse's. Other kinds (dresses, hats) are right when the
//! station would report nothing (below its threshold, or `none`). Ambiguous photos are not scored.

use crate::data::real_photos::{Photo, RealPhotos, AMBIGUOUS, GROUPS, OTHER_KIND};
use crate::eval::runner::{logits, reported};
use anyhow::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tagger_core::classify;
use tagger_core::model::Model;

/// One group's figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    pub group: String,
    pub photos: usize,
    pub right: usize,
    pub accuracy: f64,
}

/// A model's figures on one part of the real photos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealScores {
    /// `val` or `train` (real-val, real-train).
    pub part: String,
    pub groups: Vec<GroupScore>,
    /// Mean of the groups' accuracies.
    pub balanced: f64,
    pub other_kinds: usize,
    /// Share of other-kind photos the station would not report as a product.
    pub others_not_reported: Option<f64>,
    pub ambiguous_not_scored: usize,
    pub unreadable: usize,
    /// Rows: the groups then other kinds; columns: the model's labels (top-1 counts).
    pub confusion_rows: Vec<String>,
    pub confusion: Vec<Vec<usize>>,
}

impl RealScores {
    pub fn group(&self, name: &str) -> Option<&GroupScore> {
        self.groups.iter().find(|g| g.group == name)
    }

    /// One line for logs: `Topwear 0.72 Bottomwear 0.71 Footwear 0.03 | balanced 0.49 | ...`.
    pub fn line(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{} {:.4} ({})", g.group, g.accuracy, g.photos))
            .collect();
        format!(
            "{} | balanced {:.4} | other kinds unreported {}",
            groups.join(" "),
            self.balanced,
            self.others_not_reported
                .map_or("-".into(), |v| format!("{v:.4} ({})", self.other_kinds))
        )
    }
}

/// What the model said about one photo.
#[derive(Debug, Clone)]
pub struct Answer {
    pub top1: usize,
    pub confidence: f32,
    pub reported: Option<String>,
}

impl Answer {
    /// The answer one photo's logits give for a model with `labels`.
    pub fn from_logits(logits: &[f32], labels: &[String]) -> Self {
        let top1 = classify::argmax(logits);
        Answer {
            top1,
            confidence: classify::softmax(logits)[top1],
            reported: reported(logits, labels),
        }
    }
}

/// Network inputs (CHW u8) of `photos`, through `tag`'s preprocessing; `None` for a photo that
/// cannot be read (counted, never fatal: a real folder may hold a broken file).
pub fn inputs(real: &RealPhotos, photos: &[&Photo]) -> Vec<Option<Vec<u8>>> {
    photos
        .par_iter()
        .map(|p| tagger_core::preprocess::file_to_chw(&real.image_path(p)).ok())
        .collect()
}

/// The model's answers for prepared inputs (`None` stays `None`).
pub fn answers(model: &Model, inputs: &[Option<Vec<u8>>]) -> Result<Vec<Option<Answer>>> {
    let present: Vec<&Vec<u8>> = inputs.iter().flatten().collect();
    let l = logits(model, &present)?;
    let mut per = l
        .chunks(model.classes())
        .map(|l| Answer::from_logits(l, &model.info.labels));
    Ok(inputs
        .iter()
        .map(|i| i.as_ref().and_then(|_| per.next()))
        .collect())
}

/// Scores answers to `photos` (same order) for a model with `labels`.
pub fn score(
    part: &str,
    photos: &[&Photo],
    answers: &[Option<Answer>],
    labels: &[String],
) -> RealScores {
    let mut rows: Vec<String> = GROUPS.iter().map(|g| g.0.to_string()).collect();
    rows.push(OTHER_KIND.to_string());
    let mut confusion = vec![vec![0usize; labels.len()]; rows.len()];
    let mut groups: Vec<GroupScore> = GROUPS
        .iter()
        .map(|g| GroupScore {
            group: g.0.to_string(),
            photos: 0,
            right: 0,
            accuracy: 0.0,
        })
        .collect();
    let (mut others, mut others_quiet, mut ambiguous, mut unreadable) = (0, 0, 0, 0);
    for (p, a) in photos.iter().zip(answers) {
        if p.group == AMBIGUOUS {
            ambiguous += 1;
            continue;
        }
        let Some(a) = a else {
            unreadable += 1;
            continue;
        };
        let Some(row) = rows.iter().position(|r| *r == p.group) else {
            ambiguous += 1;
            continue;
        };
        confusion[row][a.top1] += 1;
        if p.group == OTHER_KIND {
            others += 1;
            others_quiet += usize::from(a.reported.is_none());
            continue;
        }
        let g = &mut groups[row];
        g.photos += 1;
        g.right += usize::from(GROUPS[row].1.contains(&labels[a.top1].as_str()));
    }
    for g in &mut groups {
        g.accuracy = g.right as f64 / g.photos.max(1) as f64;
    }
    let scored: Vec<f64> = groups
        .iter()
        .filter(|g| g.photos > 0)
        .map(|g| g.accuracy)
        .collect();
    RealScores {
        part: part.to_string(),
        balanced: scored.iter().sum::<f64>() / scored.len().max(1) as f64,
        groups,
        other_kinds: others,
        others_not_reported: (others > 0).then(|| others_quiet as f64 / others as f64),
        ambiguous_not_scored: ambiguous,
        unreadable,
        confusion_rows: rows,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(group: &str) -> Photo {
        Photo {
            id: "x".into(),
            label: "x".into(),
            group: group.into(),
            sender: "s".into(),
        }
    }

    fn answer(top1: usize, reported: Option<&str>) -> Option<Answer> {
        Some(Answer {
            top1,
            confidence: 0.9,
            reported: reported.map(str::to_string),
        })
    }

    #[test]
    fn groups_balanced_and_other_kinds() {
        let labels: Vec<String> = ["Topwear", "Shoes", "Bottomwear", "Sandal", "none"]
            .map(String::from)
            .to_vec();
        let photos = [
            photo("Topwear"),
            photo("Topwear"),
            photo("Bottomwear"),
            photo("Footwear"),
            photo("Footwear"),
            photo(OTHER_KIND),
            photo(OTHER_KIND),
            photo(AMBIGUOUS),
            photo("Topwear"),
        ];
        let refs: Vec<&Photo> = photos.iter().collect();
        let answers = [
            answer(0, Some("Topwear")),
            answer(2, Some("Bottomwear")),
            answer(2, Some("Bottomwear")),
            answer(1, Some("Shoes")),
            answer(3, None),
            answer(0, None),
            answer(0, Some("Topwear")),
            answer(0, Some("Topwear")),
            None,
        ];
        let s = score("val", &refs, &answers, &labels);
        assert_eq!(s.group("Topwear").unwrap().photos, 2);
        assert_eq!(s.group("Topwear").unwrap().accuracy, 0.5);
        assert_eq!(s.group("Bottomwear").unwrap().accuracy, 1.0);
        assert_eq!(s.group("Footwear").unwrap().accuracy, 1.0, "Sandal counts");
        assert!((s.balanced - 2.5 / 3.0).abs() < 1e-12);
        assert_eq!(s.others_not_reported, Some(0.5));
        assert_eq!((s.ambiguous_not_scored, s.unreadable), (1, 1));
        assert_eq!(s.confusion[0], vec![1, 0, 1, 0, 0]);
        assert_eq!(s.confusion[3], vec![2, 0, 0, 0, 0]);
    }
}
