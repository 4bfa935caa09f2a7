//! The figures a run and a sweep draw, with `plotters` (its SVG back end): `curves.svg`
//! (per epoch: train and validation loss; test and validation accuracy; penalty; density as a step at each
//! prune; phase changes marked and named, prunes marked) and `pareto.svg` (accuracy against
//! nonzero parameters on a log axis, the Pareto front marked, labelled and in a legend).
//! Text is SVG text in a sans-serif font: no font files are read.

use crate::sweep::Point;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use serde_json::Value;

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const PURPLE: RGBColor = RGBColor(0x94, 0x67, 0xbd);
const FRONT: RGBColor = RGBColor(0xcc, 0x33, 0x33);
const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// One panel of the curves: its title, its y-axis label, and each series' key in the metrics,
/// legend name and colour; `percent` scales fractions to %.
struct Panel {
    title: &'static str,
    y: &'static str,
    series: &'static [(&'static str, &'static str, RGBColor)],
    percent: bool,
    step: bool,
    /// Where its legend goes: where curves of its kind leave room (a loss falls, an
    /// accuracy rises).
    legend: SeriesLabelPosition,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "loss",
        y: "cross-entropy",
        series: &[("train_loss", "train", BLUE), ("validation_loss", "validation", ORANGE)],
        percent: false,
        step: false,
        legend: SeriesLabelPosition::UpperMiddle,
    },
    Panel {
        title: "accuracy",
        y: "accuracy (%)",
        series: &[("test_accuracy", "test", GREEN), ("validation_accuracy", "validation", ORANGE)],
        percent: true,
        step: false,
        legend: SeriesLabelPosition::LowerRight,
    },
    Panel {
        title: "penalty",
        y: "penalty",
        series: &[("penalty", "penalty", PURPLE)],
        percent: false,
        step: false,
        legend: SeriesLabelPosition::UpperRight,
    },
    Panel {
        title: "density",
        y: "nonzero parameters (%)",
        series: &[("density", "density", FRONT)],
        percent: true,
        step: true,
        legend: SeriesLabelPosition::UpperRight,
    },
];

/// `curves.svg` from metrics.jsonl's lines (one per epoch, in order).
pub fn curves_svg(metrics: &[Value]) -> String {
    let mut svg = String::new();
    let n = metrics.len();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 4 * 230)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let value = |m: &Value, key: &str, percent: bool| {
            m[key].as_f64().filter(|v| v.is_finite()).map(|v| if percent { 100.0 * v } else { v })
        };
        // Phase changes between epoch i and i + 1 (x = i + 0.5), with the new phase's name;
        // a prune between them where the density fell there.
        let changes: Vec<(f64, String, bool)> = (1..n)
            .filter(|&i| metrics[i]["phase"] != metrics[i - 1]["phase"])
            .map(|i| {
                let fell = matches!((metrics[i - 1]["density"].as_f64(), metrics[i]["density"].as_f64()), (Some(a), Some(b)) if b < a);
                (i as f64 + 0.5, metrics[i]["phase"].as_str().unwrap_or("").to_string(), fell)
            })
            .collect();
        for (area, panel) in root.split_evenly((4, 1)).iter().zip(&PANELS) {
            let points: Vec<Vec<(f64, f64)>> = panel
                .series
                .iter()
                .map(|(key, _, _)| {
                    metrics
                        .iter()
                        .enumerate()
                        .filter_map(|(i, m)| Some(((i + 1) as f64, value(m, key, panel.percent)?)))
                        .collect()
                })
                .collect();
            let all: Vec<f64> = points.iter().flatten().map(|p| p.1).collect();
            let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let (lo, hi) = match (lo.is_finite(), hi > lo) {
                (false, _) => (0.0, 1.0),
                (true, false) => (lo - 0.5_f64.max(lo.abs() * 0.05), hi + 0.5_f64.max(hi.abs() * 0.05)),
                (true, true) => (lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05),
            };
            let Ok(mut chart) = ChartBuilder::on(area)
                .caption(panel.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(64)
                .build_cartesian_2d(0.5..(n.max(1) as f64 + 0.5), lo..hi)
            else {
                continue;
            };
            let _ = chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(panel.y)
                .x_labels(12)
                .y_labels(6)
                .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
                .light_line_style(WHITE.mix(0.0))
                .draw();
            for (x, name, pruned) in &changes {
                let line = DashedLineSeries::new(vec![(*x, lo), (*x, hi)], 5, 4, GREY.stroke_width(1));
                let _ = chart.draw_series(line);
                let label = if *pruned { format!("prune → {name}") } else { name.clone() };
                let _ = chart.draw_series(std::iter::once(Text::new(
                    label,
                    (*x + 0.1, hi - (hi - lo) * 0.04),
                    ("sans-serif", 12).into_font().color(&GREY),
                )));
            }
            for ((_, legend, color), pts) in panel.series.iter().zip(&points) {
                if pts.is_empty() {
                    continue;
                }
                // A density falls at a prune, between two epochs: drawn as a step there.
                let line: Vec<(f64, f64)> = if panel.step {
                    let mut l = vec![pts[0]];
                    for w in pts.windows(2) {
                        let mid = (w[0].0 + w[1].0) / 2.0;
                        l.extend([(mid, w[0].1), (mid, w[1].1), w[1]]);
                    }
                    l
                } else {
                    pts.clone()
                };
                let color = *color;
                if let Ok(series) = chart.draw_series(LineSeries::new(line, color.stroke_width(2))) {
                    series
                        .label(*legend)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                }
                let _ = chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())));
            }
            if panel.series.len() > 1 {
                let _ = chart
                    .configure_series_labels()
                    .position(panel.legend.clone())
                    .background_style(WHITE.mix(0.8))
                    .border_style(GREY)
                    .draw();
            }
        }
        let _ = root.present();
    }
    svg
}

/// `pareto.svg`: each run's accuracy (validation where every run has one, else test)
/// against its nonzero parameters; the Pareto front in red, labelled.
pub fn pareto_svg(points: &[Point], by_validation: bool, front: &[bool]) -> String {
    let what = if by_validation { "validation" } else { "test" };
    let acc =
        |p: &Point| 100.0 * if by_validation { p.validation_accuracy.unwrap_or(f64::NAN) } else { p.test_accuracy };
    let drawn: Vec<(usize, &Point)> =
        points.iter().enumerate().filter(|(_, p)| acc(p).is_finite() && p.nonzeros > 0).collect();
    let mut svg = String::new();
    'draw: {
        let root = SVGBackend::with_string(&mut svg, (820, 520)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let caption = format!("{what} accuracy against nonzero parameters");
        if drawn.is_empty() {
            let _ = root.draw(&Text::new(format!("{caption}: no finished runs to draw"), (20, 30), ("sans-serif", 16)));
            let _ = root.present();
            break 'draw;
        }
        let (x0, x1) = drawn.iter().fold((u64::MAX, 0), |(a, b), (_, p)| (a.min(p.nonzeros), b.max(p.nonzeros)));
        let (y0, y1) = drawn.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, p)| (a.min(acc(p)), b.max(acc(p))));
        // Room around the points: a fifth of a decade, a tenth of the accuracy range.
        let (x0, x1) = (x0 as f64 / 1.6, x1 as f64 * 1.6);
        let dy = ((y1 - y0) * 0.1).max(0.05);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(&caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(log_ticks(x0, x1)),
                (y0 - dy)..(y1 + dy).min(100.0 + dy),
            )
        else {
            break 'draw;
        };
        let _ = chart
            .configure_mesh()
            .x_desc("nonzero parameters (log scale)")
            .y_desc(format!("{what} accuracy (%)"))
            .y_labels(8)
            .light_line_style(WHITE.mix(0.0))
            .x_label_formatter(&|x| hoyer_front::summary::thousands(x.round() as u64))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw();
        let at = |p: &Point| (p.nonzeros as f64, acc(p));
        let others: Vec<(f64, f64)> = drawn.iter().filter(|(i, _)| !front[*i]).map(|(_, p)| at(p)).collect();
        let mut ours: Vec<(usize, &Point)> = drawn.iter().filter(|(i, _)| front[*i]).copied().collect();
        if !others.is_empty() {
            if let Ok(s) = chart.draw_series(others.iter().map(|&q| Circle::new(q, 4, BLUE.filled()))) {
                s.label("other runs").legend(|(x, y)| Circle::new((x + 9, y), 4, BLUE.filled()));
            }
        }
        if let Ok(s) = chart.draw_series(ours.iter().map(|(_, p)| Circle::new(at(p), 5, FRONT.filled()))) {
            s.label("Pareto front").legend(|(x, y)| Circle::new((x + 9, y), 5, FRONT.filled()));
        }
        // The front, from few nonzeros to many, as a line; its labels alternate above and
        // below it so that neighbours do not overlap.
        ours.sort_by_key(|(_, p)| p.nonzeros);
        let _ = chart.draw_series(LineSeries::new(ours.iter().map(|(_, p)| at(p)), FRONT.mix(0.5).stroke_width(1)));
        for (k, (_, p)) in ours.iter().enumerate() {
            let dy = if k % 2 == 0 { -14 } else { 8 };
            let label = EmptyElement::at(at(p))
                + Text::new(p.label.clone(), (6, dy), ("sans-serif", 11).into_font().color(&FRONT));
            let _ = chart.draw_series(std::iter::once(label));
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(GREY)
            .draw();
        let _ = root.present();
    }
    svg
}

/// Ticks of a log axis from `lo` to `hi`: 1, 2 and 5 times the powers of ten between them.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.max(1.0).log10().floor() as i32);
    while decade <= hi {
        ticks.extend([1.0, 2.0, 5.0].iter().map(|m| m * decade).filter(|t| (lo..=hi).contains(t)));
        decade *= 10.0;
    }
    ticks
}
