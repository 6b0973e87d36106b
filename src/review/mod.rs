//! Labelling collected frames in a browser: `/review` on a station's page (`tag watch --collect
//! DIR --review`) and `tag review DIR` for a laptop beside the station. One crop at a time with
//! the model's best guesses; a key per class; the decisions go to `DIR/labels.csv`.
//!
//! The routes here are plain functions of (method, path, body) so that the station's server and
//! `tag review`'s serve the same thing; they are the only ones that write, so the servers only
//! offer them behind a token or an explicit `--review`.

use crate::classify::NONE;
use crate::collect::labels::Labels;
use crate::collect::store::{self, Manifest, Record};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The page: one file, no external assets.
const PAGE: &str = include_str!("page.html");
/// Largest request body accepted (a decision is a few dozen bytes).
pub const MAX_BODY: usize = 4096;

/// An answer, for whichever server sends it.
pub struct Reply {
    pub code: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn text(code: u16, body: impl Into<String>) -> Self {
        Self {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
    fn json(value: &impl Serialize) -> Self {
        Self {
            code: 200,
            content_type: "application/json",
            body: serde_json::to_vec(value).expect("serialises"),
        }
    }
}

/// One item as the page lists it.
#[derive(Serialize)]
struct Item<'a> {
    #[serde(flatten)]
    record: &'a Record,
    /// The reviewer's label, if any.
    decided: Option<&'a str>,
}

#[derive(Serialize)]
struct Progress {
    items: usize,
    labelled: usize,
    /// Labelled items per label.
    counts: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Decision {
    id: String,
    label: String,
}

pub struct Review {
    dir: PathBuf,
    labels: Mutex<Labels>,
}

impl Review {
    /// The collection in `dir` (made by `tag watch --collect`).
    pub fn open(dir: PathBuf) -> Result<Self> {
        let labels = Mutex::new(Labels::load(&dir)?);
        Ok(Self { dir, labels })
    }

    /// Answers `/review...`; None for any other path.
    pub fn answer(&self, method: &str, path: &str, body: &[u8]) -> Option<Reply> {
        let rest = path.strip_prefix("/review")?;
        let get = method == "GET" || method == "HEAD";
        Some(match rest {
            "" | "/" if get => Reply {
                code: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
            },
            "/items" if get => self.items(),
            "/label" if method == "POST" => self.decide(body),
            p if get && p.starts_with("/items/") => self.image(&p["/items/".len()..]),
            _ => Reply::text(
                404,
                "not found: /review, /review/items, /review/items/ID/crop.jpg, POST /review/label\n",
            ),
        })
    }

    fn labels(&self) -> std::sync::MutexGuard<'_, Labels> {
        self.labels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn progress(labels: &Labels, items: &[Record]) -> Progress {
        let mut counts = BTreeMap::new();
        let mut labelled = 0;
        for r in items {
            if let Some(l) = labels.get(&r.id) {
                *counts.entry(l.to_string()).or_insert(0) += 1;
                labelled += 1;
            }
        }
        Progress {
            items: items.len(),
            labelled,
            counts,
        }
    }

    fn items(&self) -> Reply {
        let (manifest, records) = match (Manifest::read(&self.dir), store::read_items(&self.dir)) {
            (Ok(m), Ok(r)) => (m, r),
            (Err(e), _) | (_, Err(e)) => return Reply::text(500, format!("{e:#}\n")),
        };
        let labels = self.labels();
        let items: Vec<Item> = records
            .iter()
            .map(|r| Item {
                record: r,
                decided: labels.get(&r.id),
            })
            .collect();
        let classes: Vec<&String> = manifest.classes.iter().filter(|c| *c != NONE).collect();
        Reply::json(&serde_json::json!({
            "classes": classes,
            "model": manifest.model,
            "items": items,
            "progress": Self::progress(&labels, &records),
        }))
    }

    fn decide(&self, body: &[u8]) -> Reply {
        let d: Decision = match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => {
                return Reply::text(
                    400,
                    format!("a decision is {{\"id\": ..., \"label\": ...}}: {e}\n"),
                )
            }
        };
        if !store::valid_id(&d.id) || !self.dir.join(store::ITEMS).join(&d.id).is_dir() {
            return Reply::text(404, format!("no item `{}` in this collection\n", d.id));
        }
        let classes = match Manifest::read(&self.dir) {
            Ok(m) => m.classes,
            Err(e) => return Reply::text(500, format!("{e:#}\n")),
        };
        if !(d.label.is_empty() || d.label == NONE || classes.contains(&d.label)) {
            return Reply::text(
                400,
                format!(
                    "`{}` is not a class of this collection ({}), `none` or empty\n",
                    d.label,
                    classes.join(", ")
                ),
            );
        }
        let mut labels = self.labels();
        if let Err(e) = labels.decide(&d.id, &d.label, &crate::publish::timestamp()) {
            return Reply::text(500, format!("{e:#}\n"));
        }
        match store::read_items(&self.dir) {
            Ok(records) => Reply::json(&Self::progress(&labels, &records)),
            Err(e) => Reply::text(500, format!("{e:#}\n")),
        }
    }

    fn image(&self, rest: &str) -> Reply {
        let Some((id, file)) = rest.split_once('/') else {
            return Reply::text(404, "no such image\n");
        };
        if !store::valid_id(id) || ![store::CROP, store::FRAME].contains(&file) {
            return Reply::text(404, "no such image\n");
        }
        match std::fs::read(self.dir.join(store::ITEMS).join(id).join(file)) {
            Ok(bytes) => Reply {
                code: 200,
                content_type: "image/jpeg",
                body: bytes,
            },
            Err(_) => Reply::text(404, format!("no image {file} for item `{id}`\n")),
        }
    }
}
