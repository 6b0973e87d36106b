//! Draws a verdict onto a camera frame with embedded-graphics: the ROI box and a banner with the
//! label and confidence. The same drawing goes to snapshots and to a Linux framebuffer.
//!
//! embedded-graphics draws into anything that implements `DrawTarget`; [`Canvas`] is that
//! adapter for an `image::RgbImage`, so no second pixel buffer or format conversion is needed.

use crate::preprocess::Roi;
use embedded_graphics::mono_font::{ascii, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::RgbImage;
use std::convert::Infallible;

/// `DrawTarget` over an RGB frame; pixels outside it are clipped.
pub struct Canvas<'a>(pub &'a mut RgbImage);

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.0.width() as i32, self.0.height() as i32);
        for Pixel(p, c) in pixels {
            if (0..w).contains(&p.x) && (0..h).contains(&p.y) {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// What to write on the frame.
pub struct Annotation<'a> {
    pub label: &'a str,
    pub confidence: f32,
    /// True when the label is below the threshold: drawn in amber instead of green.
    pub uncertain: bool,
}

const GREEN: Rgb888 = Rgb888::new(0, 200, 70);
const AMBER: Rgb888 = Rgb888::new(255, 170, 0);
const GREY: Rgb888 = Rgb888::new(160, 160, 160);

/// Draws the ROI box and a label banner. Frames narrower than ~200 px get the small font.
pub fn draw(frame: &mut RgbImage, roi: &Roi, note: &Annotation) {
    // An empty belt (`none`) is the normal idle state, not something to look at: grey.
    let colour = if note.label == crate::classify::NONE {
        GREY
    } else if note.uncertain {
        AMBER
    } else {
        GREEN
    };
    let (fw, fh) = (frame.width(), frame.height());
    let (x, y, w, h) = roi.pixels(fw, fh);
    let thickness = (fw.min(fh) / 160).max(1);
    let mut canvas = Canvas(frame);
    let _ = Rectangle::new(Point::new(x as i32, y as i32), Size::new(w, h))
        .into_styled(PrimitiveStyle::with_stroke(colour, thickness))
        .draw(&mut canvas);

    let font = if fw >= 200 {
        &ascii::FONT_10X20
    } else {
        &ascii::FONT_6X10
    };
    let text = format!("{} {:.0}%", note.label, note.confidence * 100.0);
    let char_w = font.character_size.width + font.character_spacing;
    let banner = Size::new(
        (text.len() as u32 * char_w + 6).min(fw),
        font.character_size.height + 4,
    );
    let _ = Rectangle::new(Point::zero(), banner)
        .into_styled(PrimitiveStyle::with_fill(colour))
        .draw(&mut canvas);
    let _ = Text::with_baseline(
        &text,
        Point::new(3, 2),
        MonoTextStyle::new(font, Rgb888::BLACK),
        Baseline::Top,
    )
    .draw(&mut canvas);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_box_and_banner_inside_the_frame() {
        let mut frame = RgbImage::from_pixel(320, 240, image::Rgb([255, 255, 255]));
        let roi = Roi::centre(0.5);
        let note = Annotation {
            label: "Shoes",
            confidence: 0.97,
            uncertain: false,
        };
        draw(&mut frame, &roi, &note);
        // ROI box edge (80..240 x 60..180) is green; the centre stays untouched.
        assert_eq!(frame.get_pixel(80, 120).0, [0, 200, 70]);
        assert_eq!(frame.get_pixel(160, 120).0, [255, 255, 255]);
        // Banner background at the top-left, text pixels are black.
        assert_eq!(frame.get_pixel(1, 1).0, [0, 200, 70]);
        let black = (0..24)
            .flat_map(|y| (0..100).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.get_pixel(x, y).0 == [0, 0, 0])
            .count();
        assert!(black > 50, "label text not drawn ({black} black pixels)");
    }

    #[test]
    fn tiny_frames_and_long_labels_do_not_panic() {
        let mut frame = RgbImage::new(3, 2);
        let note = Annotation {
            label: "a very long label that does not fit anywhere",
            confidence: 0.5,
            uncertain: true,
        };
        draw(&mut frame, &Roi::FULL, &note);
    }
}
