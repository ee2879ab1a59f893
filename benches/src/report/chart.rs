//! The report's SVG charts, drawn with `plotters` (SVG backend only, no
//! system fonts: text is left to the browser).
//!
//! One chart shape serves both figures: horizontal bars in labelled groups
//! on a logarithmic value axis, each bar with its value written at its end,
//! and an optional legend of colours below the axis.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
pub use plotters::style::RGBColor;

/// The colour of the series at `index` (cycled).
pub fn series_color(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(0x4e, 0x79, 0xa7),
        RGBColor(0xf2, 0x8e, 0x2b),
        RGBColor(0xe1, 0x57, 0x59),
        RGBColor(0x76, 0xb7, 0xb2),
        RGBColor(0x59, 0xa1, 0x4f),
        RGBColor(0xed, 0xc9, 0x48),
        RGBColor(0xb0, 0x7a, 0xa1),
        RGBColor(0x9c, 0x75, 0x5f),
    ];
    PALETTE[index % PALETTE.len()]
}

/// The colour of raw baselines.
pub const BASELINE_GREY: RGBColor = RGBColor(0x9e, 0x9e, 0x9e);

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Its value (only positive finite values are drawn).
    pub value: f64,
    /// Its colour.
    pub color: RGBColor,
}

/// Bars drawn together under one label on the category axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The label left of the group.
    pub label: String,
    /// The bars, top to bottom.
    pub bars: Vec<Bar>,
}

/// What a chart shows.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// The caption.
    pub title: &'a str,
    /// Bars in groups, top to bottom.
    pub groups: &'a [Group],
    /// Formats a value (axis ticks and bar ends).
    pub format: fn(f64) -> String,
    /// Names and colours explained below the axis (may be empty).
    pub legend: &'a [(String, RGBColor)],
}

// Layout, in pixels. (plotters draws SVG text at 1/1.24 of the size asked.)
const WIDTH: u32 = 840;
const LABEL_WIDTH: u32 = 190;
const BAR: u32 = 12;
const GROUP_GAP: u32 = 8;
const TOP: u32 = 40;
const AXIS: u32 = 30;
const LEGEND_ROW: u32 = 16;

/// The powers of ten that enclose every drawable value, at least one decade
/// apart: `None` when no value is positive and finite.
fn decades(groups: &[Group]) -> Option<(f64, f64)> {
    let values = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.value))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    let lo = lo.log10().floor();
    Some((lo, hi.log10().ceil().max(lo + 1.0)))
}

impl Chart<'_> {
    /// The SVG document, or `None` when there is nothing to draw.
    ///
    /// # Errors
    /// What `plotters` reports (drawing into a string does not fail in
    /// practice).
    pub fn svg(&self) -> Result<Option<String>, String> {
        let Some((lo_e, hi_e)) = decades(self.groups) else {
            return Ok(None);
        };
        let bars: u32 = self.groups.iter().map(|g| g.bars.len() as u32).sum();
        let plot_h = TOP + bars * BAR + self.groups.len() as u32 * GROUP_GAP + AXIS;
        let legend_h = if self.legend.is_empty() {
            0
        } else {
            8 + self.legend.len() as u32 * LEGEND_ROW
        };
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (WIDTH, plot_h + legend_h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (plot, legend) = root.split_vertically(plot_h);
            self.draw_bars(&plot, lo_e, hi_e)
                .map_err(|e| e.to_string())?;
            self.draw_legend(&legend).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(Some(svg))
    }

    fn draw_bars(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        lo_e: f64,
        hi_e: f64,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        // Rows counted from the top, in bar heights; plotters' y grows upwards.
        let gap = f64::from(GROUP_GAP) / f64::from(BAR);
        let total: f64 = self.groups.iter().map(|g| g.bars.len() as f64 + gap).sum();
        let mut rows = Vec::new();
        let mut centers = Vec::new();
        let mut y = total - gap / 2.0;
        for g in self.groups {
            centers.push(y - g.bars.len() as f64 / 2.0);
            for b in &g.bars {
                rows.push((y, b));
                y -= 1.0;
            }
            y -= gap;
        }
        let ticks: Vec<f64> = (lo_e as i32..=hi_e as i32).map(|e| 10f64.powi(e)).collect();
        let (lo, hi) = (10f64.powf(lo_e), 10f64.powf(hi_e));
        let mut chart = ChartBuilder::on(area)
            .caption(
                self.title,
                ("sans-serif", 17).into_font().style(FontStyle::Bold),
            )
            .margin_top(8)
            .margin_left(10)
            .margin_right(70)
            .x_label_area_size(AXIS - 4)
            .y_label_area_size(LABEL_WIDTH - 10)
            .build_cartesian_2d((lo..hi).log_scale().with_key_points(ticks), 0.0..total)?;
        let format = |v: &f64| (self.format)(*v);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .label_style(("sans-serif", 13))
            .x_label_formatter(&format)
            .y_labels(0)
            .draw()?;
        // Group labels at the group centres, left of the axis.
        let label = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (g, center) in self.groups.iter().zip(&centers) {
            let (x, y) = chart.backend_coord(&(lo, *center));
            area.draw(&Text::new(g.label.as_str(), (x - 6, y), label.clone()))?;
        }
        let drawn = rows
            .iter()
            .filter(|(_, b)| b.value.is_finite() && b.value > 0.0);
        chart.draw_series(drawn.clone().map(|(y, b)| {
            Rectangle::new([(lo, *y - 0.9), (b.value, *y - 0.1)], b.color.filled())
        }))?;
        let text = ("sans-serif", 11)
            .into_font()
            .color(&RGBColor(0x33, 0x33, 0x33))
            .pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(drawn.map(|(y, b)| {
            EmptyElement::at((b.value, *y - 0.5))
                + Text::new((self.format)(b.value), (4, 0), text.clone())
        }))?;
        Ok(())
    }

    fn draw_legend(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let x = LABEL_WIDTH as i32;
        for (i, (name, color)) in self.legend.iter().enumerate() {
            let y = 4 + (i as u32 * LEGEND_ROW) as i32;
            area.draw(&Rectangle::new([(x, y), (x + 10, y + 10)], color.filled()))?;
            area.draw(&Text::new(name.as_str(), (x + 14, y), ("sans-serif", 13)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(v: f64) -> String {
        format!("{v} ns")
    }

    /// The content of every `<text>` element.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                Some(
                    t.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .to_owned(),
                )
            })
            .collect()
    }

    fn group(label: &str, values: &[f64]) -> Group {
        Group {
            label: label.into(),
            bars: values
                .iter()
                .enumerate()
                .map(|(i, &value)| Bar {
                    value,
                    color: series_color(i),
                })
                .collect(),
        }
    }

    #[test]
    fn nothing_to_draw_is_no_chart() {
        let groups = [group("load", &[0.0, f64::NAN])];
        let chart = Chart {
            title: "t",
            groups: &groups,
            format: nanos,
            legend: &[],
        };
        assert_eq!(chart.svg(), Ok(None));
        assert_eq!(decades(&[]), None);
    }

    #[test]
    fn the_axis_spans_whole_decades() {
        assert_eq!(decades(&[group("a", &[150.0, 2_000.0])]), Some((2.0, 4.0)));
        // A single value still gets a decade.
        assert_eq!(decades(&[group("a", &[100.0])]), Some((2.0, 3.0)));
    }

    #[test]
    fn bars_labels_ticks_and_legend_are_in_the_svg() {
        let groups = [group("load", &[150.0, 2_000.0]), group("save", &[30_000.0])];
        let legend = [
            ("memory".to_owned(), series_color(0)),
            ("redis".to_owned(), series_color(1)),
        ];
        let svg = Chart {
            title: "p50 <latency>",
            groups: &groups,
            format: nanos,
            legend: &legend,
        }
        .svg()
        .unwrap()
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        let texts = texts(&svg);
        let has = |t: &str| texts.iter().any(|x| x == t);
        assert!(has("p50 &lt;latency&gt;"), "{texts:?}");
        for label in ["load", "save", "memory", "redis"] {
            assert!(has(label), "{label} missing from {texts:?}");
        }
        // Decade ticks and one value label per bar.
        for v in ["100 ns", "1000 ns", "10000 ns", "100000 ns"] {
            assert!(has(v), "tick {v} missing from {texts:?}");
        }
        for v in ["150 ns", "2000 ns", "30000 ns"] {
            assert!(has(v), "value {v} missing from {texts:?}");
        }
        // Three bars and two legend swatches in the series colours.
        let fills = |c: RGBColor| {
            svg.matches(&format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2))
                .count()
        };
        assert_eq!(fills(series_color(0)), 3);
        assert_eq!(fills(series_color(1)), 2);
    }
}
