//! The one preprocessing path: training, calibration, export checks, `tag` and the tests all
//! call these functions, so a model never sees pixels prepared differently from how it was
//! trained.
//!
//! Steps: decode (JPEG/PNG/WebP/BMP, with decompression-bomb limits) -> RGB (greyscale is
//! replicated) -> fit into 60x80 (width x height) keeping the aspect ratio, padding with white
//! like the catalogue backgrounds -> planar CHW u8 -> normalise to f32.

use crate::limits;
use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;

/// Network input width in pixels (the dataset's photos are 60 wide).
pub const WIDTH: u32 = 60;
/// Network input height in pixels (the dataset's photos are 80 high).
pub const HEIGHT: u32 = 80;
/// Colour channels of the network input.
pub const CHANNELS: usize = 3;
/// Values in one CHW image.
pub const IMAGE_LEN: usize = CHANNELS * (WIDTH as usize) * (HEIGHT as usize);
/// Padding colour for odd aspect ratios: the catalogue photos sit on white.
pub const PAD_VALUE: u8 = 255;
/// Largest image accepted, in pixels per side; larger ones are rejected as decompression bombs.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation accepted, in bytes.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Per-channel normalisation `(x / 255 - mean) / std`, stored in every model's metadata so the
/// runtime applies exactly what the model was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Normalization {
    /// Maps [0, 255] onto [-1, 1]. The first batch-norm layer absorbs any remaining offset, so a
    /// dataset-specific mean buys nothing and would be one more number to keep in sync.
    fn default() -> Self {
        Self {
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }
}

/// Why an image could not be turned into a network input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The message names the path (limits::read_file).
    #[error("{reason}")]
    Read { path: String, reason: String },
    #[error("{0} is empty (0 bytes): not an image")]
    Empty(String),
    #[error("{path} is not a supported image (JPEG, PNG, WebP or BMP): {reason}")]
    Format { path: String, reason: String },
    #[error("{path} could not be decoded (corrupt or truncated?): {reason}")]
    Decode { path: String, reason: String },
    #[error("{path} is too large to decode safely ({reason}); resize it first")]
    TooLarge { path: String, reason: String },
}

/// Decoder limits that stop decompression bombs before they allocate.
pub fn decoder_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// Decodes image bytes; `name` is only used in error messages.
pub fn decode(bytes: &[u8], name: &str) -> Result<DynamicImage, PreprocessError> {
    decode_budgeted(bytes, name).map(|(image, _)| image)
}

fn limit_error(name: &str, e: image::ImageError) -> PreprocessError {
    match e {
        image::ImageError::Limits(l) => PreprocessError::TooLarge {
            path: name.to_string(),
            reason: l.to_string(),
        },
        image::ImageError::Unsupported(u) => PreprocessError::Format {
            path: name.to_string(),
            reason: u.to_string(),
        },
        other => PreprocessError::Decode {
            path: name.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Decodes while holding a share of the process-wide decode budget ([`limits::DECODES`]) as
/// large as the decoded image and its RGB copy; the share is released when the returned guard is
/// dropped, so callers keep it while the full-size image lives.
fn decode_budgeted(
    bytes: &[u8],
    name: &str,
) -> Result<(DynamicImage, limits::Reservation<'static>), PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty(name.to_string()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Format {
            path: name.to_string(),
            reason: e.to_string(),
        })?;
    if reader.format().is_none() {
        return Err(PreprocessError::Format {
            path: name.to_string(),
            reason: "unrecognised file signature".into(),
        });
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && jpeg_truncated(bytes) {
        // The JPEG decoder fills a cut-off scan with grey and reports success; a warehouse
        // camera's half-written frame must be an error, not a confident wrong label.
        return Err(PreprocessError::Decode {
            path: name.to_string(),
            reason: "JPEG is truncated (no end-of-image marker after the last scan)".into(),
        });
    }
    reader.limits(decoder_limits());
    // The header says how much decoding will take: check it against the per-image limit and
    // reserve it from the shared budget before allocating (what `ImageReader::decode` does,
    // plus the budget).
    let mut decoder = reader.into_decoder().map_err(|e| limit_error(name, e))?;
    let total = decoder.total_bytes();
    let mut per_image = decoder_limits();
    per_image.reserve(total).map_err(|e| limit_error(name, e))?;
    decoder
        .set_limits(per_image)
        .map_err(|e| limit_error(name, e))?;
    let (w, h) = decoder.dimensions();
    let rgb_copy = if decoder.color_type() == image::ColorType::Rgb8 {
        0
    } else {
        w as u64 * h as u64 * 3
    };
    let budget = limits::DECODES.reserve(total.saturating_add(rgb_copy));
    let image = DynamicImage::from_decoder(decoder).map_err(|e| limit_error(name, e))?;
    Ok((image, budget))
}

/// True when the JPEG has no end-of-image marker (FF D9) after its last start-of-scan (FF DA).
/// Entropy-coded data never holds either marker (0xFF is byte-stuffed), and thumbnails sit before
/// the main scan, so this spots files cut short while tolerating trailing bytes after the end.
pub fn jpeg_truncated(bytes: &[u8]) -> bool {
    match bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) {
        None => true,
        Some(sos) => !bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]),
    }
}

/// Fits any image into WIDTH x HEIGHT without distorting it: scale so the whole image fits,
/// then centre it on a white canvas. Images already at 60x80 pass through untouched.
pub fn fit(image: &DynamicImage) -> RgbImage {
    // No copy of an image that is RGB already (most camera frames and photos): a large photo
    // then costs its decoded size once, not twice.
    let rgb = match image {
        DynamicImage::ImageRgb8(rgb) => std::borrow::Cow::Borrowed(rgb),
        other => std::borrow::Cow::Owned(other.to_rgb8()),
    };
    if rgb.width() == WIDTH && rgb.height() == HEIGHT {
        return rgb.into_owned();
    }
    let (w, h) = fitted_size(rgb.width(), rgb.height());
    let resized = resize(&rgb, w, h)
        .unwrap_or_else(|| image::imageops::resize(rgb.as_ref(), w, h, FilterType::Triangle));
    pad(&resized)
}

/// The size a `w` x `h` image is scaled to so that it fits WIDTH x HEIGHT, aspect kept.
fn fitted_size(w: u32, h: u32) -> (u32, u32) {
    let scale = f64::min(WIDTH as f64 / w as f64, HEIGHT as f64 / h as f64);
    (
        ((w as f64 * scale).round() as u32).clamp(1, WIDTH),
        ((h as f64 * scale).round() as u32).clamp(1, HEIGHT),
    )
}

/// Centres an image of at most WIDTH x HEIGHT on a white canvas of that size.
fn pad(resized: &RgbImage) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([PAD_VALUE; 3]));
    image::imageops::overlay(
        &mut canvas,
        resized,
        ((WIDTH - resized.width()) / 2) as i64,
        ((HEIGHT - resized.height()) / 2) as i64,
    );
    canvas
}

thread_local! {
    /// fast_image_resize keeps its buffers and CPU-feature choice between calls.
    static RESIZER: std::cell::RefCell<fast_image_resize::Resizer> =
        std::cell::RefCell::new(fast_image_resize::Resizer::new());
}

/// `rgb` resized to `w` x `h` with fast_image_resize's bilinear (tent) convolution, the filter
/// `image`'s `Triangle` applies, with SIMD: the same pixels within one grey level (tests
/// below), several times faster. `None` only if it refuses the sizes (it should not); `fit`
/// then resizes with `image`.
fn resize(rgb: &RgbImage, w: u32, h: u32) -> Option<RgbImage> {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions};
    let src =
        images::ImageRef::new(rgb.width(), rgb.height(), rgb.as_raw(), PixelType::U8x3).ok()?;
    let mut dst = images::Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    RESIZER
        .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
        .ok()?;
    RgbImage::from_raw(w, h, dst.into_vec())
}

/// A region of interest as fractions of the frame (0..1), so one setting fits any camera
/// resolution: a conveyor camera classifies the product, not the belt around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roi {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Default for Roi {
    fn default() -> Self {
        Self::FULL
    }
}

impl std::str::FromStr for Roi {
    type Err = String;

    /// `x,y,width,height` as fractions of the frame (checked by [`Roi::validate`]).
    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<f32> = s
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("`{s}`: expected four numbers x,y,width,height"))?;
        let [x, y, width, height] = v[..] else {
            return Err(format!("`{s}`: expected four numbers x,y,width,height"));
        };
        Ok(Roi {
            x,
            y,
            width,
            height,
        })
    }
}

impl Roi {
    /// The whole frame.
    pub const FULL: Roi = Roi {
        x: 0.0,
        y: 0.0,
        width: 1.0,
        height: 1.0,
    };

    /// A centred crop covering `fraction` of each side.
    pub fn centre(fraction: f32) -> Roi {
        let m = (1.0 - fraction) / 2.0;
        Roi {
            x: m,
            y: m,
            width: fraction,
            height: fraction,
        }
    }

    /// Checks the fractions; the message says which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        for (name, v) in [
            ("x", self.x),
            ("y", self.y),
            ("width", self.width),
            ("height", self.height),
        ] {
            if !ok(v) {
                return Err(format!(
                    "roi.{name} = {v} must be a fraction between 0 and 1"
                ));
            }
        }
        if self.width <= 0.0 || self.height <= 0.0 {
            return Err("roi.width and roi.height must be above 0".into());
        }
        if self.x + self.width > 1.0 + 1e-6 || self.y + self.height > 1.0 + 1e-6 {
            return Err(format!(
                "roi reaches outside the frame (x + width = {}, y + height = {}; both must be <= 1)",
                self.x + self.width,
                self.y + self.height
            ));
        }
        Ok(())
    }

    /// The ROI in pixels of a `w` x `h` frame: (x, y, width, height), at least 1x1, inside it.
    pub fn pixels(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        let x = ((self.x * w as f32).round() as u32).min(w.saturating_sub(1));
        let y = ((self.y * h as f32).round() as u32).min(h.saturating_sub(1));
        let rw = ((self.width * w as f32).round() as u32).clamp(1, w - x);
        let rh = ((self.height * h as f32).round() as u32).clamp(1, h - y);
        (x, y, rw, rh)
    }

    /// A warning when this ROI, on a `w` x `h` frame, is far from the network's 3:4 shape: the
    /// crop is then fitted with white bars, which a belt never has. Says which width fixes it.
    pub fn aspect_warning(&self, w: u32, h: u32) -> Option<String> {
        let (_, _, rw, rh) = self.pixels(w, h);
        let want = WIDTH as f32 / HEIGHT as f32;
        let have = rw as f32 / rh as f32;
        if (have / want - 1.0).abs() <= 0.1 {
            return None;
        }
        let width = (rh as f32 * want / w as f32).min(1.0);
        Some(format!(
            "roi is {rw}x{rh} px on this {w}x{h} camera, not the model's 3:4 ({WIDTH}x{HEIGHT}): \
             it is padded with white bars, which lowers accuracy; for a 3:4 region at this height \
             set roi.width = {width:.3} (and roi.x = {:.3} to centre it)",
            ((1.0 - width) / 2.0).max(0.0)
        ))
    }

    /// The part of a frame to classify; the full ROI returns the frame as it is.
    pub fn crop<'a>(&self, frame: &'a DynamicImage) -> std::borrow::Cow<'a, DynamicImage> {
        if *self == Roi::FULL {
            return std::borrow::Cow::Borrowed(frame);
        }
        let (x, y, w, h) = self.pixels(frame.width(), frame.height());
        std::borrow::Cow::Owned(match frame {
            DynamicImage::ImageRgb8(rgb) => DynamicImage::ImageRgb8(crop_rgb(rgb, x, y, w, h)),
            other => other.crop_imm(x, y, w, h),
        })
    }
}

/// The `w` x `h` region at (`x`, `y`) of an RGB image (inside it, as [`Roi::pixels`] gives),
/// copied row by row: image's generic `crop_imm` copies pixel by pixel and cost 4x the resize
/// that follows (0.19 ms for a 512x384 ROI, docs/BENCHMARKS.md).
fn crop_rgb(rgb: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let stride = rgb.width() as usize * 3;
    let (x, w) = (x as usize * 3, w as usize * 3);
    let mut out = Vec::with_capacity(w * h as usize);
    for row in rgb
        .as_raw()
        .chunks_exact(stride)
        .skip(y as usize)
        .take(h as usize)
    {
        out.extend_from_slice(&row[x..x + w]);
    }
    RgbImage::from_raw(w as u32 / 3, h, out).expect("w * h * 3 bytes")
}

/// Planar CHW bytes of a WIDTH x HEIGHT RGB image: the compact form cached for training.
pub fn to_chw_u8(rgb: &RgbImage) -> Vec<u8> {
    assert_eq!(
        (rgb.width(), rgb.height()),
        (WIDTH, HEIGHT),
        "call fit() first"
    );
    let plane = (WIDTH * HEIGHT) as usize;
    let mut out = vec![0u8; IMAGE_LEN];
    for (i, px) in rgb.pixels().enumerate() {
        out[i] = px[0];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[2];
    }
    out
}

/// Normalises CHW bytes into `out` (same length).
pub fn normalize_into(chw: &[u8], norm: &Normalization, out: &mut [f32]) {
    assert_eq!(chw.len(), out.len());
    let plane = chw.len() / CHANNELS;
    for c in 0..CHANNELS {
        let scale = 1.0 / (255.0 * norm.std[c]);
        let offset = norm.mean[c] / norm.std[c];
        for (o, &v) in out[c * plane..(c + 1) * plane]
            .iter_mut()
            .zip(&chw[c * plane..(c + 1) * plane])
        {
            *o = v as f32 * scale - offset;
        }
    }
}

/// Normalised CHW f32 values of one image.
pub fn normalize(chw: &[u8], norm: &Normalization) -> Vec<f32> {
    let mut out = vec![0f32; chw.len()];
    normalize_into(chw, norm, &mut out);
    out
}

/// Bytes -> CHW u8, the cacheable part of preprocessing.
pub fn bytes_to_chw(bytes: &[u8], name: &str) -> Result<Vec<u8>, PreprocessError> {
    let (image, _budget) = decode_budgeted(bytes, name)?;
    Ok(to_chw_u8(&fit(&image)))
}

/// Reads and prepares a file into CHW u8.
pub fn file_to_chw(path: &Path) -> Result<Vec<u8>, PreprocessError> {
    let name = path.display().to_string();
    let bytes = limits::read_file(path, limits::MAX_IMAGE_BYTES).map_err(|reason| {
        PreprocessError::Read {
            path: name.clone(),
            reason,
        }
    })?;
    bytes_to_chw(&bytes, &name)
}

/// Reads and prepares a file into the network's normalised f32 input (CHW).
pub fn file_to_input(path: &Path, norm: &Normalization) -> Result<Vec<f32>, PreprocessError> {
    Ok(normalize(&file_to_chw(path)?, norm))
}

#[cfg(test)]
mod tests;
