//! Estimates for the devices the device files target, from this run's times and one benchmark
//! run both here (`benches/hpl.sh`) and, by others, on the devices (`benches/devices.json`, each
//! with its source): a model's time there = its time here x (HPL per core here / there).
//!
//! HPL rather than a peak figure because it is measured, published for these boards and runs
//! here unchanged (Debian's hpcc on OpenBLAS); one core because `tag` runs one thread by default.
//! It assumes tract reaches the same share of each CPU's HPL rate as here and that memory keeps
//! up: a Pi's memory is slower than this server's, so the estimates lean fast for the
//! memory-bound depthwise layers; multi-core HPL results divided by their cores lean slow.

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Deserialize)]
struct Devices {
    devices: Vec<Device>,
}

#[derive(Deserialize)]
struct Device {
    device: String,
    /// Published HPL result and the cores it ran on.
    hpl_gflops: Option<f64>,
    cores: Option<f64>,
    /// No published result: another device's per-core rate at this share of its clock.
    like: Option<String>,
    clock_ratio: Option<f64>,
    source: String,
}

#[derive(Deserialize)]
struct Hpl {
    gflops: f64,
    n: u64,
    benchmark: String,
}

impl Devices {
    /// HPL GFLOP/s per core of `d`, published or derived.
    fn per_core(&self, d: &Device) -> Option<f64> {
        match (d.hpl_gflops, d.cores) {
            (Some(g), Some(c)) if c > 0.0 => Some(g / c),
            _ => {
                let like = self
                    .devices
                    .iter()
                    .find(|o| Some(&o.device) == d.like.as_ref())?;
                Some(self.per_core(like)? * d.clock_ratio?)
            }
        }
    }
}

/// The estimates section; a note instead when HPL was not run here.
pub fn write(
    md: &mut String,
    target: &Path,
    per_image: &dyn Fn(&str) -> Option<f64>,
) -> anyhow::Result<()> {
    writeln!(
        md,
        "\n## Estimates for Raspberry Pi 4, Pi 5 and Jetson Orin Nano\n"
    )?;
    let devices: Devices = serde_json::from_str(&std::fs::read_to_string("benches/devices.json")?)?;
    let hpl: Option<Hpl> = std::fs::read_to_string(target.join("hpl.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(hpl) = hpl else {
        writeln!(
            md,
            "Not estimated in this run: `benches/hpl.sh` (HPL on one core here) did not run \
             (`apt-get install hpcc libopenblas0-pthread`)."
        )?;
        return Ok(());
    };
    let builtin = Path::new(tagger::builtin::MODEL_FILE)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let models = [builtin.as_str(), "robust"];
    writeln!(
        md,
        "Not measured on the devices: each is this run's tract f32 time (batch 1, one thread) \
         scaled by HPL per core, here {:.1} GFLOP/s ({}, N={}; `benches/hpl.sh`) against the \
         device's published result (benches/devices.json). Assumes tract gets the same share of \
         each CPU's HPL rate and that memory keeps up: a board's slower memory makes the \
         memory-bound layers (depthwise) slower than this, and a 4-core HPL result divided by 4 \
         understates one core somewhat.\n",
        hpl.gflops, hpl.benchmark, hpl.n
    )?;
    let head: Vec<String> = models.iter().map(|m| format!("{m} ms (est.)")).collect();
    writeln!(
        md,
        "| device | HPL GFLOP/s per core | source | {} |",
        head.join(" | ")
    )?;
    writeln!(md, "|---|---|---|{}", "---|".repeat(models.len()))?;
    let here: Vec<Option<f64>> = models
        .iter()
        .map(|m| per_image(&format!("inference/tract/{m}/f32/t1/b1")))
        .collect();
    writeln!(
        md,
        "| this machine (measured) | {:.1} | `benches/hpl.sh` | {} |",
        hpl.gflops,
        here.iter()
            .map(|t| t.map_or("-".into(), |t| format!("{:.2}", t * 1e3)))
            .collect::<Vec<_>>()
            .join(" | ")
    )?;
    for d in &devices.devices {
        let Some(per_core) = devices.per_core(d) else {
            continue;
        };
        let cells: Vec<String> = here
            .iter()
            .map(|t| {
                t.map_or("-".into(), |t| {
                    format!("{:.1}", t * 1e3 * hpl.gflops / per_core)
                })
            })
            .collect();
        writeln!(
            md,
            "| {} | {per_core:.2} | {} | {} |",
            d.device,
            d.source,
            cells.join(" | ")
        )?;
    }
    Ok(())
}
