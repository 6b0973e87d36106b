//! Compositing a frame: the product cut-out (once, or twice as a pair) with its shadow onto a
//! surface, then the camera's faults (white balance, contrast, brightness, blur, noise). Every
//! draw comes from the frame's seeded RNG, in a fixed order, so a frame is a function of its seed.

use super::{Frame, Product, Rect, Scene};
use crate::scene::backdrop::Surface;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tagger_core::preprocess::{HEIGHT, WIDTH};

fn sym(rng: &mut StdRng, m: f32) -> f32 {
    if m > 0.0 {
        rng.random_range(-m..=m)
    } else {
        0.0
    }
}

fn range(rng: &mut StdRng, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

/// Bilinear sample of one channel plane (`w x h`); outside the plane: `outside`.
pub fn sample(p: &[u8], w: usize, h: usize, x: f32, y: f32, outside: f32) -> f32 {
    let at = |xi: i64, yi: i64| -> f32 {
        if xi < 0 || yi < 0 || xi >= w as i64 || yi >= h as i64 {
            outside
        } else {
            p[yi as usize * w + xi as usize] as f32
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Renders one frame of `scene` at `out_w x out_h` with the product (if any) placed in `rect`.
/// `surface_seed` draws the belt (a sequence of frames can share one), `seed` everything else.
/// A scene without surfaces keeps the catalogue's white background.
pub fn render(
    product: Option<Product>,
    scene: &Scene,
    surface_seed: u64,
    seed: u64,
    (out_w, out_h): (usize, usize),
    rect: Rect,
) -> Frame {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bg = if scene.surfaces.is_empty() {
        vec![[255.0f32; 3]; out_w * out_h]
    } else {
        let mut srng = StdRng::seed_from_u64(surface_seed);
        Surface::draw_any(&scene.surfaces, &mut srng).paint(out_w, out_h)
    };
    // Scale of a 60x80 source pixel in output pixels (frame-size independent draws below).
    let unit = rect.h / HEIGHT as f32;
    if let Some(p) = product {
        let mirror = scene.mirror && rng.random_bool(0.5);
        let s = range(&mut rng, scene.scale);
        let angle = sym(&mut rng, scene.rotate_deg).to_radians();
        let dx = sym(&mut rng, scene.shift) * rect.w;
        let dy = sym(&mut rng, scene.shift) * rect.h;
        let shadow = rng.random_bool(scene.shadow as f64).then(|| {
            (
                rng.random_range(1.0..4.0f32),
                rng.random_range(1.0..4.0f32),
                rng.random_range(0.25..0.55f32),
            )
        });
        let one = Placement {
            cx: rect.x + rect.w / 2.0 + dx,
            cy: rect.y + rect.h / 2.0 + dy,
            k: s * unit,
            angle,
            mirror,
            shadow,
        };
        // Only scenes with pairs draw from the RNG here: station frames stay as they were.
        if scene.pair > 0.0 && rng.random_bool(scene.pair as f64) {
            let gap = rng.random_range(0.2..0.28) * rect.w;
            let tilt = sym(&mut rng, 12.0).to_radians();
            let left = Placement {
                cx: one.cx - gap,
                k: one.k * 0.7,
                ..one
            };
            let right = Placement {
                cx: one.cx + gap,
                cy: one.cy + sym(&mut rng, 0.04) * rect.h,
                angle: one.angle + tilt,
                mirror: !one.mirror,
                ..left
            };
            draw_product(&mut bg, (out_w, out_h), &p, &left, unit);
            draw_product(&mut bg, (out_w, out_h), &p, &right, unit);
        } else {
            draw_product(&mut bg, (out_w, out_h), &p, &one, unit);
        }
    }
    // Camera: white balance, contrast, brightness.
    let gains = [
        1.0 + sym(&mut rng, scene.white_balance),
        1.0 + sym(&mut rng, scene.white_balance),
        1.0 + sym(&mut rng, scene.white_balance),
    ];
    let contrast = 1.0 + sym(&mut rng, scene.contrast);
    let brightness = sym(&mut rng, scene.brightness) * 255.0;
    for px in bg.iter_mut() {
        for c in 0..3 {
            px[c] = ((px[c] - 128.0) * contrast + 128.0 + brightness) * gains[c];
        }
    }
    if scene.blur_chance > 0.0 && rng.random_bool(scene.blur_chance as f64) {
        let sigma = range(&mut rng, scene.blur) * unit;
        blur(&mut bg, out_w, out_h, sigma);
    }
    let sigma = range(&mut rng, scene.noise);
    let mut image = RgbImage::new(out_w as u32, out_h as u32);
    for (px, value) in image.pixels_mut().zip(&bg) {
        for (c, v) in value.iter().enumerate() {
            let n = if sigma > 0.0 {
                // Sum of three uniforms: near-Gaussian, variance 1.
                (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * sigma
            } else {
                0.0
            };
            px.0[c] = (v + n).round().clamp(0.0, 255.0) as u8;
        }
    }
    let jpeg_quality = scene.jpeg.map(|(lo, hi)| {
        if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        }
    });
    Frame {
        image,
        jpeg_quality,
    }
}

/// Where and how one copy of the product is drawn: centre and output pixels per source pixel,
/// rotation, mirroring, and its shadow (offset x, y in source pixels and strength).
#[derive(Debug, Clone, Copy)]
struct Placement {
    cx: f32,
    cy: f32,
    k: f32,
    angle: f32,
    mirror: bool,
    shadow: Option<(f32, f32, f32)>,
}

/// Composites one copy of the product (and its shadow) onto `bg`.
fn draw_product(
    bg: &mut [[f32; 3]],
    (out_w, out_h): (usize, usize),
    p: &Product,
    at: &Placement,
    unit: f32,
) {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane = w * h;
    let (cx, cy, k) = (at.cx, at.cy, at.k);
    let (sin, cos) = at.angle.sin_cos();
    let (scx, scy) = ((w as f32) / 2.0, (h as f32) / 2.0);
    // Output pixel centre -> source coordinates (pixel centres at +0.5).
    let to_src = |ox: f32, oy: f32| {
        let (rx, ry) = ((ox - cx) / k, (oy - cy) / k);
        let mut sx = cos * rx + sin * ry;
        let sy = -sin * rx + cos * ry;
        if at.mirror {
            sx = -sx;
        }
        (sx + scx - 0.5, sy + scy - 0.5)
    };
    // Only the product's bounding box (plus the shadow) needs visiting.
    let half = 0.5 * k * ((w * w + h * h) as f32).sqrt() + 6.0 * unit;
    let x0 = ((cx - half).floor().max(0.0)) as usize;
    let x1 = ((cx + half).ceil().min(out_w as f32)) as usize;
    let y0 = ((cy - half).floor().max(0.0)) as usize;
    let y1 = ((cy + half).ceil().min(out_h as f32)) as usize;
    let alpha = |sx: f32, sy: f32| sample(&p.mask.alpha, w, h, sx, sy, 0.0) / 255.0;
    for oy in y0..y1 {
        for ox in x0..x1 {
            let (px, py) = (ox as f32 + 0.5, oy as f32 + 0.5);
            let i = oy * out_w + ox;
            if let Some((sdx, sdy, strength)) = at.shadow {
                // Soft shadow: the mask, offset and averaged over a small neighbourhood.
                let (bx, by) = to_src(px - sdx * unit, py - sdy * unit);
                let mut a = 0.0;
                for j in [-1.5f32, 0.0, 1.5] {
                    for i2 in [-1.5f32, 0.0, 1.5] {
                        a += alpha(bx + i2, by + j);
                    }
                }
                let darken = 1.0 - strength * a / 9.0;
                for v in bg[i].iter_mut() {
                    *v *= darken;
                }
            }
            let (sx, sy) = to_src(px, py);
            let a = alpha(sx, sy);
            if a > 0.0 {
                for (c, out) in bg[i].iter_mut().enumerate() {
                    // Clamp to the edge for colour: alpha decides what shows.
                    let v = sample(
                        &p.chw[c * plane..(c + 1) * plane],
                        w,
                        h,
                        sx.clamp(0.0, w as f32 - 1.0),
                        sy.clamp(0.0, h as f32 - 1.0),
                        255.0,
                    );
                    *out = a * v + (1.0 - a) * *out;
                }
            }
        }
    }
}

/// Separable Gaussian blur in place (edges clamped).
fn blur(img: &mut [[f32; 3]], w: usize, h: usize, sigma: f32) {
    if sigma < 0.2 {
        return;
    }
    let r = (sigma * 2.5).ceil() as i64;
    let kernel: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
    let mut tmp = vec![[0.0f32; 3]; img.len()];
    blur_pass(img, &mut tmp, (w, h), &kernel, (1, 0));
    blur_pass(&tmp, img, (w, h), &kernel, (0, 1));
}

/// One direction of a separable blur: `(dx, dy)` is (1, 0) for rows, (0, 1) for columns.
fn blur_pass(
    src: &[[f32; 3]],
    dst: &mut [[f32; 3]],
    (w, h): (usize, usize),
    kernel: &[f32],
    (dx, dy): (i64, i64),
) {
    let r = (kernel.len() / 2) as i64;
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let mut acc = [0.0f32; 3];
            for (j, k) in kernel.iter().enumerate() {
                let o = j as i64 - r;
                let xx = (x + o * dx).clamp(0, w as i64 - 1) as usize;
                let yy = (y + o * dy).clamp(0, h as i64 - 1) as usize;
                for c in 0..3 {
                    acc[c] += k * src[yy * w + xx][c];
                }
            }
            dst[y as usize * w + x as usize] = acc;
        }
    }
}
