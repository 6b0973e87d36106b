//! `training frames`: station frames as files, for `tag`, `tag watch` and people to look at.
//!
//! Three shapes: one network-sized frame per image of a split part (what the benchmark
//! scores), whole camera frames with the product inside the station's region of interest, and a
//! pass-by sequence (each product for a few frames, the empty belt between them) that a folder
//! replay of `tag watch` turns into one verdict per product. `labels.csv` names each file's
//! truth (`none` for an empty belt).

use crate::data::cache::ImageCache;
use crate::data::split::{Entry, Split};
use crate::scene::cutout::product_mask;
use crate::scene::{self, mix, Level, Product, Rect};
use crate::util::write_atomic;
use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::path::Path;
use tagger_core::preprocess::{HEIGHT, WIDTH};

pub struct FrameOptions<'a> {
    pub part: &'a str,
    pub level: Level,
    pub limit: usize,
    /// Whole frames of this size (width, height) with the product in `roi`.
    pub whole: Option<(usize, usize)>,
    /// Region of interest as fractions (x, y, width, height).
    pub roi: [f32; 4],
    /// A pass-by sequence: frames per product.
    pub sequence: Option<usize>,
    /// Empty frames before, between and after the products of a sequence.
    pub gap: usize,
}

/// `640x480` -> (640, 480).
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("--whole {s}: expected WIDTHxHEIGHT, e.g. 640x480"))?;
    let (w, h): (usize, usize) = (w.trim().parse()?, h.trim().parse()?);
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        bail!("--whole {s}: each side must be 16..4096 pixels");
    }
    Ok((w, h))
}

/// `x,y,width,height` fractions of the frame.
pub fn parse_roi(s: &str) -> Result<[f32; 4]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--roi {s}: expected four fractions x,y,width,height"))?;
    let ok = v.len() == 4
        && v.iter().all(|f| (0.0..=1.0).contains(f))
        && v[0] + v[2] <= 1.0 + 1e-6
        && v[1] + v[3] <= 1.0 + 1e-6
        && v[2] > 0.0
        && v[3] > 0.0;
    if !ok {
        bail!("--roi {s}: four fractions x,y,width,height inside the frame");
    }
    Ok([v[0], v[1], v[2], v[3]])
}

/// Entries taken round-robin over classes, so a short list still covers every class.
pub fn spread(entries: &[Entry], classes: usize, limit: usize) -> Vec<Entry> {
    let mut per: Vec<Vec<Entry>> = vec![vec![]; classes];
    for &e in entries {
        per[e.1].push(e);
    }
    let mut out = vec![];
    let mut i = 0;
    while out.len() < limit && per.iter().any(|p| i < p.len()) {
        for p in &per {
            if let Some(&e) = p.get(i) {
                if out.len() < limit {
                    out.push(e);
                }
            }
        }
        i += 1;
    }
    out
}

fn save(dir: &Path, name: &str, frame: &scene::Frame) -> Result<String> {
    let file = format!(
        "{name}.{}",
        if frame.jpeg_quality.is_some() {
            "jpg"
        } else {
            "png"
        }
    );
    write_atomic(&dir.join(&file), &frame.encode())?;
    Ok(file)
}

/// Writes the frames and `labels.csv`; returns how many frames.
pub fn write(
    cache: &ImageCache,
    split: &Split,
    entries: &[Entry],
    opts: &FrameOptions,
    out: &Path,
) -> Result<usize> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let size = opts.whole.unwrap_or((WIDTH as usize, HEIGHT as usize));
    let rect = if opts.whole.is_some() || opts.sequence.is_some() {
        let (w, h) = (size.0 as f32, size.1 as f32);
        Rect {
            x: opts.roi[0] * w,
            y: opts.roi[1] * h,
            w: opts.roi[2] * w,
            h: opts.roi[3] * h,
        }
    } else {
        scene::full_rect()
    };
    let scene = opts.level.scene();
    let picked = spread(entries, split.labels.len(), opts.limit);
    let mut rows = vec![];
    let mut n = 0usize;
    if let Some(per) = opts.sequence {
        // One belt for the whole sequence; the product moves a little from frame to frame.
        let belt = opts.level.seed(opts.part, u64::MAX);
        let gap = |k: u64, n: &mut usize, rows: &mut Vec<(String, String, String)>| {
            for f in 0..opts.gap {
                let seed = opts.level.seed(opts.part, mix(!k ^ f as u64));
                let frame = scene::render(None, &scene, belt, seed, size, rect);
                *n += 1;
                let file = save(out, &format!("frame-{:05}", *n), &frame)?;
                rows.push((file, tagger_core::classify::NONE.to_string(), String::new()));
            }
            anyhow::Ok(())
        };
        for (k, &(id, class)) in picked.iter().enumerate() {
            let Some(img) = cache.get(id) else { continue };
            gap(k as u64, &mut n, &mut rows)?;
            let mask = product_mask(img);
            // One draw per product (orientation, size, light); the belt carries it 3% of the
            // region further each frame.
            let seed = opts.level.seed(opts.part, id);
            for f in 0..per {
                let step = (f as f32 - (per as f32 - 1.0) / 2.0) * 0.03 * rect.w;
                let frame = scene::render(
                    Some(Product {
                        chw: img,
                        mask: &mask,
                    }),
                    &scene,
                    belt,
                    seed,
                    size,
                    Rect {
                        x: rect.x + step,
                        ..rect
                    },
                );
                n += 1;
                let file = save(out, &format!("frame-{n:05}"), &frame)?;
                rows.push((file, split.labels[class].clone(), id.to_string()));
            }
        }
        gap(picked.len() as u64, &mut n, &mut rows)?;
    } else if !opts.level.has_product() {
        for i in 0..opts.limit as u64 {
            let seed = opts.level.seed(opts.part, i);
            let frame = scene::render(None, &scene, mix(seed ^ 0x5eed), seed, size, rect);
            let file = save(out, &format!("empty-{i:05}"), &frame)?;
            rows.push((file, tagger_core::classify::NONE.to_string(), String::new()));
            n += 1;
        }
    } else {
        for &(id, class) in &picked {
            let Some(img) = cache.get(id) else { continue };
            let mask = product_mask(img);
            let seed = opts.level.seed(opts.part, id);
            let frame = scene::render(
                Some(Product {
                    chw: img,
                    mask: &mask,
                }),
                &scene,
                mix(seed ^ 0x5eed),
                seed,
                size,
                rect,
            );
            let file = save(out, &id.to_string(), &frame)?;
            rows.push((file, split.labels[class].clone(), id.to_string()));
            n += 1;
        }
    }
    let mut csv = String::from("file,label,id\n");
    for (f, l, id) in rows {
        csv.push_str(&format!("{f},{l},{id}\n"));
    }
    write_atomic(&out.join("labels.csv"), csv.as_bytes())?;
    Ok(n)
}

/// A PNG of network-sized pictures, `cols` a row at 2x on a dark background (a row left empty
/// stays dark).
fn grid_png(rows: &[Vec<RgbImage>], cols: u32) -> Result<Vec<u8>> {
    let (cw, ch, gap) = (2 * WIDTH, 2 * HEIGHT, 4u32);
    let mut grid = RgbImage::from_pixel(
        cols * (cw + gap) + gap,
        rows.len() as u32 * (ch + gap) + gap,
        image::Rgb([40, 40, 40]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, rgb) in row.iter().enumerate() {
            let (x0, y0) = (gap + c as u32 * (cw + gap), gap + r as u32 * (ch + gap));
            for y in 0..ch {
                for x in 0..cw {
                    grid.put_pixel(x0 + x, y0 + y, *rgb.get_pixel(x / 2, y / 2));
                }
            }
        }
    }
    let mut png = vec![];
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

/// A PNG of sample frames: one row per class (its first image in `entries`), columns catalogue,
/// mirrored, mild, hard, tray and empty, each at 2x.
pub fn sample_grid(
    cache: &ImageCache,
    split: &Split,
    entries: &[Entry],
    part: &str,
) -> Result<Vec<u8>> {
    let picked = spread(entries, split.labels.len(), split.labels.len());
    let rows: Vec<Vec<RgbImage>> = picked
        .iter()
        .enumerate()
        .map(|(r, &(id, _))| {
            let Some(img) = cache.get(id) else {
                return vec![];
            };
            let mask = product_mask(img);
            let product = || {
                Some(Product {
                    chw: img,
                    mask: &mask,
                })
            };
            [
                img.to_vec(),
                scene::mirrored(img),
                scene::level_frame(Level::Mild, part, id, product()).to_chw(),
                scene::level_frame(Level::Hard, part, id, product()).to_chw(),
                scene::level_frame(Level::Tray, part, id, product()).to_chw(),
                scene::level_frame(Level::Empty, part, r as u64, None).to_chw(),
            ]
            .iter()
            .map(|chw| scene::chw_to_rgb(chw))
            .collect()
        })
        .collect();
    grid_png(&rows, 6)
}

/// Classes drawn as a pair in room scenes (shoes lie in pairs on a floor).
pub const PAIRED: [&str; 3] = ["Shoes", "Sandal", "Flip Flops"];

/// A PNG of the training-only room scenes (station `Scene::room`): one row per class, five
/// frames each at 2x, the paired classes as pairs where the draw says so.
pub fn room_grid(
    cache: &ImageCache,
    split: &Split,
    entries: &[Entry],
    part: &str,
) -> Result<Vec<u8>> {
    let picked = spread(entries, split.labels.len(), split.labels.len());
    let rows: Vec<Vec<RgbImage>> = picked
        .iter()
        .map(|&(id, class)| {
            let Some(img) = cache.get(id) else {
                return vec![];
            };
            let mask = product_mask(img);
            let paired = PAIRED.contains(&split.labels[class].as_str());
            let scene = scene::Scene::room(if paired { 0.7 } else { 0.0 });
            (0..5u64)
                .map(|c| {
                    let seed = scene::mix(id ^ scene::mix(c ^ part.len() as u64));
                    let product = Product {
                        chw: img,
                        mask: &mask,
                    };
                    scene::network_frame(Some(product), &scene, scene::mix(seed), seed).image
                })
                .collect()
        })
        .collect();
    grid_png(&rows, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rois_are_checked() {
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert!(parse_size("640").is_err());
        assert!(parse_size("8x8").is_err());
        assert_eq!(parse_roi("0.25,0,0.5,1").unwrap(), [0.25, 0.0, 0.5, 1.0]);
        for bad in ["0.5,0,0.8,1", "0,0,0,1", "a,b,c,d", "0,0,1"] {
            assert!(parse_roi(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spread_takes_classes_in_turn() {
        let entries = [(1, 0), (2, 0), (3, 0), (4, 1), (5, 2), (6, 2)];
        assert_eq!(spread(&entries, 3, 4), vec![(1, 0), (4, 1), (5, 2), (2, 0)]);
        assert_eq!(spread(&entries, 3, 100).len(), 6);
    }
}
