//! Output formats of `tag`: human lines, JSON lines, CSV.

use crate::classify::with_tags;
use crate::tagging::TagResult;
use serde_json::json;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `path<TAB>label<TAB>confidence`, errors on stderr; a multi-head model's tags follow the
    /// label in brackets: `Shoes (Casual Shoes, Black, Men, Casual)`.
    Human,
    /// One JSON object per line (`tags` per extra head); a failed input gives `{"path", "error"}`.
    Jsonl,
    /// `path,label,confidence,top,latency_ms,error` with a header line, then a label and a
    /// confidence column per extra head.
    Csv,
}

/// Context added to every machine-readable record.
pub struct RecordContext<'a> {
    pub model: &'a str,
    pub backend: &'a str,
}

pub struct Writer<W: Write> {
    out: W,
    format: Format,
    /// The model's extra heads (CSV columns).
    heads: Vec<String>,
}

impl<W: Write> Writer<W> {
    /// `heads`: the model's extra heads' names (empty for single-head models).
    pub fn new(out: W, format: Format, heads: &[String]) -> std::io::Result<Self> {
        let mut w = Self {
            out,
            format,
            heads: heads.to_vec(),
        };
        if format == Format::Csv {
            let mut header = "path,label,confidence,top,latency_ms,error".to_string();
            for h in heads {
                header.push_str(&format!(",{h},{h}_confidence"));
            }
            w.out.write_all(header.as_bytes())?;
            w.out.write_all(b"\n")?;
        }
        Ok(w)
    }

    /// Writes one result; human-format errors go to stderr, like any Unix tool's.
    /// Human lines stay one line per input whatever the file name holds (see [`human_path`]).
    pub fn write(&mut self, r: &TagResult, ctx: &RecordContext) -> std::io::Result<()> {
        match self.format {
            Format::Human => match &r.outcome {
                Ok(t) => {
                    let mut line = format!(
                        "{}\t{}\t{:.3}",
                        human_path(&r.path),
                        with_tags(&t.verdict.label, &t.tags),
                        t.verdict.confidence
                    );
                    if t.verdict.top.len() > 1 {
                        let rest: Vec<String> = t.verdict.top[1..]
                            .iter()
                            .map(|s| format!("{} {:.3}", s.label, s.score))
                            .collect();
                        line.push_str(&format!("\t({})", rest.join(", ")));
                    }
                    writeln!(self.out, "{line}")?;
                }
                Err(e) => eprintln!("tag: error: {}", human_path(e)),
            },
            Format::Jsonl => {
                let v = match &r.outcome {
                    Ok(t) => {
                        let mut v = json!({
                            "path": r.path,
                            "label": t.verdict.label,
                            "confidence": t.verdict.confidence,
                            "top": t.verdict.top,
                            "model": ctx.model,
                            "backend": ctx.backend,
                            "latency_ms": (t.latency_ms * 1000.0).round() / 1000.0,
                        });
                        if !self.heads.is_empty() {
                            let tags: serde_json::Map<String, serde_json::Value> = t
                                .tags
                                .iter()
                                .map(|tag| (tag.head.clone(), json!(tag.verdict)))
                                .collect();
                            v["tags"] = serde_json::Value::Object(tags);
                        }
                        v
                    }
                    Err(e) => json!({"path": r.path, "error": e}),
                };
                writeln!(self.out, "{v}")?;
            }
            Format::Csv => {
                let mut record: Vec<String> = match &r.outcome {
                    Ok(t) => {
                        let top: Vec<String> = t
                            .verdict
                            .top
                            .iter()
                            .map(|s| format!("{}:{:.4}", s.label, s.score))
                            .collect();
                        vec![
                            r.path.clone(),
                            t.verdict.label.clone(),
                            format!("{:.4}", t.verdict.confidence),
                            top.join(";"),
                            format!("{:.3}", t.latency_ms),
                            String::new(),
                        ]
                    }
                    Err(e) => vec![
                        r.path.clone(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        e.clone(),
                    ],
                };
                // One label and confidence per head; empty where the head gave no tag (an
                // error, no product); `unknown` with its confidence below the head threshold.
                let tags = r.outcome.as_ref().map(|t| t.tags.as_slice()).unwrap_or(&[]);
                for name in &self.heads {
                    match tags.iter().find(|t| &t.head == name) {
                        Some(t) => {
                            record.push(t.verdict.label.clone());
                            record.push(format!("{:.4}", t.verdict.confidence));
                        }
                        None => record.extend([String::new(), String::new()]),
                    }
                }
                let mut csv = csv::Writer::from_writer(vec![]);
                csv.write_record(&record)?;
                let bytes = csv.into_inner().map_err(|e| e.into_error())?;
                self.out.write_all(&bytes)?;
            }
        }
        self.out.flush()
    }
}

/// A path for the tab-separated human format: tabs, newlines and other control characters are
/// escaped (`\t`, `\n`, `\u{1b}`, ...) so a file name cannot break or forge a line.
pub fn human_path(p: &str) -> std::borrow::Cow<'_, str> {
    if p.chars().any(char::is_control) {
        p.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        p.into()
    }
}

#[cfg(test)]
mod human_tests {
    use super::human_path;

    #[test]
    fn control_characters_in_names_cannot_break_lines() {
        assert_eq!(human_path("a b.jpg"), "a b.jpg");
        assert_eq!(human_path("a\tb\nc.jpg"), "a\\tb\\nc.jpg");
        assert!(!human_path("x\r\u{1b}[31m.jpg")
            .chars()
            .any(char::is_control));
    }
}
