//! Preprocessing cost: decode + fit + normalise, for a camera-sized JPEG (640x480) and for a
//! catalogue-sized one (60x80), through the same functions `tag` and training use.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tagger::preprocess::{self, Normalization};

fn bench(c: &mut Criterion) {
    let norm = Normalization::default();
    let small = std::fs::read("tests/fixtures/examples/shoes.jpg").unwrap();
    let camera = common::camera_jpeg();
    let mut g = c.benchmark_group("preprocess");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in [("jpeg_60x80", &small), ("jpeg_640x480", &camera)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let chw = preprocess::bytes_to_chw(black_box(bytes), "bench").unwrap();
                preprocess::normalize(&chw, &norm)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
