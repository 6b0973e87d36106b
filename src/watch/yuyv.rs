//! YUYV 4:2:2 camera frames (two pixels in four bytes: Y0 U Y1 V), kept as the camera delivered
//! them and converted to RGB only where they are looked at: the ROI for every frame, the whole
//! frame only when an overlay, snapshot or framebuffer needs it. Written here rather than taken
//! from a crate: it is one BT.601 formula over a sub-rectangle, fewer lines than a pixel-format
//! crate would add to the station binary.

use image::RgbImage;

/// One YUYV frame as the camera delivered it.
pub struct YuyvFrame {
    data: Vec<u8>,
    width: u32,
    height: u32,
    stride: usize,
}

impl YuyvFrame {
    /// `None` when the buffer is too short for `width` x `height` at `stride` bytes per row, or
    /// the width is odd (a YUYV row holds pixel pairs).
    pub fn new(data: Vec<u8>, width: u32, height: u32, stride: usize) -> Option<Self> {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || w % 2 != 0 || stride < w * 2 || data.len() < stride * (h - 1) + w * 2
        {
            return None;
        }
        Some(YuyvFrame {
            data,
            width,
            height,
            stride,
        })
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The whole frame in RGB.
    pub fn to_rgb(&self) -> RgbImage {
        self.region_to_rgb(0, 0, self.width, self.height)
    }

    /// The `w` x `h` region at (`x`, `y`) in RGB, clipped to the frame. A region may start on an
    /// odd pixel: each pixel takes the chroma of the pair it belongs to, as in the full frame,
    /// so a region equals the same crop of [`to_rgb`](Self::to_rgb) exactly.
    pub fn region_to_rgb(&self, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
        let x = x.min(self.width) as usize;
        let y = y.min(self.height) as usize;
        let w = (w as usize).min(self.width as usize - x);
        let h = (h as usize).min(self.height as usize - y);
        let mut out = vec![0u8; w * h * 3];
        if w > 0 {
            for (dst, yy) in out.chunks_exact_mut(w * 3).zip(y..y + h) {
                let row = &self.data[yy * self.stride..][..self.width as usize * 2];
                convert_row(row, x, dst);
            }
        }
        RgbImage::from_raw(w as u32, h as u32, out).expect("w * h * 3 bytes")
    }
}

/// Pixels `x..x + dst.len() / 3` of one YUYV row into RGB. Integer BT.601 (studio range, 8-bit
/// fixed point, the V4L2 documentation's coefficients): no float per pixel (docs/BENCHMARKS.md).
fn convert_row(row: &[u8], x: usize, dst: &mut [u8]) {
    let mut dst = dst;
    let mut x = x;
    // A region that starts on the second pixel of a pair.
    if x & 1 == 1 && dst.len() >= 3 {
        let p = &row[(x - 1) * 2..][..4];
        dst[..3].copy_from_slice(&rgb(p[2], p[1], p[3]));
        dst = &mut dst[3..];
        x += 1;
    }
    let mut out = dst.chunks_exact_mut(6);
    let mut pairs = row[x * 2..].chunks_exact(4);
    for (o, p) in (&mut out).zip(&mut pairs) {
        let (u, v) = (p[1], p[3]);
        let [r0, g0, b0] = rgb(p[0], u, v);
        let [r1, g1, b1] = rgb(p[2], u, v);
        o.copy_from_slice(&[r0, g0, b0, r1, g1, b1]);
    }
    // A region that ends on the first pixel of a pair.
    let rest = out.into_remainder();
    if rest.len() == 3 {
        if let Some(p) = pairs.next() {
            rest.copy_from_slice(&rgb(p[0], p[1], p[3]));
        }
    }
}

#[inline(always)]
fn rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16) + 128;
    let (d, e) = (u as i32 - 128, v as i32 - 128);
    let clamp = |x: i32| (x >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_colour() {
        // Two pixels: Y=235 (white) and Y=16 (black), no chroma.
        let rgb = YuyvFrame::new(vec![235, 128, 16, 128], 2, 1, 4)
            .unwrap()
            .to_rgb();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
        // Strong V: red.
        let rgb = YuyvFrame::new(vec![81, 90, 81, 240], 2, 1, 4)
            .unwrap()
            .to_rgb();
        let [r, g, b] = rgb.get_pixel(0, 0).0;
        assert!(r > 230 && g < 30 && b < 30, "{r} {g} {b}");
    }

    #[test]
    fn short_or_odd_buffers_are_refused() {
        assert!(YuyvFrame::new(vec![0; 3], 2, 1, 4).is_none());
        assert!(YuyvFrame::new(vec![0; 12], 3, 1, 6).is_none());
        assert!(YuyvFrame::new(vec![0; 8], 2, 2, 3).is_none());
        assert!(YuyvFrame::new(vec![], 0, 0, 0).is_none());
        // Padded rows: the last row needs only its pixels, not the padding.
        assert!(YuyvFrame::new(vec![0; 16 + 8], 4, 2, 16).is_some());
    }

    #[test]
    fn a_region_is_the_same_crop_of_the_whole_frame() {
        // A padded 10x7 frame of varied bytes; regions on odd and even pixels, one past the edge.
        let (w, h, stride) = (10u32, 7u32, 24usize);
        let data: Vec<u8> = (0..stride * h as usize)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let frame = YuyvFrame::new(data, w, h, stride).unwrap();
        let full = frame.to_rgb();
        for (x, y, rw, rh) in [(0, 0, 10, 7), (1, 2, 5, 3), (3, 1, 4, 6), (7, 4, 9, 9)] {
            let region = frame.region_to_rgb(x, y, rw, rh);
            let want = image::imageops::crop_imm(&full, x, y, rw, rh).to_image();
            assert_eq!(region.dimensions(), want.dimensions(), "{x},{y}");
            assert_eq!(region.as_raw(), want.as_raw(), "region {x},{y} {rw}x{rh}");
        }
    }
}
