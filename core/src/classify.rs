//! From logits to a verdict: softmax, top-k and the needs-review threshold.

use serde::Serialize;

/// Label given when the best score is below the threshold: a person should look.
pub const UNKNOWN: &str = "unknown";

/// The label of a station model's "no product" output (an empty belt or tray): `tag` prints it
/// like any label, `tag watch` treats it as no product in view and reports nothing.
pub const NONE: &str = "none";

/// True when a verdict names a product: neither below the threshold nor `none`.
pub fn is_product(label: &str) -> bool {
    label != UNKNOWN && label != NONE
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub label: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Best label, or [`UNKNOWN`] when its score is below the threshold.
    pub label: String,
    /// Softmax probability of the best class (reported even when the label is `unknown`).
    pub confidence: f32,
    /// The `k` best classes, best first.
    pub top: Vec<Score>,
}

/// One extra head's answer (multi-head models: article type, colour, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    /// The head's name (`articleType`, `colour`, `gender`, `usage`).
    #[serde(skip)]
    pub head: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The default confidence an extra head needs for its label to be shown (else `unknown`).
pub const HEAD_THRESHOLD: f32 = 0.5;

/// The extra heads' tags for one image: empty unless `primary` names a product (an empty belt or
/// an image below the threshold gets no article type or colour). `rows`: each head's logits.
pub fn tags(
    primary: &Verdict,
    rows: &[&[f32]],
    heads: &[crate::metadata::HeadInfo],
    top_k: usize,
    threshold: f32,
) -> Vec<Tag> {
    if !is_product(&primary.label) {
        return vec![];
    }
    heads
        .iter()
        .zip(rows)
        .map(|(h, row)| Tag {
            head: h.name.clone(),
            verdict: verdict(row, &h.labels, top_k.min(h.labels.len()), threshold),
        })
        .collect()
}

/// `Casual Shoes, Black, Men`: the shown labels of `tags` (those not `unknown`).
pub fn tags_text(tags: &[Tag]) -> String {
    tags.iter()
        .filter(|t| t.verdict.label != UNKNOWN)
        .map(|t| t.verdict.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Shoes (Casual Shoes, Black, Men)`: a label followed by its shown tags, or the label alone.
pub fn with_tags(label: &str, tags: &[Tag]) -> String {
    let shown = tags_text(tags);
    if shown.is_empty() {
        label.to_string()
    } else {
        format!("{label} ({shown})")
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Turns one image's logits into a verdict.
pub fn verdict(logits: &[f32], labels: &[String], top_k: usize, threshold: f32) -> Verdict {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let best = order[0];
    let top = order
        .iter()
        .take(top_k.max(1))
        .map(|&i| Score {
            label: labels[i].clone(),
            score: probs[i],
        })
        .collect();
    Verdict {
        label: if probs[best] >= threshold {
            labels[best].clone()
        } else {
            UNKNOWN.to_string()
        },
        confidence: probs[best],
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["Bags".into(), "Shoes".into(), "Watches".into()]
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
        // Large logits do not overflow.
        assert!(softmax(&[1000.0, 0.0]).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn top_k_is_sorted_and_bounded() {
        let v = verdict(&[1.0, 3.0, 2.0], &labels(), 2, 0.0);
        assert_eq!(v.label, "Shoes");
        assert_eq!(v.top.len(), 2);
        assert_eq!(v.top[1].label, "Watches");
        assert_eq!(verdict(&[1.0, 3.0, 2.0], &labels(), 10, 0.0).top.len(), 3);
    }

    #[test]
    fn none_and_unknown_are_not_products() {
        assert!(is_product("Shoes"));
        assert!(!is_product(NONE));
        assert!(!is_product(UNKNOWN));
    }

    #[test]
    fn tags_follow_the_primary_verdict_and_their_own_threshold() {
        use crate::metadata::HeadInfo;
        let heads = vec![
            HeadInfo {
                name: "gender".into(),
                labels: vec!["Men".into(), "Women".into()],
            },
            HeadInfo {
                name: "colour".into(),
                labels: vec!["Black".into(), "White".into(), "Red".into()],
            },
        ];
        let shoes = verdict(&[0.0, 5.0, 0.0], &labels(), 1, 0.6);
        let rows: [&[f32]; 2] = [&[3.0, 0.0], &[0.1, 0.0, 0.05]];
        let t = tags(&shoes, &rows, &heads, 1, HEAD_THRESHOLD);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].head.as_str(), t[0].verdict.label.as_str()),
            ("gender", "Men")
        );
        assert_eq!(
            t[1].verdict.label, UNKNOWN,
            "a flat colour guess is not shown"
        );
        assert_eq!(tags_text(&t), "Men");
        assert_eq!(with_tags("Shoes", &t), "Shoes (Men)");
        assert_eq!(with_tags("Shoes", &[]), "Shoes");
        let unsure = verdict(&[0.0, 0.1, 0.0], &labels(), 1, 0.6);
        assert!(tags(&unsure, &rows, &heads, 1, HEAD_THRESHOLD).is_empty());
    }

    #[test]
    fn below_threshold_is_unknown() {
        let v = verdict(&[0.0, 0.1, 0.0], &labels(), 1, 0.9);
        assert_eq!(v.label, UNKNOWN);
        assert!(v.confidence < 0.9);
        assert_eq!(v.top[0].label, "Shoes");
    }
}
