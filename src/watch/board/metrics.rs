//! `/metrics`: the board's counters in the Prometheus text exposition format.

use super::{Board, LATENCY_BUCKETS_MS};

impl Board {
    /// Prometheus text exposition format 0.0.4.
    pub fn metrics(&self) -> String {
        let (frames, dropped, corrupt, per_label, buckets, sum, up, reconnects) = self.with(|s| {
            (
                s.frames,
                s.dropped,
                s.corrupt,
                s.per_label.clone(),
                s.buckets,
                s.latency_sum_ms,
                s.source_failed.is_none(),
                s.reconnects,
            )
        });
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        };
        metric(
            "tag_frames_total",
            "counter",
            "Frames classified.",
            vec![format!("tag_frames_total {frames}")],
        );
        metric(
            "tag_frames_dropped_total",
            "counter",
            "Frames dropped because inference was busy with an earlier one.",
            vec![format!("tag_frames_dropped_total {dropped}")],
        );
        metric(
            "tag_frames_corrupt_total",
            "counter",
            "Frames skipped as undecodable.",
            vec![format!("tag_frames_corrupt_total {corrupt}")],
        );
        metric(
            "tag_verdicts_total",
            "counter",
            "Products reported, by label.",
            per_label
                .iter()
                .map(|(l, n)| format!("tag_verdicts_total{{label=\"{}\"}} {n}", escape(l)))
                .collect(),
        );
        let mut cumulative = 0;
        let mut lines: Vec<String> = LATENCY_BUCKETS_MS
            .iter()
            .zip(&buckets)
            .map(|(le, n)| {
                cumulative += n;
                format!("tag_latency_ms_bucket{{le=\"{le}\"}} {cumulative}")
            })
            .collect();
        lines.push(format!("tag_latency_ms_bucket{{le=\"+Inf\"}} {frames}"));
        lines.push(format!("tag_latency_ms_sum {sum}"));
        lines.push(format!("tag_latency_ms_count {frames}"));
        metric(
            "tag_latency_ms",
            "histogram",
            "Capture to verdict per frame, in milliseconds.",
            lines,
        );
        metric(
            "tag_source_up",
            "gauge",
            "1 while the frame source is usable, 0 once it failed for good.",
            vec![format!("tag_source_up {}", up as u8)],
        );
        metric(
            "tag_source_reconnects_total",
            "counter",
            "Times the camera or stream was reopened after it was lost.",
            vec![format!("tag_source_reconnects_total {reconnects}")],
        );
        let m = self.model.lock().unwrap_or_else(|e| e.into_inner()).clone();
        metric(
            "tag_model_info",
            "gauge",
            "The model running now (name, version, file SHA-256); swaps counts models swapped in.",
            vec![format!(
                "tag_model_info{{name=\"{}\",version=\"{}\",sha256=\"{}\",swaps=\"{}\"}} 1",
                escape(&m.name),
                escape(&m.version),
                m.sha256,
                m.swaps
            )],
        );
        if let Some(p) = self.publisher.get().map(|m| m.status()) {
            for (name, kind, help, value) in [
                (
                    "tag_mqtt_published_total",
                    "counter",
                    "Verdicts the broker acknowledged.",
                    p.published as f64,
                ),
                (
                    "tag_mqtt_queued",
                    "gauge",
                    "Verdicts in the outbox, not yet acknowledged.",
                    p.queued as f64,
                ),
                (
                    "tag_mqtt_oldest_queued_seconds",
                    "gauge",
                    "Age of the oldest verdict in the outbox.",
                    p.oldest_queued_s,
                ),
                (
                    "tag_mqtt_dropped_total",
                    "counter",
                    "Verdicts dropped as oldest from a full outbox.",
                    p.dropped as f64,
                ),
                (
                    "tag_mqtt_connected",
                    "gauge",
                    "1 while connected to the broker.",
                    p.connected as u8 as f64,
                ),
            ] {
                metric(name, kind, help, vec![format!("{name} {value}")]);
            }
        }
        if let Some((c, _)) = self.collector.get() {
            collect_metrics(c, &mut metric);
        }
        out
    }
}

fn collect_metrics(
    c: &crate::collect::CollectStats,
    metric: &mut impl FnMut(&str, &str, &str, Vec<String>),
) {
    use crate::collect::policy::Reason;
    use std::sync::atomic::Ordering::Relaxed;
    metric(
        "tag_collect_kept_total",
        "counter",
        "Frames kept for review, by reason.",
        Reason::ALL
            .iter()
            .map(|r| {
                format!(
                    "tag_collect_kept_total{{reason=\"{}\"}} {}",
                    r.as_str(),
                    c.kept[*r as usize].load(Relaxed)
                )
            })
            .collect(),
    );
    metric(
        "tag_collect_skipped_total",
        "counter",
        "Frames worth keeping that were not kept: over collect.per_minute (rate), writer busy (busy), no room within collect.max_mib (full), write failed (failed).",
        [
            ("rate", &c.rate_limited),
            ("busy", &c.busy),
            ("full", &c.full),
            ("failed", &c.failed),
        ]
        .iter()
        .map(|(why, n)| format!("tag_collect_skipped_total{{why=\"{why}\"}} {}", n.load(Relaxed)))
        .collect(),
    );
    for (name, kind, help, v) in [
        (
            "tag_collect_evicted_total",
            "counter",
            "Unlabelled items removed to make room for more useful ones.",
            &c.evicted,
        ),
        (
            "tag_collect_items",
            "gauge",
            "Items in the collection.",
            &c.items,
        ),
        (
            "tag_collect_bytes",
            "gauge",
            "Bytes of the collection's items.",
            &c.bytes,
        ),
    ] {
        metric(
            name,
            kind,
            help,
            vec![format!("{name} {}", v.load(Relaxed))],
        );
    }
}

/// A label value as the exposition format wants it (backslash, quote and newline escaped).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
