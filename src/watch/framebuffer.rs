//! Shows annotated frames on a Linux framebuffer (`/dev/fb0`): a small screen beside the
//! conveyor, with no display server on the device.

use crate::watch::config::FbGeometry;
use anyhow::{bail, Context, Result};
use image::{imageops::FilterType, RgbImage};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

pub struct Framebuffer {
    file: File,
    geometry: FbGeometry,
    row: Vec<u8>,
}

/// Reads `/sys/class/graphics/fbN/{virtual_size,bits_per_pixel}` for `/dev/fbN`.
fn sysfs_geometry(path: &Path) -> Result<FbGeometry> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with("fb"))
        .with_context(|| {
            format!(
                "{}: not a /dev/fbN device; set overlay.framebuffer_geometry",
                path.display()
            )
        })?;
    let sys = Path::new("/sys/class/graphics").join(name);
    let read = |f: &str| {
        std::fs::read_to_string(sys.join(f))
            .with_context(|| format!("cannot read {}", sys.join(f).display()))
    };
    let size = read("virtual_size")?;
    let (w, h) = size
        .trim()
        .split_once(',')
        .context("unexpected virtual_size")?;
    Ok(FbGeometry {
        width: w.parse()?,
        height: h.parse()?,
        bits_per_pixel: read("bits_per_pixel")?.trim().parse()?,
    })
}

impl Framebuffer {
    pub fn open(path: &Path, geometry: Option<FbGeometry>) -> Result<Self> {
        let geometry = match geometry {
            Some(g) => g,
            None => sysfs_geometry(path)?,
        };
        if geometry.bits_per_pixel != 16 && geometry.bits_per_pixel != 32 {
            bail!(
                "framebuffer {} uses {} bits per pixel; only 16 (RGB565) and 32 (XRGB8888) are supported",
                path.display(),
                geometry.bits_per_pixel
            );
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(!path.starts_with("/dev"))
            .truncate(false)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot open framebuffer {} (the user needs the `video` group)",
                    path.display()
                )
            })?;
        Ok(Self {
            file,
            geometry,
            row: Vec::new(),
        })
    }

    /// Scales the frame to fit the screen (top-left) and writes it.
    pub fn show(&mut self, frame: &RgbImage) -> Result<()> {
        let g = self.geometry;
        let scale = f64::min(
            g.width as f64 / frame.width() as f64,
            g.height as f64 / frame.height() as f64,
        );
        let (w, h) = (
            ((frame.width() as f64 * scale) as u32).clamp(1, g.width),
            ((frame.height() as f64 * scale) as u32).clamp(1, g.height),
        );
        let scaled;
        let img = if (w, h) == frame.dimensions() {
            frame
        } else {
            scaled = image::imageops::resize(frame, w, h, FilterType::Nearest);
            &scaled
        };
        let bytes_pp = (g.bits_per_pixel / 8) as usize;
        self.file.seek(SeekFrom::Start(0))?;
        for y in 0..h {
            self.row.clear();
            for x in 0..g.width {
                let [r, gr, b] = if x < w { img.get_pixel(x, y).0 } else { [0; 3] };
                if bytes_pp == 2 {
                    let v = ((r as u16 >> 3) << 11) | ((gr as u16 >> 2) << 5) | (b as u16 >> 3);
                    self.row.extend_from_slice(&v.to_le_bytes());
                } else {
                    self.row.extend_from_slice(&[b, gr, r, 0]);
                }
            }
            self.file.write_all(&self.row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rgb565_and_xrgb8888() {
        let dir = tempfile::tempdir().unwrap();
        let frame = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        for (bpp, first) in [(16u32, vec![0x00, 0xF8]), (32, vec![0, 0, 255, 0])] {
            let path = dir.path().join(format!("fb{bpp}"));
            let g = FbGeometry {
                width: 8,
                height: 4,
                bits_per_pixel: bpp,
            };
            let mut fb = Framebuffer::open(&path, Some(g)).unwrap();
            fb.show(&frame).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            // Scaled 2x to 8x4: the whole screen is red.
            assert_eq!(bytes.len(), (8 * 4 * bpp / 8) as usize);
            assert_eq!(&bytes[..first.len()], first.as_slice());
            assert_eq!(&bytes[bytes.len() - first.len()..], first.as_slice());
        }
    }

    #[test]
    fn a_plain_file_needs_a_geometry() {
        let e = Framebuffer::open(Path::new("/tmp/screen"), None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("framebuffer_geometry"), "{e}");
    }
}
