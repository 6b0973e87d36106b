//! A scene in words, made from its settings: the report prints this, so the prose and the
//! settings cannot drift apart.

use super::Scene;

impl Scene {
    /// The scene as one line: surfaces, placement, light, camera faults.
    pub fn describe(&self) -> String {
        let pct = |x: f32| format!("{:.0}", x * 100.0);
        let surfaces: Vec<String> = self
            .surfaces
            .iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect();
        let surfaces = match surfaces.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "no surface".into(),
        };
        let mut parts = vec![
            format!("{surfaces} surface"),
            format!(
                "product {}-{}% of the catalogue size",
                pct(self.scale.0),
                pct(self.scale.1)
            ),
            format!("up to {}% off-centre", pct(self.shift)),
            format!("+-{:.0} deg", self.rotate_deg),
        ];
        if self.mirror {
            parts.push("either orientation".into());
        }
        if self.shadow > 0.0 {
            parts.push(format!("a shadow {}% of the time", pct(self.shadow)));
        }
        parts.push(format!(
            "white balance +-{}%, brightness +-{}%, contrast +-{}%",
            pct(self.white_balance),
            pct(self.brightness),
            pct(self.contrast)
        ));
        if self.blur_chance > 0.0 {
            let when = if self.blur_chance < 1.0 {
                format!(" {}% of the time", pct(self.blur_chance))
            } else {
                String::new()
            };
            parts.push(format!(
                "blur sigma {}-{} px{when}",
                self.blur.0, self.blur.1
            ));
        }
        if self.noise.1 > 0.0 {
            parts.push(format!("noise {}-{} levels", self.noise.0, self.noise.1));
        }
        parts.push(match self.jpeg {
            Some((lo, hi)) => format!("JPEG {lo}-{hi}"),
            None => "no JPEG".into(),
        });
        if self.pair > 0.0 {
            parts.push(format!("pairs {}% of the time", pct(self.pair)));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::scene::Level;

    #[test]
    fn a_scene_is_described_from_its_settings() {
        let mild = Level::Mild.scene().describe();
        assert!(
            mild.starts_with("grey, dark or coloured surface, product 80-100%"),
            "{mild}"
        );
        assert!(
            mild.contains("JPEG 80-90") && !mild.contains("blur"),
            "{mild}"
        );
        let mut s = Level::Hard.scene();
        s.jpeg = None;
        s.blur_chance = 0.5;
        let hard = s.describe();
        assert!(
            hard.contains("no JPEG") && hard.contains("blur sigma 0.4-1.2 px 50% of the time"),
            "{hard}"
        );
    }
}
