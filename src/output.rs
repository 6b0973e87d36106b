//! Output formats of `tag`: human lines, JSON lines, CSV.

use crate::tagging::TagResult;
use serde_json::json;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `path<TAB>label<TAB>confidence`, errors on stderr.
    Human,
    /// One JSON object per line; a failed input gives `{"path", "error"}`.
    Jsonl,
    /// `path,label,confidence,top,latency_ms,error` with a header line.
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
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format) -> std::io::Result<Self> {
        let mut w = Self { out, format };
        if format == Format::Csv {
            w.out
                .write_all(b"path,label,confidence,top,latency_ms,error\n")?;
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
                        t.verdict.label,
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
                    Ok(t) => json!({
                        "path": r.path,
                        "label": t.verdict.label,
                        "confidence": t.verdict.confidence,
                        "top": t.verdict.top,
                        "model": ctx.model,
                        "backend": ctx.backend,
                        "latency_ms": (t.latency_ms * 1000.0).round() / 1000.0,
                    }),
                    Err(e) => json!({"path": r.path, "error": e}),
                };
                writeln!(self.out, "{v}")?;
            }
            Format::Csv => {
                let record = match &r.outcome {
                    Ok(t) => {
                        let top: Vec<String> = t
                            .verdict
                            .top
                            .iter()
                            .map(|s| format!("{}:{:.4}", s.label, s.score))
                            .collect();
                        [
                            r.path.clone(),
                            t.verdict.label.clone(),
                            format!("{:.4}", t.verdict.confidence),
                            top.join(";"),
                            format!("{:.3}", t.latency_ms),
                            String::new(),
                        ]
                    }
                    Err(e) => [
                        r.path.clone(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        e.clone(),
                    ],
                };
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
