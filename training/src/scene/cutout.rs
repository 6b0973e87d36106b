//! Cutting a product out of its catalogue photo: an alpha mask from the white background.
//!
//! The background is the near-white region connected to the image border: a flood fill from
//! every border pixel that steps only onto near-white pixels (every channel >= 246) *and* only
//! across small changes between neighbours (<= 5 levels). The second rule keeps white products
//! on white: a white T-shirt is nearly as bright as the background, but its outline, seams and
//! folds are steps of more than a few levels, which the fill does not cross, and whatever the
//! fill does not reach is product. Enclosed background (inside a necklace or a bag's handle) is
//! then opened when it is catalogue-flat pure white, which fabric is not. When the fill still eats most of the picture (a white
//! product with no outline at all), it is retried with stricter rules, and if even that leaves
//! under [`MIN_FOREGROUND`] of the image, the whole photo is kept as the "product": a white card
//! on the belt is a worse frame than a clean cut-out, never a wrong label.
//!
//! Hand-written because no image crate offers a connected, gradient-bounded fill; it is ~80
//! lines on the 60x80 cached image and runs in microseconds.

use tagger_core::preprocess::{HEIGHT, WIDTH};

/// Below this share of foreground pixels a mask is not trusted.
pub const MIN_FOREGROUND: f32 = 0.04;

/// How the mask was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// The normal fill.
    Cut,
    /// The strict retry (very light product).
    Strict,
    /// No usable mask: the whole photo is the product.
    Whole,
}

/// The product's alpha (0..=255, `WIDTH * HEIGHT`, row-major) in a CHW catalogue image.
pub struct Mask {
    pub alpha: Vec<u8>,
    pub kind: MaskKind,
}

impl Mask {
    /// Share of pixels that are mostly product.
    pub fn foreground(&self) -> f32 {
        self.alpha.iter().filter(|&&a| a >= 128).count() as f32 / self.alpha.len() as f32
    }
}

/// Background fill from the border: `white` is the lowest channel value counted as background,
/// `step` the largest change between neighbours the fill crosses.
fn fill(chw: &[u8], white: u8, step: u8) -> Vec<bool> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane = w * h;
    let px = |i: usize| [chw[i], chw[plane + i], chw[2 * plane + i]];
    let is_white = |i: usize| px(i).iter().all(|&c| c >= white);
    let close = |a: usize, b: usize| {
        let (p, q) = (px(a), px(b));
        (0..3).all(|c| p[c].abs_diff(q[c]) <= step)
    };
    let mut bg = vec![false; plane];
    let mut stack = vec![];
    for x in 0..w {
        stack.push(x);
        stack.push((h - 1) * w + x);
    }
    for y in 0..h {
        stack.push(y * w);
        stack.push(y * w + w - 1);
    }
    stack.retain(|&i| is_white(i));
    for &i in &stack {
        bg[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let mut visit = |j: usize| {
            if !bg[j] && is_white(j) && close(i, j) {
                bg[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < w {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - w);
        }
        if y + 1 < h {
            visit(i + w);
        }
    }
    bg
}

/// Enclosed background: components the fill could not reach (inside a necklace, between an arm
/// and the body) that are catalogue-flat pure white (every channel >= 250, neighbours within 3
/// levels) and at least 12 pixels. Fabric, even white, has shading and texture below that, so
/// white products stay; an overexposed, perfectly flat white patch of one is lost, a price paid
/// for cutting out every ring, chain and strap.
fn open_holes(chw: &[u8], bg: &mut [bool]) {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane = w * h;
    let px = |i: usize| [chw[i], chw[plane + i], chw[2 * plane + i]];
    let flat_white = |i: usize| px(i).iter().all(|&c| c >= 250);
    let mut seen = vec![false; plane];
    for start in 0..plane {
        if bg[start] || seen[start] || !flat_white(start) {
            continue;
        }
        seen[start] = true;
        let mut comp = vec![start];
        let mut k = 0;
        while k < comp.len() {
            let i = comp[k];
            k += 1;
            let (x, y) = (i % w, i / w);
            let mut next = vec![];
            if x > 0 {
                next.push(i - 1);
            }
            if x + 1 < w {
                next.push(i + 1);
            }
            if y > 0 {
                next.push(i - w);
            }
            if y + 1 < h {
                next.push(i + w);
            }
            for j in next {
                let close = (0..3).all(|c| px(i)[c].abs_diff(px(j)[c]) <= 3);
                if !bg[j] && !seen[j] && flat_white(j) && close {
                    seen[j] = true;
                    comp.push(j);
                }
            }
        }
        if comp.len() >= 12 {
            for i in comp {
                bg[i] = true;
            }
        }
    }
}

/// JPEG leaves a light fringe around every product on white, which the fill does not cross; on a
/// dark belt it would be a halo no camera shows. One pass turns light product pixels that touch
/// the background into background.
fn trim_fringe(chw: &[u8], bg: &mut [bool]) {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let plane = w * h;
    let light = |i: usize| (0..3).all(|c| chw[c * plane + i] >= 215);
    let touches = |bg: &[bool], i: usize| {
        let (x, y) = (i % w, i / w);
        (x > 0 && bg[i - 1])
            || (x + 1 < w && bg[i + 1])
            || (y > 0 && bg[i - w])
            || (y + 1 < h && bg[i + w])
    };
    let fringe: Vec<usize> = (0..plane)
        .filter(|&i| !bg[i] && light(i) && touches(bg, i))
        .collect();
    for i in fringe {
        bg[i] = true;
    }
}

/// Alpha from a background map: product pixels are opaque, softened towards the background
/// (3x3 box over the binary mask) but never below 60%, so one-pixel chains and straps survive;
/// background pixels stay fully transparent, so no catalogue white bleeds onto the belt.
fn soften(bg: &[bool]) -> Vec<u8> {
    let (w, h) = (WIDTH as i64, HEIGHT as i64);
    let fg = |x: i64, y: i64| -> bool {
        // Outside the image counts as background.
        x >= 0 && y >= 0 && x < w && y < h && !bg[(y * w + x) as usize]
    };
    let mut alpha = vec![0u8; bg.len()];
    for y in 0..h {
        for x in 0..w {
            if !fg(x, y) {
                continue;
            }
            let mut n = 0u32;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    n += fg(x + dx, y + dy) as u32;
                }
            }
            alpha[(y * w + x) as usize] = (n * 255 / 9).max(153) as u8;
        }
    }
    alpha
}

/// How tightly a product is cut: the benchmark uses [`CutStyle::Standard`]; training can vary it
/// so that a model does not depend on one cutting method's edges (a light fringe, a shaved
/// outline), which real cameras and other people's cut-outs do not share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutStyle {
    Standard,
    /// A looser fill (every channel >= 230, steps <= 12) without fringe trimming: light halos,
    /// and white products partly lost.
    Loose,
    /// The standard cut with the fringe trimmed twice.
    Tight,
}

/// The product's mask in a cached CHW catalogue image (3 x HEIGHT x WIDTH).
pub fn product_mask(chw: &[u8]) -> Mask {
    product_mask_with(chw, CutStyle::Standard)
}

/// [`product_mask`] in a given style.
pub fn product_mask_with(chw: &[u8], style: CutStyle) -> Mask {
    let plane = (WIDTH * HEIGHT) as usize;
    assert_eq!(chw.len(), 3 * plane, "a CHW image of the network's size");
    // Thresholds chosen by looking at white T-shirts and necklaces of the val split.
    let first = match style {
        CutStyle::Loose => (MaskKind::Cut, 230, 12),
        _ => (MaskKind::Cut, 246, 5),
    };
    for (kind, white, step) in [first, (MaskKind::Strict, 252, 2)] {
        let mut bg = fill(chw, white, step);
        open_holes(chw, &mut bg);
        let trims = match style {
            CutStyle::Standard => 1,
            CutStyle::Loose => 0,
            CutStyle::Tight => 2,
        };
        for _ in 0..trims {
            trim_fringe(chw, &mut bg);
        }
        let mask = Mask {
            alpha: soften(&bg),
            kind,
        };
        if mask.foreground() >= MIN_FOREGROUND {
            return mask;
        }
    }
    Mask {
        alpha: vec![255; plane],
        kind: MaskKind::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white disc with a light-grey outline on white: the case a plain threshold loses.
    fn white_on_white() -> Vec<u8> {
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut img = vec![255u8; 3 * w * h];
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f32 - 30.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt();
                // White fabric: a grey outline, then shading and weave a few levels below the
                // background's flat 255.
                let v = if (20.0..22.0).contains(&d) {
                    215
                } else if d < 20.0 {
                    240 + ((x * 7 + y * 3) % 9) as u8
                } else {
                    255
                };
                for c in 0..3 {
                    img[c * w * h + y * w + x] = v;
                }
            }
        }
        img
    }

    #[test]
    fn white_product_with_an_outline_is_kept() {
        let m = product_mask(&white_on_white());
        assert_eq!(m.kind, MaskKind::Cut);
        let (w, _) = (WIDTH as usize, HEIGHT as usize);
        assert_eq!(m.alpha[40 * w + 30], 255, "inside the disc is product");
        assert_eq!(m.alpha[0], 0, "the corner is background");
        let area = std::f32::consts::PI * 21.0 * 21.0 / (WIDTH * HEIGHT) as f32;
        assert!((m.foreground() - area).abs() < 0.05, "{}", m.foreground());
    }

    #[test]
    fn background_inside_a_ring_is_opened() {
        // A dark ring (a necklace) with flat catalogue white inside it.
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut img = vec![255u8; 3 * w * h];
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f32 - 30.0).powi(2) + (y as f32 - 40.0).powi(2)).sqrt();
                if (18.0..21.0).contains(&d) {
                    for c in 0..3 {
                        img[c * w * h + y * w + x] = 60;
                    }
                }
            }
        }
        let m = product_mask(&img);
        assert_eq!(m.alpha[40 * w + 30], 0, "inside the ring is background");
        assert!(m.foreground() < 0.15, "{}", m.foreground());
    }

    /// Real catalogue photos (val split): a white T-shirt on white keeps its body, a necklace
    /// loses the white inside its chain.
    #[test]
    fn real_photos_white_tshirt_and_necklace() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cutout");
        let chw = |f: &str| tagger_core::preprocess::file_to_chw(&dir.join(f)).unwrap();
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let tee = product_mask(&chw("white-tshirt.jpg"));
        assert_eq!(tee.kind, MaskKind::Cut);
        assert!(
            tee.foreground() > 0.3,
            "white T-shirt kept: {}",
            tee.foreground()
        );
        assert_eq!(
            tee.alpha[(h / 2) * w + w / 2],
            255,
            "the shirt's middle is product"
        );
        for corner in [0, w - 1, (h - 1) * w, h * w - 1] {
            assert_eq!(tee.alpha[corner], 0);
        }
        let necklace = product_mask(&chw("necklace.jpg"));
        assert!(necklace.foreground() < 0.2, "{}", necklace.foreground());
        assert!(necklace.foreground() > 0.02, "{}", necklace.foreground());
    }

    #[test]
    fn a_blank_photo_keeps_the_whole_image() {
        let m = product_mask(&vec![255u8; 3 * (WIDTH * HEIGHT) as usize]);
        assert_eq!(m.kind, MaskKind::Whole);
        assert!(m.alpha.iter().all(|&a| a == 255));
    }

    #[test]
    fn a_dark_product_is_cut_cleanly() {
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut img = vec![255u8; 3 * w * h];
        for y in 20..60 {
            for x in 15..45 {
                for c in 0..3 {
                    img[c * w * h + y * w + x] = 30;
                }
            }
        }
        let m = product_mask(&img);
        assert_eq!(m.kind, MaskKind::Cut);
        assert_eq!(m.alpha[40 * w + 30], 255);
        assert_eq!(m.alpha[10 * w + 5], 0);
        // 30x40 box, eroded by one pixel and feathered: about its area.
        assert!((m.foreground() - 1200.0 / (w * h) as f32).abs() < 0.03);
    }
}
