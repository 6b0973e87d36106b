//! PNG plots: training curves, confusion matrices, sweeps. plotters draws text with the DejaVu
//! Sans font shipped in training/assets (no system fonts needed, so plots render the same on a
//! bare CI machine).

use crate::eval::metrics::Metrics;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn font() {
    REGISTER.call_once(|| {
        // The bytes are a valid TTF shipped with the crate; failure would be a packaging bug.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| ())
            .expect("bundled font parses");
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

/// One panel of [`curves`]: its name and the train and validation value per epoch.
pub struct Panel<'a> {
    pub name: &'a str,
    pub train: Vec<f64>,
    pub val: Vec<f64>,
}

/// Train vs validation per epoch (e.g. loss and accuracy), panels side by side.
pub fn curves(epochs: &[f64], panels: [Panel; 2], title: &str, path: &Path) -> Result<()> {
    font();
    let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let (left, right) = root.split_horizontally(550);
    let x = epochs;
    let epochs = x.len().max(1) as f64;
    let panels = [left, right].into_iter().zip(panels);
    for (area, Panel { name, train, val }) in panels {
        let all = train.iter().chain(&val).copied();
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(&area)
            .caption(name, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.5..epochs + 0.5, (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|x| format!("{}", x.round() as i64))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (series, colour, label) in [(&train, BLUE, "train"), (&val, RED, "validation")] {
            chart
                .draw_series(LineSeries::new(
                    x.iter().copied().zip(series.iter().copied()),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    x.iter()
                        .zip(series.iter())
                        .map(|(&a, &b)| Circle::new((a, b), 3, colour.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Confusion matrix, rows = true class, colour = row-normalised share, numbers = counts.
pub fn confusion(m: &Metrics, title: &str, path: &Path) -> Result<()> {
    let labels: Vec<&str> = m.per_class.iter().map(|c| c.label.as_str()).collect();
    confusion_table(&labels, &labels, &m.confusion, |t, p| t == p, title, path)
}

/// A confusion table with its own rows and columns (e.g. real-photo groups against a model's
/// labels); `right(row, column)` marks the cells that count as right (green).
pub fn confusion_table(
    rows: &[&str],
    cols: &[&str],
    matrix: &[Vec<usize>],
    right: impl Fn(usize, usize) -> bool,
    title: &str,
    path: &Path,
) -> Result<()> {
    font();
    let cell = 44i32;
    let (left, top) = (120i32, 70i32);
    let size = (
        (left + cell * cols.len() as i32 + 30).max(560) as u32,
        (top + cell * rows.len() as i32 + 110) as u32,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(
        title.to_string(),
        (10, 10),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "rows: truth, columns: predicted; colour = share of the row".to_string(),
        (10, 38),
        ("sans-serif", 13).into_font(),
    ))
    .map_err(err)?;
    for (t, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        for (p, &n) in row.iter().enumerate() {
            let share = n as f64 / total as f64;
            let x0 = left + p as i32 * cell;
            let y0 = top + t as i32 * cell;
            let shade = (255.0 * (1.0 - share.sqrt())) as u8;
            let colour = if right(t, p) {
                RGBColor(shade, 255 - (255 - shade) / 3, shade)
            } else {
                RGBColor(255, shade, shade)
            };
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                colour.filled(),
            ))
            .map_err(err)?;
            if n > 0 {
                let text_colour = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    n.to_string(),
                    (x0 + 4, y0 + cell / 2 - 7),
                    ("sans-serif", 12).into_font().color(&text_colour),
                ))
                .map_err(err)?;
            }
        }
        root.draw(&Text::new(
            rows[t].to_string(),
            (6, top + t as i32 * cell + cell / 2 - 7),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(err)?;
    }
    let bottom = top + rows.len() as i32 * cell + 6;
    for (p, l) in cols.iter().enumerate() {
        root.draw(&Text::new(
            l.to_string(),
            (left + p as i32 * cell + cell / 2 - 6, bottom),
            ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate90),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One chart of several named lines into `area`.
fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1, y0, y1) = pts.fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |a, &(x, y)| {
        (a.0.min(x), a.1.max(x), a.2.min(y), a.3.max(y))
    });
    let (xp, yp) = (((x1 - x0) * 0.05).max(0.5), ((y1 - y0) * 0.08).max(1e-3));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - xp)..(x1 + xp), (y0 - yp)..(y1 + yp))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (i, (label, p)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(p.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                p.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Learning-rate sweep: validation accuracy per epoch for each rate, and final validation
/// accuracy against log10(learning rate). `runs`: each rate with its (epoch, validation
/// accuracy) points.
pub fn sweep(runs: &[(f64, Vec<(f64, f64)>)], path: &Path) -> Result<()> {
    font();
    let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled("learning-rate sweep (validation split)", ("sans-serif", 22))
        .map_err(err)?;
    let (left, right) = root.split_horizontally(550);
    let per_epoch: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(lr, points)| (format!("lr {lr}"), points.clone()))
        .collect();
    lines(&left, "validation accuracy per epoch", "epoch", &per_epoch)?;
    let finals = vec![(
        "final validation accuracy".to_string(),
        runs.iter()
            .map(|(lr, points)| (lr.log10(), points.last().map_or(0.0, |p| p.1)))
            .collect(),
    )];
    lines(
        &right,
        "final validation accuracy",
        "log10(learning rate)",
        &finals,
    )?;
    root.present().map_err(err)?;
    Ok(())
}

/// Validation accuracy per epoch of several models on one chart: each model's name with its
/// (epoch, validation accuracy) points.
pub fn compare_val(models: &[(&str, Vec<(f64, f64)>)], path: &Path) -> Result<()> {
    font();
    let root = BitMapBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = models
        .iter()
        .map(|(n, points)| (n.to_string(), points.clone()))
        .collect();
    lines(&root, "validation accuracy per epoch", "epoch", &series)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Named lines: each series' name with its (x, y) points.
pub type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Panels side by side, each several named lines against the epoch, under one title.
pub fn per_epoch(title: &str, panels: &[(&str, Series)], path: &Path) -> Result<()> {
    font();
    let width = 700 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, (caption, series)) in areas.iter().zip(panels) {
        lines(area, caption, "epoch", series)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One photo of [`answer_page`]: the picture, a caption (the truth) and one line per model,
/// green when right.
pub struct PageCell {
    pub picture: image::RgbImage,
    pub caption: String,
    pub lines: Vec<(String, bool)>,
}

/// A page of photos with what each model answered, `columns` photos a row.
pub fn answer_page(cells: &[PageCell], columns: usize, title: &str, path: &Path) -> Result<()> {
    font();
    let (pw, ph) = cells
        .first()
        .map_or((1, 1), |c| (c.picture.width(), c.picture.height()));
    let lines = cells.iter().map(|c| c.lines.len()).max().unwrap_or(0) as u32;
    // Wide enough for the longest line (about 6.5 px a character at 12 px).
    let longest = cells
        .iter()
        .flat_map(|c| c.lines.iter().map(|l| l.0.chars().count()))
        .max()
        .unwrap_or(0) as u32;
    let (cw, chh, top) = (
        pw.max(longest * 13 / 2) + 10,
        ph + 22 + 15 * lines + 8,
        40u32,
    );
    let rows = cells.len().div_ceil(columns.max(1)) as u32;
    let (w, h) = (cw * columns as u32 + 8, top + chh * rows);
    let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (i, c) in cells.iter().enumerate() {
        let (x0, y0) = (
            8 + (i % columns) as u32 * cw,
            top + (i / columns) as u32 * chh,
        );
        image::imageops::overlay(&mut canvas, &c.picture, x0.into(), y0.into());
    }
    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(err)?;
        for (i, c) in cells.iter().enumerate() {
            let x0 = 8 + (i % columns) as i32 * cw as i32;
            let y0 = (top + (i / columns) as u32 * chh + ph + 4) as i32;
            root.draw(&Text::new(
                c.caption.clone(),
                (x0, y0),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
            for (k, (line, right)) in c.lines.iter().enumerate() {
                let colour = if *right {
                    RGBColor(0, 120, 0)
                } else {
                    RGBColor(200, 0, 0)
                };
                root.draw(&Text::new(
                    line.clone(),
                    (x0, y0 + 17 + 15 * k as i32),
                    ("sans-serif", 12).into_font().color(&colour),
                ))
                .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("page buffer size"))?;
    img.save(path)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}
