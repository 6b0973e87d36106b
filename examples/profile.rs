//! Where tract spends its time: runs a model at batch 1 and times every node of the optimised
//! plan. `cargo run --release --example profile -- models/baseline.onnx [iterations]`
//! Prints a Markdown table, slowest node first. `--nhwc` first applies tract's `conv_nhwc`
//! transform (convolutions run channel-last). Depthwise convolutions run on the project's kernel
//! as in `tag` (`TAG_DEPTHWISE=tract` for tract's own).

use std::collections::HashMap;
use std::time::Instant;
use tagger::preprocess::{CHANNELS, HEIGHT, WIDTH};
use tagger::tract_onnx::prelude::*;
use tagger_core::backend::tract::TractBackend;

fn main() -> anyhow::Result<()> {
    let nhwc = std::env::args().any(|a| a == "--nhwc");
    let mut args = std::env::args().skip(1).filter(|a| a != "--nhwc");
    let path = args.next().unwrap_or_else(|| "models/baseline.onnx".into());
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let bytes = std::fs::read(&path)?;
    let model = tagger_core::format::typed_model(&bytes)?;
    let model = if nhwc {
        let t = tagger::tract_onnx::tract_core::transform::get_transform("conv_nhwc")?
            .ok_or_else(|| anyhow::anyhow!("tract has no conv_nhwc transform"))?;
        t.transform_into(model)?.into_decluttered()?
    } else {
        model
    };
    // The plan `tag` runs: same batch handling, limits and depthwise rewrite.
    let plan = TractBackend::from_model(model, 1)?.plan(1)?;
    let replaced = plan
        .model()
        .nodes()
        .iter()
        .filter(|n| n.op.name() == "FastDepthwise")
        .count();
    eprintln!("{replaced} depthwise convolutions on the project's kernel");
    let input: TValue =
        Tensor::zero::<f32>(&[1, CHANNELS, HEIGHT as usize, WIDTH as usize])?.into();
    let mut state = plan.spawn()?;
    let mut per_node: HashMap<usize, (String, String, f64)> = HashMap::new();
    let mut total = 0.0;
    for i in 0..iterations + 50 {
        let t0 = Instant::now();
        state.run_plan_with_eval(tvec![input.clone()], |ctx, st, node, inputs| {
            let t = Instant::now();
            let r = tagger::tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            if i >= 50 {
                let e = per_node
                    .entry(node.id)
                    .or_insert_with(|| (node.name.clone(), node.op.name().to_string(), 0.0));
                e.2 += t.elapsed().as_secs_f64();
            }
            r
        })?;
        if i >= 50 {
            total += t0.elapsed().as_secs_f64();
        }
    }
    let mut rows: Vec<_> = per_node.into_values().collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let n = iterations as f64;
    println!(
        "profile of {path}: {iterations} runs at batch 1, mean {:.3} ms per run\n",
        total / n * 1e3
    );
    println!("| node | op | us per run | share |");
    println!("|---|---|---|---|");
    for (name, op, t) in rows {
        println!(
            "| {name} | {op} | {:.1} | {:.1}% |",
            t / n * 1e6,
            100.0 * t / total
        );
    }
    Ok(())
}
