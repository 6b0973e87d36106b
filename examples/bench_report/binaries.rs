//! The station binary beside the release one (BENCHMARKS.md, *Release and station binaries*).

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The station binary (`--profile device --no-default-features`: no ONNX parser, no built-in
/// model) beside the release one: sizes, x86_64 and, when `scripts/aarch64.sh` has built them,
/// aarch64; speed of both x86_64 binaries measured alternately in this run, the station one on
/// the NNEF form (`tag convert`); whether tract's SDOT int8 kernel was built for aarch64.
pub fn write(md: &mut String, target: &Path) -> anyhow::Result<()> {
    let mib = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / 1048576.0)
            .ok()
    };
    let release = target.join("release/tag");
    let device = target.join("device/tag");
    let cross = target.join("aarch64-debian/aarch64-unknown-linux-gnu");
    writeln!(md, "\n### Release and station binaries\n")?;
    writeln!(
        md,
        "Station: `cargo build --profile device --no-default-features -p fashion-tagger --bin tag`: \
         no ONNX parser and no built-in model (it runs `.nnef.tgz` files), stripped, fat LTO, one \
         codegen unit, size-optimised but for tract's kernels and ops (Cargo.toml); aarch64 built \
         by `scripts/aarch64.sh` (`AARCH64_PROFILE=device` for the station one).\n"
    )?;
    writeln!(md, "| binary | x86_64 MiB | aarch64 MiB |")?;
    writeln!(md, "|---|---|---|")?;
    let cell = |v: Option<f64>| v.map_or("not built".to_string(), |v| format!("{v:.1}"));
    for (name, x86, arm) in [
        ("release (unstripped)", &release, cross.join("release/tag")),
        (
            "station (`device` profile, no ONNX, no model)",
            &device,
            cross.join("device/tag"),
        ),
    ] {
        writeln!(md, "| {name} | {} | {} |", cell(mib(x86)), cell(mib(&arm)))?;
    }
    if device.is_file() && release.is_file() {
        writeln!(
            md,
            "\n`tag bench --iterations 2000` (1 thread), median of the p50 over 3 alternating rounds; \
             the station binary runs the NNEF form of each model:\n"
        )?;
        writeln!(
            md,
            "| model | release, ONNX p50 ms | release, NNEF p50 ms | station, NNEF p50 ms | station / release |"
        )?;
        writeln!(md, "|---|---|---|---|---|")?;
        let builtin = tagger::builtin::MODEL_FILE;
        let qdq = builtin.replace(".onnx", ".qdq.onnx");
        let dir = tempfile::tempdir()?;
        for model in [builtin, qdq.as_str()] {
            if !Path::new(model).is_file() {
                continue;
            }
            let nnef = dir.path().join("model.nnef.tgz");
            tagger::convert::to_nnef(Path::new(model), &nnef)?;
            let nnef = nnef.to_string_lossy().into_owned();
            let runs = [
                (&release, model),
                (&release, nnef.as_str()),
                (&device, nnef.as_str()),
            ];
            let mut p50 = vec![vec![]; runs.len()];
            for _ in 0..3 {
                for ((bin, file), out) in runs.iter().zip(&mut p50) {
                    let o = Command::new(bin)
                        .args(["bench", "--iterations", "2000", "--format", "json"])
                        .args(["--model", file])
                        .output()?;
                    let v: Value = serde_json::from_slice(&o.stdout)?;
                    out.push(v["p50_ms"].as_f64().unwrap_or(f64::NAN));
                }
            }
            let m: Vec<f64> = p50
                .into_iter()
                .map(|mut v| {
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                })
                .collect();
            writeln!(
                md,
                "| {model} | {:.3} | {:.3} | {:.3} | {:.2} |",
                m[0],
                m[1],
                m[2],
                m[2] / m[0]
            )?;
        }
    }
    // tract-linalg's build script sets this cfg only when the cross assembler accepts `sdot`.
    let sdot = ["release/build", "device/build"]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(cross.join(dir)))
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tract-linalg-"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("output")).ok())
        .find(|out| out.contains("rustc-cfg="));
    if let Some(out) = sdot {
        writeln!(
            md,
            "\naarch64 SDOT int8 kernel (tract-linalg build probe, Debian 12 cross toolchain): {}",
            if out.contains("rustc-cfg=tract_arm64_dotprod") {
                "**built** (`cfg(tract_arm64_dotprod)`); tract uses it at run time on CPUs with \
                 the dot-product extension (Pi 5's Cortex-A76, Orin's A78AE), not on the Pi 4's A72"
            } else {
                "**not built**: the cross assembler rejected `sdot`, int8 runs on the plain NEON kernels"
            }
        )?;
    }
    Ok(())
}
