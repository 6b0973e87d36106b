use super::*;

#[test]
fn roi_shape_warning() {
    // 0.5625 x 1.0 of 640x480 is 360x480: 3:4, no warning.
    let r = Roi {
        x: 0.21875,
        y: 0.0,
        width: 0.5625,
        height: 1.0,
    };
    assert_eq!(r.aspect_warning(640, 480), None);
    // The whole 640x480 frame is 4:3: warned, with the width that fits.
    let w = Roi::FULL.aspect_warning(640, 480).expect("warned");
    assert!(w.contains("roi.width = 0.562"), "{w}");
}

#[test]
fn a_roi_crop_is_image_crop() {
    let raw: Vec<u8> = (0..37 * 23 * 3).map(|i| (i * 7 % 253) as u8).collect();
    let frame = DynamicImage::ImageRgb8(RgbImage::from_raw(37, 23, raw).unwrap());
    for roi in [
        Roi::centre(0.8),
        "0.1,0.3,0.5,0.7".parse().unwrap(),
        "0.5,0.5,0.5,0.5".parse().unwrap(),
    ] {
        let (x, y, w, h) = roi.pixels(37, 23);
        assert_eq!(
            roi.crop(&frame).as_ref(),
            &frame.crop_imm(x, y, w, h),
            "{roi:?}"
        );
    }
}

#[test]
fn odd_sizes_are_padded_not_stretched() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(60, 60, image::Rgb([0, 0, 0])));
    let out = fit(&img);
    assert_eq!((out.width(), out.height()), (WIDTH, HEIGHT));
    // 60x60 keeps its width: 10 white rows above and below.
    assert_eq!(out.get_pixel(30, 5).0, [255; 3]);
    assert_eq!(out.get_pixel(30, 40).0, [0; 3]);
    assert_eq!(out.get_pixel(30, 75).0, [255; 3]);
}

/// The SIMD resize gives the pixels `image`'s Triangle resize gives (measured: at most one
/// grey level apart, 0.06 on average), for a whole camera frame and for ROIs of it.
#[test]
fn fast_resize_matches_image_triangle() {
    let station = image::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/frames/station.png"),
    )
    .unwrap()
    .to_rgb8();
    let frame = DynamicImage::ImageRgb8(image::imageops::resize(
        &station,
        640,
        480,
        FilterType::Triangle,
    ));
    let rois = [
        Roi::FULL,
        Roi::centre(0.8),
        "0.265625,0.0833,0.46875,0.8333".parse().unwrap(),
        "0.1,0.2,0.1,0.1".parse().unwrap(),
    ];
    for roi in rois {
        let crop = roi.crop(&frame);
        let fast = to_chw_u8(&fit(&crop));
        // The reference: image's Triangle resize to the same size, padded the same way.
        let (w, h) = fitted_size(crop.width(), crop.height());
        let resized = image::imageops::resize(&crop.to_rgb8(), w, h, FilterType::Triangle);
        let reference = to_chw_u8(&pad(&resized));
        let diffs: Vec<f64> = fast
            .iter()
            .zip(&reference)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().cloned().fold(0.0, f64::max);
        assert!(
            mean < 0.2 && max <= 2.0,
            "{roi:?}: mean {mean:.3}, max {max}"
        );
    }
}

#[test]
fn greyscale_becomes_three_equal_channels() {
    let img = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(60, 80, image::Luma([77])));
    let chw = to_chw_u8(&fit(&img));
    assert!(chw.iter().all(|&v| v == 77));
    assert_eq!(chw.len(), IMAGE_LEN);
}

#[test]
fn normalisation_maps_extremes_to_unit_range() {
    let n = Normalization::default();
    let out = normalize(&[0, 255, 0, 255, 0, 255], &n);
    assert_eq!(out, vec![-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]);
}

#[test]
fn empty_and_garbage_bytes_are_errors() {
    assert!(matches!(
        decode(&[], "x.jpg"),
        Err(PreprocessError::Empty(_))
    ));
    assert!(matches!(
        decode(b"hello, not an image", "x.jpg"),
        Err(PreprocessError::Format { .. })
    ));
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/examples")
                .join(name),
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Decode + fit + CHW on mutated real photos (a JPEG and a PNG): an error or a
        /// network-sized image, never a panic.
        #[test]
        fn mutated_images_decode_or_fail_cleanly(
            png in any::<bool>(),
            cut in any::<proptest::sample::Index>(),
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..16),
        ) {
            let mut bytes = if png {
                let img = decode(&fixture("shoes.jpg"), "x").unwrap();
                let mut out = Cursor::new(vec![]);
                img.write_to(&mut out, image::ImageFormat::Png).unwrap();
                out.into_inner()
            } else {
                fixture("bags.jpg")
            };
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len() / 2));
            if let Ok(chw) = bytes_to_chw(&bytes, "mutated") {
                prop_assert_eq!(chw.len(), IMAGE_LEN);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = bytes_to_chw(&bytes, "random");
        }
    }
}
