//! Classification metrics: accuracy, macro-F1, per-class precision/recall and the confusion
//! matrix. Shared by evaluation of float and int8 models so both are scored the same way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Metrics {
    pub fn compute(predicted: &[usize], truth: &[usize], labels: &[String]) -> Self {
        assert_eq!(predicted.len(), truth.len());
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&p, &t) in predicted.iter().zip(truth) {
            confusion[t][p] += 1;
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let support: usize = confusion[c].iter().sum();
                let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
                let precision = if predicted_c > 0 {
                    tp / predicted_c as f64
                } else {
                    0.0
                };
                let recall = if support > 0 {
                    tp / support as f64
                } else {
                    0.0
                };
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    label: labels[c].clone(),
                    support,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect();
        // Over the classes that occur: a `none` output (empty belt) has no catalogue photos, and
        // its zero F1 would lower the score of a model for a class no split contains.
        let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
        let macro_f1 = present.iter().map(|c| c.f1).sum::<f64>() / present.len().max(1) as f64;
        Self {
            n: truth.len(),
            accuracy: correct as f64 / truth.len().max(1) as f64,
            macro_f1,
            per_class,
            confusion,
        }
    }
}

/// Metrics of one model on the three parts of a split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub train: Metrics,
    pub val: Metrics,
    pub test: Metrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // truth a,a,b,b ; predicted a,b,b,b
        let m = Metrics::compute(&[0, 1, 1, 1], &[0, 0, 1, 1], &labels);
        assert_eq!(m.accuracy, 0.75);
        assert_eq!(m.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(m.per_class[0].precision, 1.0);
        assert_eq!(m.per_class[0].recall, 0.5);
        assert!((m.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        let f1a = 2.0 * 0.5 / 1.5;
        let f1b = 2.0 * (2.0 / 3.0) / (5.0 / 3.0);
        assert!((m.macro_f1 - (f1a + f1b) / 2.0).abs() < 1e-12);
    }
}
