//! On-the-fly augmentation for warehouse cameras, applied to training batches only.
//!
//! Works on the cached 3x80x60 u8 images: a random affine warp (flip, shift, scale, rotation,
//! white fill like the catalogue background) then photometric jitter (brightness, contrast, per
//! channel gain) and mild noise. Every draw comes from a seed, so a run is reproducible.
//! burn-vision has affine transforms but no flip or colour jitter, and it works on float tensors
//! of a whole batch; doing it per image on u8 keeps it cheap and identical on resume.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tagger_core::preprocess::{HEIGHT, IMAGE_LEN, PAD_VALUE, WIDTH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub flip: bool,
    /// Largest shift, as a fraction of the side.
    pub shift: f32,
    /// Largest relative zoom in or out.
    pub scale: f32,
    /// Largest rotation in degrees.
    pub rotate_deg: f32,
    /// Largest brightness change, as a fraction of 255.
    pub brightness: f32,
    /// Largest relative contrast change.
    pub contrast: f32,
    /// Largest relative gain change per colour channel.
    pub colour: f32,
    /// Standard deviation of added noise, in pixel levels, applied to half the images.
    pub noise: f32,
}

impl Default for Augment {
    /// Mild settings: a product on a conveyor is upright, roughly centred and evenly lit.
    fn default() -> Self {
        Self {
            flip: true,
            shift: 0.08,
            scale: 0.10,
            rotate_deg: 8.0,
            brightness: 0.10,
            contrast: 0.15,
            colour: 0.08,
            noise: 3.0,
        }
    }
}

impl Augment {
    /// Writes an augmented copy of the CHW image `src` into `dst`.
    pub fn apply(&self, src: &[u8], dst: &mut [u8], seed: u64) {
        assert_eq!(src.len(), IMAGE_LEN);
        assert_eq!(dst.len(), IMAGE_LEN);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut sym = |m: f32| {
            if m > 0.0 {
                rng.random_range(-m..=m)
            } else {
                0.0
            }
        };
        let flip = self.flip && sym(1.0) > 0.0;
        let (dx, dy) = (sym(self.shift) * w as f32, sym(self.shift) * h as f32);
        let zoom = 1.0 + sym(self.scale);
        let angle = sym(self.rotate_deg).to_radians();
        let brightness = sym(self.brightness) * 255.0;
        let contrast = 1.0 + sym(self.contrast);
        let gains = [
            1.0 + sym(self.colour),
            1.0 + sym(self.colour),
            1.0 + sym(self.colour),
        ];
        let noisy = sym(1.0) > 0.0 && self.noise > 0.0;
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let (sin, cos) = angle.sin_cos();
        let plane = w * h;
        for y in 0..h {
            for x in 0..w {
                // Inverse map: output pixel -> source coordinates.
                let ox = if flip { w - 1 - x } else { x } as f32 - cx - dx;
                let oy = y as f32 - cy - dy;
                let sx = (cos * ox + sin * oy) / zoom + cx;
                let sy = (-sin * ox + cos * oy) / zoom + cy;
                for c in 0..3 {
                    let v = bilinear(&src[c * plane..(c + 1) * plane], w, h, sx, sy);
                    let v = (v - 128.0) * contrast + 128.0 + brightness;
                    dst[c * plane + y * w + x] = (v * gains[c]).clamp(0.0, 255.0) as u8;
                }
            }
        }
        if noisy {
            for v in dst.iter_mut() {
                // Sum of uniforms: a cheap near-Gaussian with the chosen deviation.
                let n: f32 = (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>();
                *v = (*v as f32 + n * self.noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

fn bilinear(p: &[u8], w: usize, h: usize, x: f32, y: f32) -> f32 {
    crate::scene::sample(p, w, h, x, y, PAD_VALUE as f32)
}

/// A PNG grid: each row is one training image, then `variants` augmented copies of it, at 2x.
pub fn sample_grid(images: &[&[u8]], aug: &Augment, variants: usize, seed: u64) -> image::RgbImage {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let (cell_w, cell_h, gap) = (2 * w as u32, 2 * h as u32, 4u32);
    let cols = 1 + variants as u32;
    let mut grid = image::RgbImage::from_pixel(
        cols * (cell_w + gap) + gap,
        images.len() as u32 * (cell_h + gap) + gap,
        image::Rgb([90, 90, 90]),
    );
    let mut scratch = vec![0u8; IMAGE_LEN];
    let plane = w * h;
    for (r, img) in images.iter().enumerate() {
        for c in 0..cols {
            let src: &[u8] = if c == 0 {
                img
            } else {
                aug.apply(img, &mut scratch, seed + (r as u64) * 1000 + c as u64);
                &scratch
            };
            let (x0, y0) = (gap + c * (cell_w + gap), gap + r as u32 * (cell_h + gap));
            for y in 0..cell_h {
                for x in 0..cell_w {
                    let i = (y as usize / 2) * w + x as usize / 2;
                    let px = image::Rgb([src[i], src[plane + i], src[2 * plane + i]]);
                    grid.put_pixel(x0 + x, y0 + y, px);
                }
            }
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..IMAGE_LEN).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn deterministic_per_seed_and_keeps_shape() {
        let a = Augment::default();
        let (mut x, mut y, mut z) = (vec![0; IMAGE_LEN], vec![0; IMAGE_LEN], vec![0; IMAGE_LEN]);
        a.apply(&image(), &mut x, 42);
        a.apply(&image(), &mut y, 42);
        a.apply(&image(), &mut z, 43);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn identity_settings_copy_the_image() {
        let a = Augment {
            flip: false,
            shift: 0.0,
            scale: 0.0,
            rotate_deg: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            colour: 0.0,
            noise: 0.0,
        };
        let mut out = vec![0; IMAGE_LEN];
        a.apply(&image(), &mut out, 1);
        assert_eq!(out, image());
    }
}
