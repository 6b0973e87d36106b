//! Which frames are worth a person's look. Per frame the policy sees the verdict only (label and
//! confidence); the store decides whether there is room.
//!
//! A camera sees one product for many frames, so the policy thinks in *passes*: a pass is a run
//! of frames whose best class stays the same (`none` for an empty belt included; a best class
//! seen for one frame only does not start a pass, so a flicker does not), and at most one frame
//! per reason is kept per pass. An uncertain product under the camera for two seconds gives one
//! item, not sixty.

use crate::classify::{NONE, UNKNOWN};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Why a frame was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Below the verdict threshold: the station reported nothing.
    Unknown,
    /// Above the verdict threshold but below `collect.below`.
    LowConfidence,
    /// The label flipped back and forth over consecutive frames of one product.
    Disagreement,
    /// A confident product, kept at random to catch confident mistakes.
    Sample,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Unknown,
        Reason::LowConfidence,
        Reason::Disagreement,
        Reason::Sample,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "unknown",
            Reason::LowConfidence => "low_confidence",
            Reason::Disagreement => "disagreement",
            Reason::Sample => "sample",
        }
    }
}

/// Product frames looked back on for disagreement.
const LOOKBACK: usize = 5;
/// Label changes within [`LOOKBACK`] product frames that count as disagreement (one change is
/// simply the next product arriving).
const SWITCHES: usize = 2;

pub struct Policy {
    below: f32,
    sample: f32,
    rng: fastrand::Rng,
    /// The best class of the current pass.
    pass: Option<String>,
    /// A different best class seen on the last frame: the next pass, if it stays.
    candidate: Option<String>,
    /// Whether the current pass was picked for the random sample (and not yet kept).
    sampled: bool,
    /// Reasons already kept in this pass.
    kept: Vec<Reason>,
    /// Labels of the latest product frames (cleared by `none` or `unknown`).
    recent: VecDeque<String>,
}

impl Policy {
    /// `below`: confidence under which a named product is kept; `sample`: share of product
    /// passes kept at random; `seed` makes the sample reproducible.
    pub fn new(below: f32, sample: f32, seed: u64) -> Self {
        Self {
            below,
            sample,
            rng: fastrand::Rng::with_seed(seed),
            pass: None,
            candidate: None,
            sampled: false,
            kept: Vec::new(),
            recent: VecDeque::new(),
        }
    }

    /// Follows the best class; false while a different one was seen on this frame only (which
    /// pass the frame belongs to is known on the next).
    fn follow(&mut self, best: &str) -> bool {
        if self.pass.as_deref() == Some(best) {
            self.candidate = None;
            return true;
        }
        if self.pass.is_some() && self.candidate.as_deref() != Some(best) {
            self.candidate = Some(best.to_string());
            return false;
        }
        self.pass = Some(best.to_string());
        self.candidate = None;
        self.kept.clear();
        self.sampled = best != NONE && self.rng.f32() < self.sample;
        true
    }

    /// The reason to keep this frame, if any (call [`Policy::kept`] once it was taken).
    /// `label`: the verdict (`unknown` below the threshold); `best`: the best class anyway.
    pub fn judge(&mut self, label: &str, best: &str, confidence: f32) -> Option<Reason> {
        let settled = self.follow(best);
        let unknown = label == UNKNOWN;
        if unknown || label == NONE {
            self.recent.clear();
        } else {
            if self.recent.len() == LOOKBACK {
                self.recent.pop_front();
            }
            self.recent.push_back(label.to_string());
        }
        let switches = self
            .recent
            .iter()
            .zip(self.recent.iter().skip(1))
            .filter(|(a, b)| a != b)
            .count();
        if !settled {
            return None;
        }
        let reason = if unknown {
            Reason::Unknown
        } else if confidence < self.below {
            Reason::LowConfidence
        } else if switches >= SWITCHES {
            Reason::Disagreement
        } else if self.sampled && label != NONE {
            Reason::Sample
        } else {
            return None;
        };
        (!self.kept.contains(&reason)).then_some(reason)
    }

    /// `reason`'s frame of this pass was taken.
    pub fn kept(&mut self, reason: Reason) {
        self.kept.push(reason);
        if reason == Reason::Sample {
            self.sampled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as (verdict, confidence); an `unknown` verdict's best class is `Shoes`.
    fn run(policy: &mut Policy, frames: &[(&str, f32)]) -> Vec<Option<Reason>> {
        frames
            .iter()
            .map(|&(l, c)| {
                let best = if l == UNKNOWN { "Shoes" } else { l };
                let r = policy.judge(l, best, c);
                if let Some(r) = r {
                    policy.kept(r);
                }
                r
            })
            .collect()
    }

    #[test]
    fn one_item_per_reason_per_pass() {
        let mut p = Policy::new(0.8, 0.0, 1);
        let mut frames = vec![("none", 0.99); 3];
        frames.extend([("unknown", 0.4); 30]);
        frames.extend([("Shoes", 0.7); 30]);
        let kept: Vec<_> = run(&mut p, &frames).into_iter().flatten().collect();
        assert_eq!(kept, [Reason::Unknown, Reason::LowConfidence]);
        // The empty belt again, then an uncertain product: a new pass, kept again.
        let got = run(
            &mut p,
            &[
                ("none", 0.95),
                ("none", 0.95),
                ("unknown", 0.3),
                ("unknown", 0.3),
                ("unknown", 0.3),
            ],
        );
        assert_eq!(got, [None, None, None, Some(Reason::Unknown), None]);
    }

    #[test]
    fn uncertain_products_one_after_another_are_each_kept() {
        let mut p = Policy::new(0.99, 0.0, 1);
        let mut frames = vec![];
        for label in ["Shoes", "Bags", "Watches"] {
            frames.extend([(label, 0.9); 4]);
        }
        let kept = run(&mut p, &frames).into_iter().flatten().count();
        assert_eq!(kept, 3);
    }

    #[test]
    fn flip_flopping_is_disagreement_and_a_clean_change_is_not() {
        let mut p = Policy::new(0.5, 0.0, 1);
        let got = run(
            &mut p,
            &[("Shoes", 0.9), ("Shoes", 0.9), ("Bags", 0.9), ("Bags", 0.9)],
        );
        assert!(got.iter().all(Option::is_none), "{got:?}");
        let got = run(&mut p, &[("Shoes", 0.9), ("Bags", 0.9)]);
        assert_eq!(
            got.into_iter().flatten().collect::<Vec<_>>(),
            [Reason::Disagreement]
        );
    }

    #[test]
    fn the_sample_is_per_pass_and_about_the_share_asked() {
        let mut p = Policy::new(0.5, 0.25, 7);
        let mut kept = 0;
        for i in 0..2000 {
            let label = if i % 2 == 0 { "Shoes" } else { "none" };
            let got = run(&mut p, &[(label, 0.99); 10]);
            assert!(got.iter().flatten().count() <= 1);
            kept += got.iter().flatten().count();
        }
        // 1000 product passes at 25%: binomial, 4 sigma is about 55.
        assert!((195..=305).contains(&kept), "{kept}");
    }

    #[test]
    fn a_picked_pass_waits_until_it_is_kept() {
        let mut p = Policy::new(0.5, 1.0, 1);
        assert_eq!(p.judge("Shoes", "Shoes", 0.9), Some(Reason::Sample));
        // Not taken (no room): the next frame of the same pass is offered again.
        assert_eq!(p.judge("Shoes", "Shoes", 0.9), Some(Reason::Sample));
        p.kept(Reason::Sample);
        assert_eq!(p.judge("Shoes", "Shoes", 0.9), None);
    }
}
