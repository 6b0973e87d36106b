//! Procedural belts and trays: what is behind a product at a station; and the room surfaces real
//! photos are taken on (wood, tiles, bed sheets and cloth, carpet), for training only.
//!
//! A surface is a base colour (grey, dark or coloured rubber belts; light trays), plus belt
//! ribs or stripes (wood planks, printed cloth), seams across the belt, a fine texture (value noise), and uneven light (a
//! gradient and a vignette). Every feature is sized as a fraction of the frame, so the same
//! surface painted at 60x80 (one network input) or 640x480 (a whole camera frame) looks alike.
//! All draws come from the caller's seeded RNG: a surface is a pure function of its seed.
//!
//! Hand-written: these are a few arithmetic passes per pixel; no crate generates belt-like
//! textures, and pulling in a noise crate for one value-noise function is not worth it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The families of surfaces a station has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SurfaceKind {
    /// Grey rubber belt.
    Grey,
    /// Black or dark grey belt.
    Dark,
    /// Green, blue, orange, red or teal belt.
    Coloured,
    /// Light plastic or metal tray (off-white, never the catalogue's pure white).
    Light,
    /// Wooden floor or table: brown planks, joints, grain.
    Wood,
    /// Floor tiles: light or mid tones, grout lines.
    Tiles,
    /// Bed sheets, blankets and cloth: any colour, soft folds, uneven room light.
    Fabric,
    /// Carpets and rugs: mid tones, coarse texture.
    Carpet,
}

impl SurfaceKind {
    /// The station surfaces (belts and trays): what the benchmark's levels draw from.
    pub const ALL: [SurfaceKind; 4] = [Self::Grey, Self::Dark, Self::Coloured, Self::Light];
    /// Where people photograph clothes at home (real photos); training only.
    pub const ROOM: [SurfaceKind; 4] = [Self::Wood, Self::Tiles, Self::Fabric, Self::Carpet];
}

/// One drawn surface; [`Surface::paint`] renders it at any size.
#[derive(Debug, Clone)]
pub struct Surface {
    pub kind: SurfaceKind,
    base: [f32; 3],
    /// Ribs/stripes: amplitude (levels), period (fraction of the frame), angle (radians), square.
    stripes: Option<(f32, f32, f32, bool)>,
    /// Seams across the belt: position (0..1), width (fraction), brightness change (levels).
    seams: Vec<(f32, f32, f32)>,
    /// Texture amplitude (levels) and cell size (fraction of the frame).
    texture: (f32, f32),
    texture_seed: u64,
    /// Light: gradient amplitude (fraction), gradient direction (radians), vignette (fraction).
    light: (f32, f32, f32),
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let c = v * s;
    let hp = (h.rem_euclid(360.0)) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

impl Surface {
    /// A room surface of `kind`, or None for a station surface (which draws nothing from `rng`,
    /// so station frames stay what they were).
    fn draw_room(kind: SurfaceKind, rng: &mut StdRng) -> Option<Self> {
        let across = |rng: &mut StdRng| {
            let turn = if rng.random_bool(0.5) {
                0.0
            } else {
                std::f32::consts::FRAC_PI_2
            };
            turn + rng.random_range(-0.3..0.3)
        };
        let room_light = |rng: &mut StdRng| {
            (
                rng.random_range(0.1..0.45),
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(0.05..0.35),
            )
        };
        let (base, stripes, seams, texture) = match kind {
            SurfaceKind::Wood => {
                let base = hsv(
                    rng.random_range(18.0..42.0),
                    rng.random_range(0.3..0.65),
                    rng.random_range(0.3..0.8),
                );
                let planks = (
                    rng.random_range(6.0..22.0),
                    rng.random_range(0.06..0.25),
                    across(rng),
                    rng.random_bool(0.5),
                );
                let joints = (0..rng.random_range(0..4))
                    .map(|_| {
                        (
                            rng.random_range(0.0..1.0),
                            rng.random_range(0.004..0.012),
                            rng.random_range(-40.0..-10.0),
                        )
                    })
                    .collect();
                let grain = (rng.random_range(4.0..12.0), rng.random_range(0.01..0.04));
                (base, Some(planks), joints, grain)
            }
            SurfaceKind::Tiles => {
                let v = rng.random_range(110.0..235.0);
                let base = hsv(
                    rng.random_range(20.0..60.0),
                    rng.random_range(0.0..0.2),
                    v / 255.0,
                );
                let n = rng.random_range(2..5);
                let width = rng.random_range(0.008..0.02);
                let delta = rng.random_range(-45.0..-12.0);
                let grout = (0..n)
                    .map(|k| ((k as f32 + 0.5) / n as f32, width, delta))
                    .collect();
                let texture = (rng.random_range(1.0..5.0), rng.random_range(0.02..0.06));
                (base, None, grout, texture)
            }
            SurfaceKind::Fabric => {
                let base = hsv(
                    rng.random_range(0.0..360.0),
                    rng.random_range(0.0..0.45),
                    rng.random_range(0.45..0.97),
                );
                let print = rng.random_bool(0.3).then(|| {
                    (
                        rng.random_range(10.0..40.0),
                        rng.random_range(0.05..0.2),
                        across(rng),
                        rng.random_bool(0.5),
                    )
                });
                let folds = (rng.random_range(10.0..30.0), rng.random_range(0.15..0.4));
                (base, print, vec![], folds)
            }
            SurfaceKind::Carpet => {
                let base = hsv(
                    rng.random_range(0.0..360.0),
                    rng.random_range(0.05..0.5),
                    rng.random_range(0.2..0.7),
                );
                let pile = (rng.random_range(8.0..22.0), rng.random_range(0.005..0.02));
                (base, None, vec![], pile)
            }
            _ => return None,
        };
        Some(Self {
            kind,
            base,
            stripes,
            seams,
            texture,
            texture_seed: rng.random(),
            light: room_light(rng),
        })
    }

    /// Draws a surface of `kind`.
    pub fn draw(kind: SurfaceKind, rng: &mut StdRng) -> Self {
        if let Some(room) = Self::draw_room(kind, rng) {
            return room;
        }
        let tint = |rng: &mut StdRng, v: f32, t: f32| {
            [
                v * (1.0 + rng.random_range(-t..=t)),
                v * (1.0 + rng.random_range(-t..=t)),
                v * (1.0 + rng.random_range(-t..=t)),
            ]
        };
        let base = match kind {
            SurfaceKind::Grey => {
                let v = rng.random_range(75.0..175.0);
                tint(rng, v, 0.05)
            }
            SurfaceKind::Dark => {
                let v = rng.random_range(15.0..75.0);
                tint(rng, v, 0.08)
            }
            SurfaceKind::Coloured => {
                let hues = [120.0, 210.0, 30.0, 0.0, 175.0, 55.0];
                let h = hues[rng.random_range(0..hues.len())] + rng.random_range(-12.0..12.0);
                hsv(h, rng.random_range(0.25..0.7), rng.random_range(0.3..0.75))
            }
            SurfaceKind::Light => {
                let v = rng.random_range(175.0..236.0);
                tint(rng, v, 0.04)
            }
            room => unreachable!("{room:?} is drawn by draw_room"),
        };
        let stripes = rng.random_bool(0.6).then(|| {
            (
                rng.random_range(2.0..16.0),
                rng.random_range(0.03..0.2),
                if rng.random_bool(0.5) {
                    0.0
                } else {
                    std::f32::consts::FRAC_PI_2
                } + rng.random_range(-0.08..0.08),
                rng.random_bool(0.4),
            )
        });
        let seams = (0..rng.random_range(0..3))
            .map(|_| {
                (
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.005..0.03),
                    rng.random_range(-35.0..25.0),
                )
            })
            .collect();
        Self {
            kind,
            base,
            stripes,
            seams,
            texture: (rng.random_range(1.0..12.0), rng.random_range(0.02..0.12)),
            texture_seed: rng.random(),
            light: (
                rng.random_range(0.0..0.25),
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(0.0..0.3),
            ),
        }
    }

    /// Draws a surface of a kind picked from `kinds`.
    pub fn draw_any(kinds: &[SurfaceKind], rng: &mut StdRng) -> Self {
        let kind = kinds[rng.random_range(0..kinds.len())];
        Self::draw(kind, rng)
    }

    /// Renders the surface as `w x h` RGB floats (row-major, 0..255, unclamped).
    pub fn paint(&self, w: usize, h: usize) -> Vec<[f32; 3]> {
        let side = w.min(h) as f32;
        let noise = ValueNoise::new(self.texture_seed, (self.texture.1 * side).max(1.5));
        let (ga, gdir, vig) = self.light;
        let (gdx, gdy) = (gdir.cos(), gdir.sin());
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                // Frame coordinates, centred, in units of the short side.
                let u = (x as f32 + 0.5 - w as f32 / 2.0) / side;
                let v = (y as f32 + 0.5 - h as f32 / 2.0) / side;
                let mut add = noise.at(x as f32, y as f32) * self.texture.0;
                if let Some((amp, period, angle, square)) = self.stripes {
                    let t = (u * angle.cos() + v * angle.sin()) / period;
                    let s = (t * std::f32::consts::TAU).sin();
                    add += amp * if square { s.signum() * 0.5 } else { s * 0.5 };
                }
                for &(pos, width, delta) in &self.seams {
                    // Seams run across the belt (horizontal lines in the frame).
                    let fy = y as f32 / h as f32;
                    if (fy - pos).abs() < width / 2.0 {
                        add += delta;
                    }
                }
                let gain =
                    (1.0 + ga * (u * gdx + v * gdy)) * (1.0 - vig * (u * u + v * v).min(1.0));
                out.push([
                    (self.base[0] + add) * gain,
                    (self.base[1] + add) * gain,
                    (self.base[2] + add) * gain,
                ]);
            }
        }
        out
    }
}

/// Smooth random texture: random values on a grid of `cell` pixels, interpolated (smoothstep).
struct ValueNoise {
    grid: Vec<f32>,
    cols: usize,
    cell: f32,
}

impl ValueNoise {
    fn new(seed: u64, cell: f32) -> Self {
        let cols = 64;
        let mut rng = StdRng::seed_from_u64(seed);
        let grid = (0..cols * cols)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Self { grid, cols, cell }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let (gx, gy) = (x / self.cell, y / self.cell);
        let (x0, y0) = (gx.floor(), gy.floor());
        let s = |t: f32| t * t * (3.0 - 2.0 * t);
        let (fx, fy) = (s(gx - x0), s(gy - y0));
        let g = |i: f32, j: f32| {
            let (i, j) = (i as usize % self.cols, j as usize % self.cols);
            self.grid[j * self.cols + i]
        };
        let top = g(x0, y0) * (1.0 - fx) + g(x0 + 1.0, y0) * fx;
        let bottom = g(x0, y0 + 1.0) * (1.0 - fx) + g(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_surface_is_a_function_of_its_seed() {
        let a = Surface::draw(SurfaceKind::Grey, &mut StdRng::seed_from_u64(3)).paint(60, 80);
        let b = Surface::draw(SurfaceKind::Grey, &mut StdRng::seed_from_u64(3)).paint(60, 80);
        let c = Surface::draw(SurfaceKind::Grey, &mut StdRng::seed_from_u64(4)).paint(60, 80);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn room_surfaces_differ_from_belts_and_vary() {
        for k in SurfaceKind::ROOM {
            let mut rng = StdRng::seed_from_u64(5);
            let a = Surface::draw(k, &mut rng).paint(30, 40);
            let b = Surface::draw(k, &mut rng).paint(30, 40);
            assert_ne!(a, b, "{k:?}");
            assert!(a.iter().all(|c| c.iter().all(|v| v.is_finite())));
        }
        // Wood is brown: red above blue on average.
        let p = Surface::draw(SurfaceKind::Wood, &mut StdRng::seed_from_u64(2)).paint(30, 40);
        let (r, b): (f32, f32) = p.iter().fold((0.0, 0.0), |(r, b), c| (r + c[0], b + c[2]));
        assert!(r > b);
    }

    #[test]
    fn kinds_have_their_brightness() {
        let mean = |k: SurfaceKind| {
            let mut rng = StdRng::seed_from_u64(9);
            let mut total = 0.0;
            for _ in 0..20 {
                let p = Surface::draw(k, &mut rng).paint(30, 40);
                total += p.iter().map(|c| (c[0] + c[1] + c[2]) / 3.0).sum::<f32>() / p.len() as f32;
            }
            total / 20.0
        };
        let (dark, grey, light) = (
            mean(SurfaceKind::Dark),
            mean(SurfaceKind::Grey),
            mean(SurfaceKind::Light),
        );
        assert!(dark < grey && grey < light, "{dark} {grey} {light}");
        assert!(light < 245.0, "a tray is never catalogue white: {light}");
    }
}
