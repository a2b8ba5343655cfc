//! Charts of lab's measurements, rendered without system fonts: plotters with DejaVu Sans
//! embedded (the `dejavu` crate) through ab_glyph, to SVG text or PNG bytes. Pure: a
//! [`Chart`] in, bytes out.
//!
//! ```
//! use plot::{Chart, Kind, Series};
//! let chart = Chart {
//!     title: "per-subflow throughput".into(),
//!     x_label: "seconds".into(),
//!     y_label: "Mbit/s".into(),
//!     kind: Kind::Stacked,
//!     series: vec![
//!         Series { name: "enp0s8".into(), points: vec![(0.0, 40.0), (1.0, 45.0)] },
//!         Series { name: "enp0s9".into(), points: vec![(0.0, 30.0), (1.0, 35.0)] },
//!     ],
//! };
//! let svg = plot::svg(&chart, 800, 400).unwrap();
//! assert!(svg.contains("<svg") && svg.contains("enp0s9"));
//! let png = plot::png(&chart, 800, 400).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("drawing the chart: {0}")]
    Draw(String),
    #[error("encoding the PNG: {0}")]
    Png(String),
    #[error("the embedded font cannot be read")]
    Font,
}

/// How the series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One line each.
    Lines,
    /// Areas stacked in the given order (the series share their x values).
    Stacked,
    /// A dot per point (sequence numbers, RTT samples).
    Points,
}

/// One named series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub kind: Kind,
    pub series: Vec<Series>,
}

/// The font, registered with plotters once (a bitmap backend without one panics).
fn font() -> Result<(), Error> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if *ok { Ok(()) } else { Err(Error::Font) }
}

/// The series as drawn: cumulative sums for a stacked chart.
fn drawn(chart: &Chart) -> Vec<Series> {
    match chart.kind {
        Kind::Lines | Kind::Points => chart.series.clone(),
        Kind::Stacked => {
            let mut out: Vec<Series> = Vec::new();
            for s in &chart.series {
                let points = s
                    .points
                    .iter()
                    .enumerate()
                    .map(|(i, (x, y))| {
                        let below = out
                            .last()
                            .and_then(|p| p.points.get(i))
                            .map_or(0.0, |p| p.1);
                        (*x, below + y)
                    })
                    .collect();
                out.push(Series {
                    name: s.name.clone(),
                    points,
                });
            }
            out
        }
    }
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| Error::Draw(e.to_string());
    area.fill(&WHITE).map_err(|e| err(&e))?;
    let series = drawn(chart);
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for s in &series {
        for (x, y) in &s.points {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y1 = y1.max(*y);
        }
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    // Dots at the right edge would sit under the legend: room for it on the right.
    if chart.kind == Kind::Points {
        x1 += (x1 - x0) * 0.45;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let mut c = ChartBuilder::on(&area)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| err(&e))?;
    let color = |i: usize| Palette99::pick(i).to_rgba();
    match chart.kind {
        Kind::Lines => {
            for (i, s) in series.iter().enumerate() {
                c.draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color(i).stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(i)));
            }
        }
        Kind::Points => {
            for (i, s) in series.iter().enumerate() {
                c.draw_series(
                    s.points
                        .iter()
                        .map(|p| Circle::new(*p, 2, color(i).filled())),
                )
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| Circle::new((x + 7, y), 4, color(i).filled()));
            }
        }
        Kind::Stacked => {
            // Highest first, so each lower layer is drawn over the one above it.
            for (i, s) in series.iter().enumerate().rev() {
                c.draw_series(AreaSeries::new(
                    s.points.iter().copied(),
                    0.0,
                    color(i).filled(),
                ))
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color(i).filled())
                });
            }
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    area.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The chart as SVG text.
pub fn svg(chart: &Chart, width: u32, height: u32) -> Result<String, Error> {
    font()?;
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw(area, chart)?;
    }
    Ok(out)
}

/// The chart as PNG bytes.
pub fn png(chart: &Chart, width: u32, height: u32) -> Result<Vec<u8>, Error> {
    font()?;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(area, chart)?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| Error::Png(e.to_string()))?;
        w.write_image_data(&rgb)
            .map_err(|e| Error::Png(e.to_string()))?;
    }
    Ok(out)
}
