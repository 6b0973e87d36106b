//! Reading the Kaggle "Fashion Product Images (Small)" layout: `styles.csv` + `images/{id}.jpg`,
//! or a course-style ready split `train.csv` + `test.csv`.
//!
//! The Kaggle `styles.csv` has rows whose product name holds unquoted commas, so the reader is
//! flexible: extra fields are glued back onto the last column instead of rejecting the row.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled product photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: u64,
    pub label: String,
    pub name: String,
}

/// What loading found, including what it had to skip.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Items whose image exists, for every class.
    pub items: Vec<Item>,
    /// Rows whose image file does not exist.
    pub missing_images: usize,
    /// Rows that could not be parsed (bad id, empty label), with a reason each.
    pub bad_rows: Vec<String>,
    /// When the data directory ships its own test split (`train.csv` + `test.csv`).
    pub fixed_test: Option<Vec<Item>>,
}

pub const STYLES: &str = "styles.csv";
pub const LABEL_COLUMNS: [&str; 3] = ["subCategory", "masterCategory", "articleType"];

/// Path of an item's image.
pub fn image_path(data: &Path, id: u64) -> PathBuf {
    data.join("images").join(format!("{id}.jpg"))
}

fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn find_column(headers: &[String], wanted: &[&str]) -> Option<usize> {
    let wanted: Vec<String> = wanted.iter().map(|w| norm_header(w)).collect();
    headers
        .iter()
        .position(|h| wanted.contains(&norm_header(h)))
}

/// Loads the data directory in whichever layout it has.
pub fn load(data: &Path, label_column: &str) -> Result<Loaded> {
    load_layout(data, label_column).map_err(crate::error::data)
}

fn load_layout(data: &Path, label_column: &str) -> Result<Loaded> {
    if !data.is_dir() {
        bail!(
            "data directory {} does not exist: pass --data DIR holding styles.csv and images/ \
             (the Kaggle \"Fashion Product Images (Small)\" layout)",
            data.display()
        );
    }
    if !data.join("images").is_dir() {
        bail!(
            "{} has no images/ folder: expected images/{{id}}.jpg beside styles.csv",
            data.display()
        );
    }
    let styles = data.join(STYLES);
    if styles.is_file() {
        return load_styles(data, &styles, label_column);
    }
    let (train, test) = (data.join("train.csv"), data.join("test.csv"));
    if train.is_file() && test.is_file() {
        let mut loaded = load_simple(data, &train, label_column)?;
        let test = load_simple(data, &test, label_column)?;
        loaded.missing_images += test.missing_images;
        loaded.bad_rows.extend(test.bad_rows);
        loaded.fixed_test = Some(test.items);
        return Ok(loaded);
    }
    bail!(
        "{} has neither styles.csv nor train.csv + test.csv",
        data.display()
    )
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .flexible(true)
        // Only headers: values are trimmed where used, so names keep their inner spacing.
        .trim(csv::Trim::Headers)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn headers(rdr: &mut csv::Reader<std::fs::File>, path: &Path) -> Result<Vec<String>> {
    Ok(rdr
        .headers()
        .with_context(|| format!("cannot read the header of {}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect())
}

/// Kaggle `styles.csv`.
pub fn load_styles(data: &Path, path: &Path, label_column: &str) -> Result<Loaded> {
    let mut rdr = reader(path)?;
    let headers = headers(&mut rdr, path)?;
    let id_col = find_column(&headers, &["id"]).with_context(|| {
        format!(
            "{} has no `id` column (found: {}); is this the Kaggle styles.csv?",
            path.display(),
            headers.join(", ")
        )
    })?;
    let label_col = find_column(&headers, &[label_column]).with_context(|| {
        format!(
            "{} has no `{label_column}` column to label by (found: {}); pick one with \
             --label-column, e.g. {}",
            path.display(),
            headers.join(", "),
            LABEL_COLUMNS.join(", ")
        )
    })?;
    let name_col = find_column(&headers, &["productDisplayName"]);
    collect_rows(data, path, rdr, headers.len(), id_col, label_col, name_col)
}

/// Course-style `train.csv` / `test.csv`: image id, label, product display name.
pub fn load_simple(data: &Path, path: &Path, label_column: &str) -> Result<Loaded> {
    let mut rdr = reader(path)?;
    let headers = headers(&mut rdr, path)?;
    let id_col =
        find_column(&headers, &["id", "imageid", "image", "image_id"]).with_context(|| {
            format!(
                "{} has no image id column (found: {}); expected `id` or `image_id`",
                path.display(),
                headers.join(", ")
            )
        })?;
    let label_col = find_column(&headers, &["label", "class", "category", label_column])
        .with_context(|| {
            format!(
                "{} has no label column (found: {}); expected `label` or `{label_column}`",
                path.display(),
                headers.join(", ")
            )
        })?;
    let name_col = find_column(&headers, &["productDisplayName", "name", "displayname"]);
    collect_rows(data, path, rdr, headers.len(), id_col, label_col, name_col)
}

fn collect_rows(
    data: &Path,
    path: &Path,
    mut rdr: csv::Reader<std::fs::File>,
    width: usize,
    id_col: usize,
    label_col: usize,
    name_col: Option<usize>,
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    for (i, row) in rdr.records().enumerate() {
        let line = i + 2;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                loaded
                    .bad_rows
                    .push(format!("{}:{line}: {e}", path.display()));
                continue;
            }
        };
        // Unquoted commas in the last column (the product name) spill into extra fields.
        let fields: Vec<String> = if row.len() > width {
            let mut f: Vec<String> = row.iter().take(width).map(str::to_string).collect();
            let rest: Vec<&str> = row.iter().skip(width).collect();
            let last = f.last_mut().expect("width > 0");
            for r in rest {
                last.push(',');
                last.push_str(r);
            }
            f
        } else {
            row.iter().map(str::to_string).collect()
        };
        let get = |c: usize| fields.get(c).map(|f| f.trim()).unwrap_or("");
        let id: u64 = match get(id_col).parse() {
            Ok(id) => id,
            Err(_) => {
                loaded.bad_rows.push(format!(
                    "{}:{line}: id `{}` is not a number",
                    path.display(),
                    get(id_col)
                ));
                continue;
            }
        };
        let label = get(label_col);
        if label.is_empty() || label == "NA" {
            loaded.bad_rows.push(format!(
                "{}:{line}: empty label for id {id}",
                path.display()
            ));
            continue;
        }
        if !image_path(data, id).is_file() {
            loaded.missing_images += 1;
            continue;
        }
        loaded.items.push(Item {
            id,
            label: label.to_string(),
            name: name_col.map(|c| get(c).to_string()).unwrap_or_default(),
        });
    }
    Ok(loaded)
}

/// Classes with at least `min_images` images, most frequent first (ties by name).
pub fn frequent_classes(items: &[Item], min_images: usize) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for it in items {
        *counts.entry(&it.label).or_default() += 1;
    }
    let mut kept: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|(_, n)| *n >= min_images)
        .map(|(l, n)| (l.to_string(), n))
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture(csv: &str, ids: &[u64]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("images")).unwrap();
        for id in ids {
            fs::write(image_path(dir.path(), *id), b"x").unwrap();
        }
        fs::write(dir.path().join(STYLES), csv).unwrap();
        dir
    }

    const HEADER: &str = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n";

    #[test]
    fn kaggle_quirks_are_accepted() {
        let csv = format!(
            "{HEADER}1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Plain Shirt\n\
             2,Women,Accessories,Bags,Handbags,Red,,,NA,Bag, with, commas\n\
             3,Men,Footwear,Shoes,Casual Shoes,Black,Summer,2012,,Shoe\n\
             4,Men,Footwear,Shoes,Casual Shoes,Black,Summer,2012,Casual,No image\n\
             x,Men,Footwear,Shoes,Casual Shoes,Black,Summer,2012,Casual,Bad id\n"
        );
        let dir = fixture(&csv, &[1, 2, 3]);
        let loaded = load(dir.path(), "subCategory").unwrap();
        assert_eq!(loaded.items.len(), 3);
        assert_eq!(loaded.items[1].label, "Bags");
        assert_eq!(loaded.items[1].name, "Bag, with, commas");
        assert_eq!(loaded.missing_images, 1);
        assert_eq!(loaded.bad_rows.len(), 1);
        let by_master = load(dir.path(), "masterCategory").unwrap();
        assert_eq!(by_master.items[2].label, "Footwear");
        let by_article = load(dir.path(), "articleType").unwrap();
        assert_eq!(by_article.items[0].label, "Shirts");
    }

    #[test]
    fn unknown_label_column_names_the_choices() {
        let dir = fixture(HEADER, &[]);
        let err = load(dir.path(), "colour").unwrap_err().to_string();
        assert!(
            err.contains("colour") && err.contains("subCategory"),
            "{err}"
        );
    }

    #[test]
    fn missing_id_column_is_explained() {
        let dir = fixture("name,subCategory\nx,Bags\n", &[]);
        let err = load(dir.path(), "subCategory").unwrap_err().to_string();
        assert!(err.contains("`id`"), "{err}");
    }

    #[test]
    fn missing_data_dir_is_explained() {
        let err = load(Path::new("/nonexistent/fashion"), "subCategory")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/fashion") && err.contains("--data"),
            "{err}"
        );
    }

    #[test]
    fn ready_split_headers_match_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("images")).unwrap();
        for id in [1, 2, 3] {
            fs::write(image_path(dir.path(), id), b"x").unwrap();
        }
        fs::write(
            dir.path().join("train.csv"),
            "ImageId,Label,ProductDisplayName\n1,Shoes,A shoe\n2,Bags,A bag\n",
        )
        .unwrap();
        fs::write(dir.path().join("test.csv"), "image_id,LABEL\n3,Shoes\n").unwrap();
        let loaded = load(dir.path(), "subCategory").unwrap();
        assert_eq!(loaded.items.len(), 2);
        assert_eq!(loaded.fixed_test.unwrap()[0].id, 3);
    }

    #[test]
    fn classes_filtered_by_count() {
        let items: Vec<Item> = ["A", "A", "B", "C", "C", "C"]
            .iter()
            .enumerate()
            .map(|(i, l)| Item {
                id: i as u64,
                label: l.to_string(),
                name: String::new(),
            })
            .collect();
        let kept = frequent_classes(&items, 2);
        assert_eq!(kept, vec![("C".into(), 3), ("A".into(), 2)]);
    }
}
