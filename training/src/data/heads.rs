//! Extra output heads: attributes that styles.csv carries beside the primary class,
//! predicted from the same pooled features by one dense layer each.
//!
//! - `articleType`: the types with at least `min_images` training photos; the rest fold into
//!   `other` (a real answer: "a kind we do not name").
//! - `colour`: styles.csv's 46 `baseColour` names grouped into a 15-colour [`PALETTE`] (many names
//!   are rare shades of one colour: Navy Blue and Teal are blue, Maroon and Burgundy red); `NA`
//!   is masked.
//! - `gender`: Men, Women, Unisex, Boys, Girls (never missing in the set).
//! - `usage`: the values with at least `min_images` training photos (Casual, Sports, Ethnic,
//!   Formal); rare ones (Party, Travel, Smart Casual) and missing ones are masked.
//!
//! "Masked" means the head gets no loss for that photo: a missing value is never guessed as a
//! target. Vocabularies come from the training split only and are saved in the run's config.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The label of the folded-in rare article types.
pub const OTHER: &str = "other";

/// styles.csv `baseColour` -> palette colour. Names not listed (and `NA`) are masked.
pub const PALETTE: &[(&str, &[&str])] = &[
    ("Black", &["Black"]),
    ("White", &["White", "Off White", "Cream"]),
    ("Grey", &["Grey", "Grey Melange", "Charcoal"]),
    ("Blue", &["Blue", "Navy Blue", "Teal", "Turquoise Blue"]),
    ("Red", &["Red", "Maroon", "Burgundy", "Rust"]),
    ("Pink", &["Pink", "Magenta", "Peach", "Rose"]),
    ("Purple", &["Purple", "Lavender", "Mauve"]),
    (
        "Green",
        &[
            "Green",
            "Olive",
            "Sea Green",
            "Fluorescent Green",
            "Lime Green",
        ],
    ),
    ("Yellow", &["Yellow", "Mustard"]),
    ("Orange", &["Orange"]),
    (
        "Brown",
        &["Brown", "Tan", "Coffee Brown", "Mushroom Brown", "Taupe"],
    ),
    ("Beige", &["Beige", "Khaki", "Skin", "Nude"]),
    ("Silver", &["Silver", "Steel", "Metallic"]),
    ("Gold", &["Gold", "Bronze", "Copper"]),
    ("Multi", &["Multi"]),
];

/// The palette colour of a styles.csv `baseColour`, if it has one.
pub fn palette(base_colour: &str) -> Option<&'static str> {
    PALETTE
        .iter()
        .find(|(_, names)| names.contains(&base_colour))
        .map(|(c, _)| *c)
}

/// The heads a run can add, by name (`--heads articleType,colour,gender,usage`).
pub const KINDS: [&str; 4] = ["articleType", "colour", "gender", "usage"];

/// One extra head of a run: its name (also the ONNX output name), labels and loss weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub name: String,
    pub labels: Vec<String>,
    pub weight: f32,
}

/// The raw attribute values of every photo in styles.csv.
#[derive(Debug, Default)]
pub struct Attributes {
    rows: HashMap<u64, [String; 4]>,
}

impl Attributes {
    /// Reads `styles.csv` of the data directory.
    pub fn load(data: &Path) -> Result<Self> {
        let path = data.join(crate::data::dataset::STYLES);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::Headers)
            .from_path(&path)
            .with_context(|| {
                format!(
                    "extra heads need {} (the Kaggle styles.csv with articleType, baseColour, \
                     gender and usage)",
                    path.display()
                )
            })?;
        let headers = rdr.headers()?.clone();
        let col = |name: &str| {
            headers.iter().position(|h| h == name).with_context(|| {
                format!(
                    "{} has no `{name}` column for the extra heads",
                    path.display()
                )
            })
        };
        let id = col("id")?;
        let cols = [
            col("articleType")?,
            col("baseColour")?,
            col("gender")?,
            col("usage")?,
        ];
        let mut rows = HashMap::new();
        for rec in rdr.records() {
            let Ok(rec) = rec else { continue };
            let Some(Ok(i)) = rec.get(id).map(|v| v.trim().parse::<u64>()) else {
                continue;
            };
            let get = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
            rows.insert(i, cols.map(get));
        }
        Ok(Self { rows })
    }

    /// From rows in memory (tests): id -> [articleType, baseColour, gender, usage].
    pub fn from_rows(rows: impl IntoIterator<Item = (u64, [&'static str; 4])>) -> Self {
        Self {
            rows: rows
                .into_iter()
                .map(|(id, r)| (id, r.map(str::to_string)))
                .collect(),
        }
    }

    /// The value a head would learn for a photo, before the vocabulary: palette colours for
    /// `colour`, `None` when missing.
    fn value(&self, kind: &str, id: u64) -> Option<&str> {
        let r = self.rows.get(&id)?;
        let v = match kind {
            "articleType" => r[0].as_str(),
            "colour" => palette(&r[1])?,
            "gender" => r[2].as_str(),
            "usage" => r[3].as_str(),
            _ => return None,
        };
        (!v.is_empty() && v != "NA").then_some(v)
    }

    /// The head `kind` with its vocabulary from `train_ids`: values with at least `min_images`
    /// photos, most frequent first; article types below it become [`OTHER`].
    pub fn head(
        &self,
        kind: &str,
        train_ids: &[u64],
        min_images: usize,
        weight: f32,
    ) -> Result<Head> {
        if !KINDS.contains(&kind) {
            bail!("unknown head `{kind}`: choose from {}", KINDS.join(", "));
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for &id in train_ids {
            if let Some(v) = self.value(kind, id) {
                *counts.entry(v).or_default() += 1;
            }
        }
        let mut kept: Vec<(&str, usize)> = counts
            .iter()
            .filter(|(_, &n)| n >= min_images)
            .map(|(&v, &n)| (v, n))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut labels: Vec<String> = kept.iter().map(|(v, _)| v.to_string()).collect();
        if kind == "articleType" && kept.len() < counts.len() {
            labels.push(OTHER.to_string());
        }
        if labels.len() < 2 {
            bail!(
                "head `{kind}` has {} value(s) with at least {min_images} training photos: \
                 nothing to learn",
                labels.len()
            );
        }
        Ok(Head {
            name: kind.to_string(),
            labels,
            weight,
        })
    }

    /// The target index of `id` for `head`, or None (masked).
    pub fn target(&self, head: &Head, id: u64) -> Option<usize> {
        let v = self.value(&head.name, id)?;
        head.labels.iter().position(|l| l == v).or_else(|| {
            (head.name == "articleType")
                .then(|| head.labels.iter().position(|l| l == OTHER))
                .flatten()
        })
    }

    /// Target indices of every head for `ids`, `-1` where masked: `ids.len() x heads` values.
    pub fn targets(&self, heads: &[Head], ids: &[u64]) -> HeadTargets {
        let mut map = HashMap::with_capacity(ids.len());
        for &id in ids {
            let t: Vec<i32> = heads
                .iter()
                .map(|h| self.target(h, id).map_or(-1, |i| i as i32))
                .collect();
            map.insert(id, t);
        }
        HeadTargets { map }
    }
}

/// Per photo, the target index of each extra head or -1.
#[derive(Debug, Default, Clone)]
pub struct HeadTargets {
    map: HashMap<u64, Vec<i32>>,
}

impl HeadTargets {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&[i32]> {
        self.map.get(&id).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        Attributes::from_rows([
            (1, ["Tshirts", "Navy Blue", "Men", "Casual"]),
            (2, ["Tshirts", "White", "Women", "Sports"]),
            (3, ["Casual Shoes", "Black", "Men", "Casual"]),
            (4, ["Casual Shoes", "NA", "Unisex", "NA"]),
            (5, ["Socks", "Taupe", "Boys", ""]),
            (6, ["Tshirts", "Off White", "Men", "Party"]),
        ])
    }

    #[test]
    fn every_colour_of_the_set_has_one_palette_colour() {
        let names: Vec<&str> = PALETTE
            .iter()
            .flat_map(|(_, n)| n.iter().copied())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a colour in two groups");
        assert_eq!(palette("Navy Blue"), Some("Blue"));
        assert_eq!(palette("NA"), None);
    }

    #[test]
    fn vocabularies_fold_rare_types_and_mask_missing_values() {
        let a = attrs();
        let ids = [1, 2, 3, 4, 5, 6];
        let types = a.head("articleType", &ids, 2, 1.0).unwrap();
        assert_eq!(types.labels, ["Tshirts", "Casual Shoes", OTHER]);
        assert_eq!(a.target(&types, 5), Some(2), "Socks fold into other");
        let colour = a.head("colour", &ids, 1, 1.0).unwrap();
        assert_eq!(colour.labels[0], "White", "White + Off White");
        assert_eq!(a.target(&colour, 4), None, "NA is masked");
        assert_eq!(
            a.target(&colour, 5),
            Some(colour.labels.iter().position(|l| l == "Brown").unwrap())
        );
        assert!(
            a.head("usage", &ids, 2, 1.0).is_err(),
            "one value left: nothing to learn"
        );
    }

    #[test]
    fn targets_are_minus_one_where_masked() {
        let a = attrs();
        let ids = [1, 2, 3, 4, 5, 6];
        let heads = vec![
            a.head("gender", &ids, 1, 1.0).unwrap(),
            a.head("usage", &ids, 1, 1.0).unwrap(),
        ];
        let t = a.targets(&heads, &ids);
        assert_eq!(t.get(4).unwrap()[1], -1);
        assert_eq!(t.get(5).unwrap()[1], -1, "empty usage");
        assert!(t.get(1).unwrap().iter().all(|&v| v >= 0));
        assert!(t.get(99).is_none());
        assert!(a.head("season", &ids, 1, 1.0).is_err());
    }
}
