//! Station frames: catalogue products as a warehouse camera sees them.
//!
//! A frame is the product cut out of its white background ([`crate::scene::cutout`]) and composited
//! onto a procedural belt or tray ([`crate::scene::backdrop`]) with a soft shadow, at a random
//! position, scale, rotation and orientation, then given the camera's faults: white balance,
//! brightness and contrast, blur, sensor noise and JPEG compression. A [`Scene`] is the
//! distribution a frame is drawn from; the named [`Level`]s are the benchmark's scenes and
//! [`Scene::training`] the augmentation. Every frame is a pure function of its seed.
//!
//! Frames are rendered at any size: at the network's 60x80 for the benchmark and training (the
//! photos hold no more detail), or as whole 640x480 camera frames with the product inside the
//! station's region of interest, for `tag watch`.

pub mod backdrop;
pub mod cutout;
mod describe;
pub mod frames;
mod render;

pub use render::{render, sample};

use crate::scene::backdrop::SurfaceKind;
use crate::scene::cutout::Mask;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use tagger_core::preprocess::{HEIGHT, WIDTH};

/// The distribution a frame is drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Surfaces behind the product (one is picked per frame).
    pub surfaces: Vec<SurfaceKind>,
    /// Largest offset of the product's centre, as a fraction of the frame's side.
    pub shift: f32,
    /// Product size relative to the catalogue framing (1.0: as large as in the photo).
    pub scale: (f32, f32),
    /// Largest rotation, degrees.
    pub rotate_deg: f32,
    /// Mirror half of the frames.
    pub mirror: bool,
    /// Chance of a soft shadow under the product.
    pub shadow: f32,
    /// Largest per-channel gain change (white balance), brightness (fraction of 255) and
    /// relative contrast change.
    pub white_balance: f32,
    pub brightness: f32,
    pub contrast: f32,
    /// Gaussian blur sigma range in pixels of a 60x80 frame (0: none), and the chance of any.
    pub blur: (f32, f32),
    pub blur_chance: f32,
    /// Sensor noise standard deviation range, in levels.
    pub noise: (f32, f32),
    /// JPEG quality range; `None`: the frame is not compressed.
    pub jpeg: Option<(u8, u8)>,
    /// Chance that the product is drawn as a pair: two smaller copies side by side, one
    /// mirrored, as shoes lie on a floor. Station scenes have none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pair: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// The benchmark's named scenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// A belt, the product near its catalogue size and framing, mild light change (the
    /// settings: [`Level::scene`], in words: [`Scene::describe`]).
    Mild,
    /// Any station surface, smaller products further off-centre, stronger light change, blur,
    /// noise and heavier JPEG.
    Hard,
    /// A light tray instead of a belt, otherwise as `mild`.
    Tray,
    /// Surfaces alone, no product, light and camera faults as `hard`.
    Empty,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Mild, Level::Hard, Level::Tray, Level::Empty];

    pub fn name(self) -> &'static str {
        match self {
            Level::Mild => "mild",
            Level::Hard => "hard",
            Level::Tray => "tray",
            Level::Empty => "empty",
        }
    }

    pub fn scene(self) -> Scene {
        let belts = vec![SurfaceKind::Grey, SurfaceKind::Dark, SurfaceKind::Coloured];
        let mild = Scene {
            surfaces: belts,
            shift: 0.08,
            scale: (0.8, 1.0),
            rotate_deg: 5.0,
            mirror: true,
            shadow: 0.5,
            white_balance: 0.06,
            brightness: 0.08,
            contrast: 0.1,
            blur: (0.0, 0.0),
            blur_chance: 0.0,
            noise: (0.0, 2.0),
            jpeg: Some((80, 90)),
            pair: 0.0,
        };
        let hard = Scene {
            surfaces: SurfaceKind::ALL.to_vec(),
            shift: 0.15,
            scale: (0.55, 0.9),
            rotate_deg: 15.0,
            white_balance: 0.12,
            brightness: 0.18,
            contrast: 0.25,
            blur: (0.4, 1.2),
            blur_chance: 1.0,
            noise: (3.0, 8.0),
            jpeg: Some((55, 80)),
            ..mild.clone()
        };
        match self {
            Level::Mild => mild,
            Level::Hard => hard,
            Level::Tray => Scene {
                surfaces: vec![SurfaceKind::Light],
                ..mild
            },
            Level::Empty => hard,
        }
    }

    /// Empty frames have no product.
    pub fn has_product(self) -> bool {
        self != Level::Empty
    }

    /// A stable number per level, mixed into every frame's seed.
    fn salt(self) -> u64 {
        match self {
            Level::Mild => 0x6d69_6c64,
            Level::Hard => 0x6861_7264,
            Level::Tray => 0x7472_6179,
            Level::Empty => 0x656d_7074,
        }
    }

    /// The seed of frame `index` (an image id, or an empty frame's number) of this level in
    /// `part` (the split part: val and test frames never share a seed).
    pub fn seed(self, part: &str, index: u64) -> u64 {
        let p = part.bytes().fold(0u64, |h, b| mix(h ^ b as u64));
        mix(self.salt() ^ mix(p ^ mix(index)))
    }
}

/// splitmix64's finaliser: a well-spread 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Scene {
    /// The augmentation: wider than `hard` in every direction, so the benchmark's levels lie
    /// inside what the model has seen.
    pub fn training() -> Self {
        Scene {
            surfaces: SurfaceKind::ALL.to_vec(),
            shift: 0.16,
            scale: (0.5, 1.05),
            rotate_deg: 20.0,
            mirror: true,
            shadow: 0.5,
            white_balance: 0.15,
            brightness: 0.2,
            contrast: 0.3,
            blur: (0.3, 1.4),
            blur_chance: 0.5,
            noise: (0.0, 9.0),
            jpeg: Some((50, 95)),
            pair: 0.0,
        }
    }

    /// A product photographed at home: on a wooden floor, tiles, a bed sheet or a carpet, in
    /// room light (warmer or colder, a falloff), smaller in the frame and turned further than
    /// at a station; `pair` as given (shoes lie in pairs).
    pub fn room(pair: f32) -> Self {
        Scene {
            surfaces: SurfaceKind::ROOM.to_vec(),
            shift: 0.14,
            scale: (0.45, 0.95),
            rotate_deg: 30.0,
            mirror: true,
            shadow: 0.3,
            white_balance: 0.2,
            brightness: 0.25,
            contrast: 0.3,
            blur: (0.3, 1.2),
            blur_chance: 0.4,
            noise: (0.0, 8.0),
            jpeg: Some((60, 95)),
            pair,
        }
    }

    /// The catalogue look kept in part of the training batches: the photo itself, mirrored half
    /// the time, moved a few pixels, sometimes recompressed.
    pub fn catalogue() -> Self {
        Scene {
            surfaces: vec![],
            shift: 0.04,
            scale: (0.95, 1.05),
            rotate_deg: 0.0,
            mirror: true,
            shadow: 0.0,
            white_balance: 0.03,
            brightness: 0.03,
            contrast: 0.05,
            blur: (0.0, 0.0),
            blur_chance: 0.0,
            noise: (0.0, 0.0),
            jpeg: Some((70, 95)),
            pair: 0.0,
        }
    }
}

/// Where the product goes in the frame, in output pixels (the whole frame, or a station's ROI).
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// A rendered frame and the JPEG quality its scene asks for.
pub struct Frame {
    pub image: RgbImage,
    pub jpeg_quality: Option<u8>,
}

impl Frame {
    /// The frame's bytes as a camera would send them: JPEG at its quality, else PNG.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![];
        match self.jpeg_quality {
            Some(q) => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
                    .encode_image(&self.image)
                    .expect("JPEG encoding to memory");
            }
            None => {
                self.image
                    .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                    .expect("PNG encoding to memory");
            }
        }
        out
    }

    /// The network input `tag` would compute from this frame (encoded, decoded, fitted): the
    /// runtime's own preprocessing, so a frame is scored exactly as a camera's would be.
    pub fn to_chw(&self) -> Vec<u8> {
        match self.jpeg_quality {
            Some(_) => tagger_core::preprocess::bytes_to_chw(&self.encode(), "station frame")
                .expect("a frame we encoded decodes"),
            // Lossless: skip the PNG round trip.
            None => tagger_core::preprocess::to_chw_u8(&tagger_core::preprocess::fit(
                &image::DynamicImage::ImageRgb8(self.image.clone()),
            )),
        }
    }
}

/// The product to draw: its catalogue CHW image and mask.
pub struct Product<'a> {
    pub chw: &'a [u8],
    pub mask: &'a Mask,
}

/// The network-sized frame rect (the product fills the frame as in the catalogue at scale 1).
pub fn full_rect() -> Rect {
    Rect {
        x: 0.0,
        y: 0.0,
        w: WIDTH as f32,
        h: HEIGHT as f32,
    }
}

/// One frame at the network's size, the product (if any) framed like the catalogue photo at
/// scale 1: what the benchmark, training and calibration render.
pub fn network_frame(
    product: Option<Product>,
    scene: &Scene,
    surface_seed: u64,
    seed: u64,
) -> Frame {
    render(
        product,
        scene,
        surface_seed,
        seed,
        (WIDTH as usize, HEIGHT as usize),
        full_rect(),
    )
}

/// One network-sized frame of `level` for `product` (ignored for `empty`).
pub fn level_frame(level: Level, part: &str, index: u64, product: Option<Product>) -> Frame {
    let seed = level.seed(part, index);
    network_frame(
        if level.has_product() { product } else { None },
        &level.scene(),
        mix(seed ^ 0x5eed),
        seed,
    )
}

/// A catalogue image flipped left-right (CHW).
pub fn mirrored(chw: &[u8]) -> Vec<u8> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut out = vec![0u8; chw.len()];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                out[c * w * h + y * w + x] = chw[c * w * h + y * w + (w - 1 - x)];
            }
        }
    }
    out
}

/// Converts a CHW network-sized image to RGB (for pictures and files).
pub fn chw_to_rgb(chw: &[u8]) -> RgbImage {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane = w * h;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb([chw[i], chw[plane + i], chw[2 * plane + i]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::cutout::product_mask;

    fn product_image() -> Vec<u8> {
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut img = vec![255u8; 3 * w * h];
        for y in 15..65 {
            for x in 10..44 {
                img[y * w + x] = 200;
                img[w * h + y * w + x] = 30;
                img[2 * w * h + y * w + x] = 30;
            }
        }
        img
    }

    #[test]
    fn frames_are_deterministic_per_seed() {
        let img = product_image();
        let mask = product_mask(&img);
        let f = |i| {
            level_frame(
                Level::Hard,
                "val",
                i,
                Some(Product {
                    chw: &img,
                    mask: &mask,
                }),
            )
            .encode()
        };
        assert_eq!(f(7), f(7));
        assert_ne!(f(7), f(8));
        assert_ne!(Level::Mild.seed("val", 7), Level::Mild.seed("test", 7));
    }

    #[test]
    fn the_product_lands_on_a_belt() {
        let img = product_image();
        let mask = product_mask(&img);
        let frame = level_frame(
            Level::Mild,
            "test",
            1,
            Some(Product {
                chw: &img,
                mask: &mask,
            }),
        );
        let px = frame.image.get_pixel(30, 40).0;
        assert!(
            px[0] > 150 && px[1] < 90,
            "centre is the red product: {px:?}"
        );
        // No catalogue white left: corners are belt.
        for (x, y) in [(0, 0), (59, 0), (0, 79), (59, 79)] {
            let p = frame.image.get_pixel(x, y).0;
            assert!(p.iter().any(|&v| v < 235), "corner ({x},{y}) {p:?}");
        }
    }

    #[test]
    fn a_pair_is_two_copies_side_by_side() {
        let img = product_image();
        let mask = product_mask(&img);
        let frame = |scene: &Scene, seed| {
            let p = Product {
                chw: &img,
                mask: &mask,
            };
            network_frame(Some(p), scene, 1, seed).image
        };
        let red = |im: &RgbImage, x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (0..80).map(move |y| (x, y)))
                .filter(|&(x, y)| {
                    let p = im.get_pixel(x, y).0;
                    p[0] > 120 && p[1] < 80 && p[2] < 80
                })
                .count()
        };
        // A light tray and no camera faults, so red pixels are the product's.
        let paired = Scene {
            surfaces: vec![SurfaceKind::Light],
            rotate_deg: 0.0,
            shift: 0.0,
            scale: (0.9, 0.9),
            shadow: 0.0,
            white_balance: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            blur_chance: 0.0,
            noise: (0.0, 0.0),
            jpeg: None,
            ..Scene::room(1.0)
        };
        let single = Scene {
            pair: 0.0,
            ..paired.clone()
        };
        for seed in 0..4 {
            let (p, s) = (frame(&paired, seed), frame(&single, seed));
            // The pair has product on both sides of the centre line and a gap between.
            let (l, r, mid) = (red(&p, 0, 22), red(&p, 38, 60), red(&p, 28, 32));
            assert!(l > 40 && r > 40, "seed {seed}: {l} {r}");
            assert!(
                mid < red(&s, 28, 32),
                "seed {seed}: {mid} {}",
                red(&s, 28, 32)
            );
            assert_eq!(p, frame(&paired, seed), "deterministic");
        }
    }

    #[test]
    fn mirroring_twice_is_identity() {
        let img = product_image();
        assert_eq!(mirrored(&mirrored(&img)), img);
        assert_ne!(mirrored(&img), img);
    }
}
