//! The overlay drawn onto a camera frame must match a reviewed golden image pixel for pixel.
//! After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --release --test
//! overlay_golden` and look at tests/fixtures/frames/*.png before committing them.

use std::path::Path;
use tagger::preprocess::Roi;
use tagger::watch::overlay::{draw, Annotation};

const FRAME: &str = "tests/fixtures/frames/station.png";
const GOLDEN: &str = "tests/fixtures/frames/station-overlay.png";

/// A 320x240 "conveyor" frame: a catalogue photo, enlarged 2x, on a grey belt. Built from the
/// JPEG only when regenerating; the test itself reads the lossless PNG so no decoder differences
/// can creep in.
fn make_frame() -> image::RgbImage {
    let photo = image::open("tests/fixtures/examples/shoes.jpg")
        .unwrap()
        .to_rgb8();
    let big = image::imageops::resize(&photo, 120, 160, image::imageops::FilterType::Nearest);
    let mut frame = image::RgbImage::from_pixel(320, 240, image::Rgb([150, 150, 150]));
    image::imageops::overlay(&mut frame, &big, 100, 40);
    frame
}

#[test]
fn overlay_matches_golden_png() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    if update {
        make_frame().save(FRAME).unwrap();
    }
    let mut frame = image::open(FRAME).unwrap().to_rgb8();
    let roi = Roi {
        x: 0.25,
        y: 0.1,
        width: 0.5,
        height: 0.8,
    };
    draw(
        &mut frame,
        &roi,
        &Annotation {
            label: "Shoes",
            confidence: 0.973,
            uncertain: false,
        },
    );
    if update {
        frame.save(GOLDEN).unwrap();
    }
    let golden = image::open(GOLDEN).unwrap().to_rgb8();
    if frame != golden {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("station-overlay-actual.png");
        frame.save(&out).unwrap();
        let differing = frame
            .pixels()
            .zip(golden.pixels())
            .filter(|(a, b)| a != b)
            .count();
        panic!(
            "overlay differs from {GOLDEN} in {differing} pixels; actual written to {}",
            out.display()
        );
    }
}
