//! Multi-head models through the real `tag` binary: every head in every format, the
//! head threshold, no tags for an empty belt, `tag watch` records, and single-head models
//! unchanged.

mod common;

use common::*;
use std::path::Path;

fn multihead_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/multihead.onnx")
        .display()
        .to_string()
}

const HEADS: [&str; 4] = ["articleType", "colour", "gender", "usage"];

fn belt() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/frames/empty-belt.jpg")
        .display()
        .to_string()
}

#[test]
fn jsonl_carries_every_head_beside_the_class() {
    let o = tag(&[
        "--model",
        &multihead_model(),
        "--format",
        "jsonl",
        "--top-k",
        "2",
        &examples().display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let records = jsonl(&o);
    assert_eq!(records.len(), 13);
    for r in &records {
        let tags = r["tags"].as_object().expect("tags object");
        assert_eq!(tags.keys().collect::<Vec<_>>(), HEADS, "{r}");
        for (head, t) in tags {
            let c = t["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c), "{head}: {t}");
            assert!(t["label"].is_string(), "{head}: {t}");
            assert_eq!(t["top"].as_array().unwrap().len(), 2, "{head}: {t}");
            assert_eq!(t["top"][0]["score"].as_f64().unwrap(), c, "{head}: {t}");
        }
        // The class fields are those of any model.
        for field in [
            "path",
            "label",
            "confidence",
            "top",
            "model",
            "backend",
            "latency_ms",
        ] {
            assert!(r.get(field).is_some(), "{field} in {r}");
        }
    }
    // An empty belt is `none` and gets no tags.
    let belt = jsonl(&tag(&[
        "--model",
        &multihead_model(),
        "--format",
        "jsonl",
        &belt(),
    ]));
    assert_eq!(belt[0]["label"], "none");
    assert_eq!(belt[0]["tags"], serde_json::json!({}));
}

#[test]
fn human_lines_put_the_tags_after_the_class_and_the_head_threshold_hides_unsure_ones() {
    let m = multihead_model();
    let shoes = example("shoes.jpg");
    let o = tag(&["--model", &m, &shoes]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stdout(&o);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 3, "{line}");
    let (class, tags) = fields[1].split_once(" (").expect("`Class (tags)`");
    assert_eq!(class, "Shoes", "{line}");
    assert!(tags.ends_with(')') && !tags.contains("unknown"), "{line}");
    // The same labels as jsonl gives, in head order, those at or above the head threshold.
    let j = &jsonl(&tag(&["--model", &m, "--format", "jsonl", &shoes]))[0];
    let shown: Vec<&str> = HEADS
        .iter()
        .map(|h| &j["tags"][h])
        .filter(|t| t["confidence"].as_f64().unwrap() >= 0.5)
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!(tags.trim_end_matches(')'), shown.join(", "), "{line}");
    // Nothing is sure enough at 1.0: no brackets, every tag `unknown`.
    let o = tag(&["--model", &m, "--head-threshold", "1", &shoes]);
    assert_eq!(
        stdout(&o).split('\t').nth(1),
        Some("Shoes"),
        "{}",
        stdout(&o)
    );
    let j = &jsonl(&tag(&[
        "--model",
        &m,
        "--format",
        "jsonl",
        "--head-threshold",
        "1",
        &shoes,
    ]))[0];
    assert!(
        HEADS.iter().all(|h| j["tags"][h]["label"] == "unknown"),
        "{j}"
    );
    let bad = tag(&["--model", &m, "--head-threshold", "2", &shoes]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--head-threshold"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn csv_has_a_label_and_confidence_column_per_head() {
    let m = multihead_model();
    let o = tag(&[
        "--model",
        &m,
        "--format",
        "csv",
        &example("bags.jpg"),
        &belt(),
        "missing.jpg",
    ]);
    assert_eq!(o.status.code(), Some(1), "one input is missing");
    let out = stdout(&o);
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let mut want: Vec<String> = "path,label,confidence,top,latency_ms,error"
        .split(',')
        .map(str::to_string)
        .collect();
    for h in HEADS {
        want.push(h.to_string());
        want.push(format!("{h}_confidence"));
    }
    assert_eq!(header, want);
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.len(), want.len());
    }
    assert_eq!(&rows[0][1], "Bags");
    assert!(!rows[0][6].is_empty() && rows[0][7].parse::<f32>().is_ok());
    assert_eq!(&rows[1][1], "none");
    assert!(
        rows[1].iter().skip(6).all(str::is_empty),
        "no tags for `none`"
    );
    assert!(!rows[2][5].is_empty() && rows[2].iter().skip(6).all(str::is_empty));
    // A single-head model keeps the six columns.
    let old = stdout(&tag(&["--format", "csv", &example("bags.jpg")]));
    assert!(
        old.starts_with("path,label,confidence,top,latency_ms,error\n"),
        "{old}"
    );
    let old = &jsonl(&tag(&["--format", "jsonl", &example("bags.jpg")]))[0];
    assert!(old.get("tags").is_none(), "{old}");
}

#[test]
fn tag_watch_records_carry_the_tags() {
    let frames = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frames/passby");
    let o = tag(&[
        "watch",
        "--source",
        frames.to_str().unwrap(),
        "--model",
        &multihead_model(),
        "--roi",
        "0.2,0,0.6,1",
        "--debounce",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let verdicts = jsonl(&o);
    assert!(!verdicts.is_empty(), "{}", stderr(&o));
    for v in &verdicts {
        let tags = v["tags"].as_object().expect("tags");
        assert_eq!(tags.keys().collect::<Vec<_>>(), HEADS, "{v}");
        assert!(tags
            .values()
            .all(|t| t["label"].is_string() && t["confidence"].is_number()));
    }
}
