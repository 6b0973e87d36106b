//! Report each product once. A product passing the camera gives many frames; a verdict is
//! reported when the same label holds for `n` consecutive confident frames, and the same label is
//! reported again only after the product has gone (`n` consecutive frames without a confident
//! verdict). A one-frame flicker to another label neither reports it nor forgets the current one.

#[derive(Debug)]
pub struct Debouncer {
    n: usize,
    candidate: Option<String>,
    streak: usize,
    reported: Option<String>,
    absent: usize,
}

impl Debouncer {
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            candidate: None,
            streak: 0,
            reported: None,
            absent: 0,
        }
    }

    /// Feeds one frame's verdict (`None`: below the threshold). True when the product is to be
    /// reported now.
    pub fn push(&mut self, label: Option<&str>) -> bool {
        let Some(label) = label else {
            self.candidate = None;
            self.streak = 0;
            self.absent += 1;
            if self.absent >= self.n {
                self.reported = None;
            }
            return false;
        };
        self.absent = 0;
        if self.candidate.as_deref() == Some(label) {
            self.streak += 1;
        } else {
            self.candidate = Some(label.to_string());
            self.streak = 1;
        }
        if self.streak >= self.n && self.reported.as_deref() != Some(label) {
            self.reported = Some(label.to_string());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, frames: &[Option<&str>]) -> Vec<usize> {
        let mut d = Debouncer::new(n);
        frames
            .iter()
            .enumerate()
            .filter(|(_, f)| d.push(**f))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn reports_after_n_agreeing_frames_once() {
        let s = Some("Shoes");
        assert_eq!(run(3, &[s, s, s, s, s, s]), vec![2]);
        assert_eq!(run(1, &[s, s]), vec![0]);
        assert_eq!(run(3, &[s, s]), Vec::<usize>::new());
    }

    #[test]
    fn flicker_does_not_report_or_repeat() {
        let (s, b) = (Some("Shoes"), Some("Bags"));
        assert_eq!(run(3, &[s, s, b, s, s, s, b, s, s, s]), vec![5]);
    }

    #[test]
    fn a_new_label_is_reported() {
        let (s, b) = (Some("Shoes"), Some("Bags"));
        assert_eq!(run(2, &[s, s, b, b, s, s]), vec![1, 3, 5]);
    }

    #[test]
    fn same_label_again_only_after_the_product_left() {
        let s = Some("Shoes");
        // One unsure frame is not a new product...
        assert_eq!(run(3, &[s, s, s, None, s, s, s]), vec![2]);
        // ...three are.
        assert_eq!(run(3, &[s, s, s, None, None, None, s, s, s]), vec![2, 8]);
    }

    #[test]
    fn unsure_frames_break_a_streak() {
        let s = Some("Shoes");
        assert_eq!(run(3, &[s, s, None, s, s, None]), Vec::<usize>::new());
    }
}
