//! Simulation results, as a terminal table or as JSON.
//!
//! Both forms come from the same [`Report`] value and contain only figures
//! computed from virtual time and seeded draws, so the same inputs give the
//! same bytes.

use std::fmt::Write;

use serde::Serialize;

use crate::stats::Latency;
use crate::time::{Human, Nanos};

/// The results of every variant of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed every random stream was derived from.
    pub seed: u64,
    /// Poisson arrival rate, requests per second.
    pub rate: f64,
    /// Virtual time excluded from the statistics at the start.
    pub warmup_ns: Nanos,
    /// Length of the measured window.
    pub measured_ns: Nanos,
    pub variants: Vec<VariantReport>,
}

/// The results of one balancing variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    /// `spec`, or the algorithm every pool used.
    pub variant: String,
    /// Requests that arrived in the measured window.
    pub requests: u64,
    /// Of those, requests whose pool had no endpoint to send to.
    pub unroutable: u64,
    /// Requests completed within the window, per second.
    pub throughput: f64,
    /// Arrival to departure, queueing included, of every measured request.
    pub latency: Latency,
    pub routes: Vec<RouteReport>,
    pub endpoints: Vec<EndpointReport>,
}

/// Latency of the measured requests of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub requests: u64,
    pub latency: Latency,
}

/// How busy one endpoint was.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub pool: String,
    /// The endpoint's address.
    pub endpoint: String,
    pub workers: u32,
    /// Measured requests it served.
    pub requests: u64,
    /// Busy worker-time over workers times the measured window, 0 to 1.
    pub utilisation: f64,
}

impl Report {
    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .expect("a report holds only finite, serialisable values");
        text.push('\n');
        text
    }

    /// The terminal table: variants, then per-route p99, then utilisation.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "seed {}, {} req/s Poisson arrivals, {} warm-up, {} measured\n",
            self.seed,
            trim_float(self.rate),
            Human(self.warmup_ns),
            Human(self.measured_ns),
        );

        // Overall figures, one row per variant.
        let header = ["variant", "requests", "throughput", "mean", "p50", "p99", "p99.9", "max"];
        let rows = self.variants.iter().map(|v| {
            let l = &v.latency;
            let mut row = vec![v.variant.clone(), v.requests.to_string()];
            row.push(format!("{:.1}/s", v.throughput));
            row.extend(
                [l.mean_ns, l.p50_ns, l.p99_ns, l.p99_9_ns, l.max_ns]
                    .map(|ns| Human(ns).to_string()),
            );
            row
        });
        render(&mut out, &header.map(String::from), rows.collect(), 1);

        let unroutable: Vec<_> = self.variants.iter().filter(|v| v.unroutable > 0).collect();
        for v in unroutable {
            let _ = writeln!(out, "{}: {} requests found no endpoint", v.variant, v.unroutable);
        }

        // p99 per route, one column per variant.
        let names = self.variants.iter().map(|v| v.variant.clone());
        let header: Vec<String> =
            std::iter::once("route p99".to_owned()).chain(names.clone()).collect();
        let routes = self.variants.first().map_or(0, |v| v.routes.len());
        let rows = (0..routes).map(|r| {
            let name = self.variants[0].routes[r].route.clone();
            let cells = self.variants.iter().map(|v| Human(v.routes[r].latency.p99_ns).to_string());
            std::iter::once(name).chain(cells).collect()
        });
        out.push('\n');
        render(&mut out, &header, rows.collect(), 1);

        // Utilisation per endpoint, one column per variant.
        let header: Vec<String> =
            ["utilisation".to_owned(), "endpoint".to_owned()].into_iter().chain(names).collect();
        let endpoints = self.variants.first().map_or(0, |v| v.endpoints.len());
        let rows = (0..endpoints).map(|e| {
            let first = &self.variants[0].endpoints[e];
            let cells =
                self.variants.iter().map(|v| format!("{:.1}%", 100.0 * v.endpoints[e].utilisation));
            [first.pool.clone(), first.endpoint.clone()].into_iter().chain(cells).collect()
        });
        out.push('\n');
        render(&mut out, &header, rows.collect(), 2);
        out
    }
}

/// `800` rather than `800.0`, and `0.5` as it is.
fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

/// Append an aligned table: the first `left` columns left-aligned, the rest
/// right-aligned, two spaces apart, no trailing spaces.
fn render(out: &mut String, header: &[String], rows: Vec<Vec<String>>, left: usize) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i < left {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "{cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let mut out = String::new();
        let header = ["name".to_owned(), "n".to_owned()];
        render(
            &mut out,
            &header,
            vec![vec!["a".into(), "1000".into()], vec!["bbbbbb".into(), "2".into()]],
            1,
        );
        assert_eq!(out, "name       n\na       1000\nbbbbbb     2\n");
    }

    #[test]
    fn rates_print_without_noise() {
        assert_eq!(trim_float(800.0), "800");
        assert_eq!(trim_float(0.5), "0.5");
    }
}
