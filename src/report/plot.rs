//! Line plots with plotters, as SVG (text as SVG text, no fonts needed to view it) and PNG
//! (text rasterised with the embedded DejaVu Sans Mono, so no system fonts are needed).

use crate::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The embedded font (DejaVu Sans Mono, Bitstream Vera licence: `data/fonts/`).
static FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "itlin-sans";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font (checked by the plotting tests).
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// One named curve of `(x, y)` points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named curve.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
        }
    }
}

fn tr(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log {
        (v > 0.0).then(|| v.log10())
    } else {
        Some(v)
    }
}

fn fmt_tick(v: f64, log: bool) -> String {
    if log {
        let p = 10f64.powf(v);
        if (v - v.round()).abs() < 1e-9 {
            format!("1e{}", v.round() as i64)
        } else {
            format!("{p:.2e}")
        }
    } else if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Draws `series` into `stem.svg` and `stem.png` (800×500). `log_x`/`log_y` plot `log10`
/// of the values (non-positive values are skipped) with `1eK` tick labels. `x_ticks`
/// optionally renames x positions (e.g. `∞`), given as `(x, label)` in data units.
///
/// # Errors
/// [`Error::Io`] if a file cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn line_plot(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    line_plot_with_ticks(stem, title, x_label, y_label, series, log_x, log_y, &[])
}

/// As [`line_plot`] with renamed x ticks.
///
/// # Errors
/// [`Error::Io`] if a file cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn line_plot_with_ticks(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
    log_y: bool,
    x_ticks: &[(f64, String)],
) -> Result<()> {
    register_font();
    let data: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| {
            (
                s.label.clone(),
                s.points
                    .iter()
                    .filter_map(|&(x, y)| Some((tr(x, log_x)?, tr(y, log_y)?)))
                    .collect(),
            )
        })
        .collect();
    let ticks: Vec<(f64, String)> = x_ticks
        .iter()
        .filter_map(|(x, l)| Some((tr(*x, log_x)?, l.clone())))
        .collect();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let err = |p: &Path, e: String| Error::io(p, std::io::Error::other(e));
    {
        let root = SVGBackend::new(&svg, (800, 500)).into_drawing_area();
        draw(&root, title, x_label, y_label, &data, log_x, log_y, &ticks)
            .map_err(|e| err(&svg, e.to_string()))?;
        root.present().map_err(|e| err(&svg, e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&png, (800, 500)).into_drawing_area();
        draw(&root, title, x_label, y_label, &data, log_x, log_y, &ticks)
            .map_err(|e| err(&png, e.to_string()))?;
        root.present().map_err(|e| err(&png, e.to_string()))?;
    }
    Ok(())
}

/// Upper right unless the curves end in the upper half of the plot, then lower right.
fn legend_position(data: &[(String, Vec<(f64, f64)>)], y0: f64, y1: f64) -> SeriesLabelPosition {
    let ends: Vec<f64> = data
        .iter()
        .filter_map(|(_, p)| p.last().map(|q| q.1))
        .collect();
    if ends.is_empty() || y1 <= y0 {
        return SeriesLabelPosition::UpperRight;
    }
    let mean = ends.iter().sum::<f64>() / ends.len() as f64;
    if (mean - y0) / (y1 - y0) > 0.5 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

#[allow(clippy::too_many_arguments)]
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    data: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
    log_y: bool,
    ticks: &[(f64, String)],
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let all = data.iter().flat_map(|(_, p)| p.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |a: f64, b: f64| {
        let w = (b - a).abs().max(1e-9 * a.abs().max(1.0));
        (a - 0.05 * w, b + 0.05 * w)
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let xf = |v: &f64| {
        ticks
            .iter()
            .find(|(t, _)| (t - v).abs() < 1e-6 * (1.0 + t.abs()))
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| fmt_tick(*v, log_x))
    };
    let yf = |v: &f64| fmt_tick(*v, log_y);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .x_label_formatter(&xf)
        .y_label_formatter(&yf);
    if log_x {
        // integer decades (and the renamed ticks) only
        mesh.x_labels(((x1 - x0).ceil() as usize + 2).max(2));
    }
    mesh.draw()?;
    for (i, (label, pts)) in data.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend_position(data, y0, y1))
        .draw()?;
    Ok(())
}
