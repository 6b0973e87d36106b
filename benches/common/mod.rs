//! Inputs shared by the benches.

/// A 640x480 camera-like JPEG made from the station fixture (encoded once, in memory).
pub fn camera_jpeg() -> Vec<u8> {
    let frame = image::open("tests/fixtures/frames/station.png")
        .expect("tests/fixtures/frames/station.png (run from the repository root)")
        .to_rgb8();
    let big = image::imageops::resize(&frame, 640, 480, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&big)
        .expect("JPEG encodes");
    jpeg
}
