//! The report as one self-contained HTML page with inline SVG charts: no
//! script, no stylesheet or font from elsewhere, readable from a file.
//!
//! Charts: the latency distribution of every variant; throughput, p99 and
//! errors over time with the scenario's events marked; and the load of each
//! endpoint. Axes are drawn here, with "nice" ticks (1, 2 or 5 times a power
//! of ten), so the page depends on nothing.

use std::fmt::Write;

use crate::report::Report;
use crate::time::{Human, SECOND};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 34.0;
const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One line of a chart.
struct Line<'a> {
    name: &'a str,
    points: Vec<(f64, f64)>,
}

impl Report {
    /// The whole report as an HTML page.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Sluice simulation</title><style>\
             body{font-family:system-ui,sans-serif;margin:2em;max-width:1160px;color:#222}\
             table{border-collapse:collapse;font-size:13px}td,th{padding:3px 7px;text-align:right;white-space:nowrap}.ci{color:#666;font-size:11px}\
             td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f4f4f4}\
             svg text{font-size:11px;fill:#333}svg text.mark{stroke:#fff;stroke-width:3px;paint-order:stroke}.legend span{margin-right:1em}\
             </style></head><body>\n<h1>Sluice simulation</h1>\n",
        );
        let _ = writeln!(
            out,
            "<p>seed {}, {}, {} warm-up, {} measured, {} replication(s)</p>",
            self.seed,
            escape(&self.arrivals),
            Human(self.warmup_ns),
            Human(self.measured_ns),
            self.replications
        );

        // The summary table, then errors by kind; ± is a 95% confidence
        // half-width, shown with two replications or more.
        if self.replications > 1 {
            out.push_str("<p>± is a 95% confidence half-width over the replications.</p>\n");
        }
        out.push_str(
            "<table><tr><th>variant</th><th>requests</th><th>throughput</th><th>success</th>\
             <th>errors</th><th>retries</th><th>mean</th><th>p50</th><th>p99</th><th>p99.9</th></tr>\n",
        );
        for v in &self.variants {
            let mut cells = vec![escape(&v.variant)];
            cells.extend(crate::report::summary_cells(v, &pm));
            row(&mut out, &cells);
        }
        out.push_str("</table>\n");
        let failing: Vec<_> = self.variants.iter().filter(|v| v.errors.total() > 0).collect();
        if !failing.is_empty() {
            out.push_str(
                "<h2>Errors by kind</h2>\n<table><tr><th>variant</th><th>504 timeout</th>\
                 <th>503 breaker</th><th>503 no endpoint</th><th>502 unreachable</th>\
                 <th>5xx upstream</th><th>unanswered</th></tr>\n",
            );
            for v in failing {
                let cells = crate::report::error_cells(v, &pm);
                let all: Vec<String> = std::iter::once(escape(&v.variant)).chain(cells).collect();
                row(&mut out, &all);
            }
            out.push_str("</table>\n");
        }
        out.push_str(&self.legend());

        // Latency distribution, on a logarithmic time axis.
        let cdf: Vec<Line> = self
            .variants
            .iter()
            .map(|v| Line {
                name: &v.variant,
                points: v.cdf.iter().map(|&(q, ns)| ((ns.max(1) as f64).log10(), q)).collect(),
            })
            .collect();
        out.push_str("<h2>Latency distribution</h2>\n");
        out.push_str(&chart(&cdf, &[], Axis::LogNanos, Axis::Share));

        // Over time, with events marked.
        let marks: Vec<(f64, &str)> = self
            .events
            .iter()
            .map(|m| (m.at_ns as f64 / SECOND as f64, m.label.as_str()))
            .collect();
        let over_time = |f: &dyn Fn(&crate::report::Point) -> f64| -> Vec<Line> {
            self.variants
                .iter()
                .map(|v| Line {
                    name: &v.variant,
                    points: v.series.iter().map(|p| (p.at_ns as f64 / 1e9, f(p))).collect(),
                })
                .collect()
        };
        out.push_str("<h2>Throughput over time (answers per second)</h2>\n");
        out.push_str(&chart(&over_time(&|p| p.throughput), &marks, Axis::Seconds, Axis::Plain));
        out.push_str("<h2>p99 latency over time</h2>\n");
        out.push_str(&chart(&over_time(&|p| p.p99_ns as f64), &marks, Axis::Seconds, Axis::Nanos));
        out.push_str("<h2>Errors over time (per step)</h2>\n");
        out.push_str(&chart(&over_time(&|p| p.errors as f64), &marks, Axis::Seconds, Axis::Plain));

        out.push_str("<h2>Load per endpoint (utilisation)</h2>\n");
        out.push_str(&self.load_bars());
        out.push_str("</body></html>\n");
        out
    }

    fn legend(&self) -> String {
        let mut out = String::from("<p class=\"legend\">");
        for (i, v) in self.variants.iter().enumerate() {
            let _ = write!(
                out,
                "<span><svg width=\"14\" height=\"10\"><rect width=\"14\" height=\"10\" \
                 fill=\"{}\"/></svg> {}</span>",
                COLOURS[i % COLOURS.len()],
                escape(&v.variant)
            );
        }
        out.push_str("</p>\n");
        out
    }

    /// Grouped bars: one group per endpoint, one bar per variant.
    fn load_bars(&self) -> String {
        let endpoints = self.variants.first().map_or(0, |v| v.endpoints.len()).min(60);
        let groups = endpoints.max(1) as f64;
        let height = 18.0 * groups * self.variants.len().max(1) as f64 + TOP + BOTTOM;
        let (left, plot) = (230.0, WIDTH - 230.0 - RIGHT);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
             role=\"img\">"
        );
        let bar = 16.0;
        let mut y = TOP;
        for e in 0..endpoints {
            let first = &self.variants[0].endpoints[e];
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
                left - 6.0,
                y + bar * self.variants.len() as f64 / 2.0 + 4.0,
                escape(&first.pool),
                escape(&first.endpoint)
            );
            for (i, v) in self.variants.iter().enumerate() {
                let endpoint = v.endpoints.get(e);
                let u = endpoint.map_or(0.0, |x| x.utilisation).clamp(0.0, 1.0);
                let h = endpoint.and_then(|x| x.utilisation_ci95);
                let ci = h.map_or(String::new(), |h| format!(" ±{:.1}%", 100.0 * h));
                let _ = write!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                     <title>{}: {:.1}%{ci}</title></rect>",
                    u * plot,
                    bar - 2.0,
                    COLOURS[i % COLOURS.len()],
                    escape(&v.variant),
                    100.0 * u
                );
                // The confidence interval as a whisker across the bar's end.
                if let Some(h) = h.filter(|h| *h > 0.0) {
                    let (lo, hi) = ((u - h).max(0.0), (u + h).min(1.0));
                    let mid = y + (bar - 2.0) / 2.0;
                    let _ = write!(
                        svg,
                        "<path d=\"M{0:.1} {1:.1}H{2:.1}M{0:.1} {3:.1}V{4:.1}M{2:.1} {3:.1}V{4:.1}\" \
                         stroke=\"#222\" fill=\"none\"/>",
                        left + lo * plot,
                        mid,
                        left + hi * plot,
                        y + 2.0,
                        y + bar - 4.0
                    );
                }
                y += bar;
            }
            y += 2.0;
        }
        for k in 0..=4 {
            let x = left + plot * f64::from(k) / 4.0;
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ccc\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}%</text>",
                y,
                y + 14.0,
                25 * k
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[derive(Clone, Copy)]
enum Axis {
    Plain,
    Share,
    Seconds,
    Nanos,
    /// log10 of nanoseconds.
    LogNanos,
}

impl Axis {
    fn label(self, x: f64) -> String {
        match self {
            Axis::Plain => trim(x),
            Axis::Share => format!("{:.0}%", 100.0 * x),
            Axis::Seconds => format!("{}s", trim(x)),
            Axis::Nanos => Human(x.max(0.0).round() as u64).to_string(),
            Axis::LogNanos => Human(10f64.powf(x).round() as u64).to_string(),
        }
    }

    fn ticks(self, lo: f64, hi: f64) -> Vec<f64> {
        if let Axis::LogNanos = self {
            return (lo.floor() as i32..=hi.ceil() as i32).map(f64::from).collect();
        }
        let span = (hi - lo).max(1e-9);
        let raw = span / 5.0;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| span / s <= 6.0);
        let step = step.unwrap_or(power * 10.0);
        let mut t = (lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= hi + step * 1e-9 && out.len() < 12 {
            out.push(t);
            t += step;
        }
        out
    }
}

fn trim(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A line chart with vertical marks.
fn chart(lines: &[Line], marks: &[(f64, &str)], x: Axis, y: Axis) -> String {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (0.0f64, f64::NEG_INFINITY);
    for &(a, b) in all() {
        (x0, x1) = (x0.min(a), x1.max(a));
        (y0, y1) = (y0.min(b), y1.max(b));
    }
    if !x0.is_finite() || !x1.is_finite() {
        return "<p>no data</p>\n".to_owned();
    }
    if let Axis::LogNanos = x {
        (x0, x1) = (x0.floor(), x1.ceil());
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |v: f64| LEFT + (v - x0) / (x1 - x0) * w;
    let py = |v: f64| TOP + h - (v - y0) / (y1 - y0) * h;

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\"><rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{w}\" height=\"{h}\" fill=\"none\" \
         stroke=\"#999\"/>"
    );
    for t in x.ticks(x0, x1) {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3}</text>",
            px(t),
            TOP + h,
            TOP + h + 14.0,
            escape(&x.label(t))
        );
    }
    for t in y.ticks(y0, y1) {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            py(t),
            LEFT + w,
            LEFT - 6.0,
            py(t) + 4.0,
            escape(&y.label(t))
        );
    }
    for (i, line) in lines.iter().enumerate() {
        let points: Vec<String> =
            line.points.iter().map(|&(a, b)| format!("{:.1},{:.1}", px(a), py(b))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\">\
             <title>{}</title></polyline>",
            COLOURS[i % COLOURS.len()],
            points.join(" "),
            escape(line.name)
        );
    }
    for (k, &(at, label)) in marks.iter().enumerate() {
        if at < x0 || at > x1 {
            continue;
        }
        // Over the lines, haloed; inside the plot (left of a mark in its
        // right half), stepping down so that nearby marks stay apart.
        let (dx, anchor) = if px(at) > LEFT + w / 2.0 { (-3.0, "end") } else { (3.0, "start") };
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#555\" \
             stroke-dasharray=\"4 3\"><title>{2}</title></line>\
             <text class=\"mark\" x=\"{3:.1}\" y=\"{4:.1}\" text-anchor=\"{anchor}\">{2}</text>",
            px(at),
            TOP + h,
            escape(label),
            px(at) + dx,
            TOP + 11.0 + 13.0 * (k % 4) as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `x`, or `x ±h` with a confidence half-width written by `f`, in grey.
/// (A count of none in every replication reads as just `0`.)
fn pm(x: String, h: Option<f64>, f: &dyn Fn(f64) -> String) -> String {
    match h {
        Some(h) if !(h == 0.0 && x == "0") => {
            format!("{x} <span class=\"ci\">±{}</span>", f(h))
        }
        _ => x,
    }
}

/// A table row of cells already escaped.
fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for cell in cells {
        let _ = write!(out, "<td>{cell}</td>");
    }
    out.push_str("</tr>\n");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
