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
    /// How requests arrived, in words.
    pub arrivals: String,
    /// Base open-loop arrival rate, requests per second (0 for a closed loop).
    pub rate: f64,
    /// Virtual time excluded from the statistics at the start.
    pub warmup_ns: Nanos,
    /// Length of the measured window.
    pub measured_ns: Nanos,
    /// Independent runs per variant; figures are their means.
    pub replications: u32,
    /// The scenario's endpoint events, for charts.
    pub events: Vec<Mark>,
    pub variants: Vec<VariantReport>,
}

/// An endpoint event at a time.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub at_ns: Nanos,
    /// Such as `crash contacts 127.0.0.1:9101`.
    pub label: String,
}

/// The results of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    /// `spec`, or the algorithm every pool used, and any setting overrides.
    pub variant: String,
    /// Requests that arrived in the measured window.
    pub requests: u64,
    /// Of those, requests answered below 500.
    pub succeeded: u64,
    /// Of those, requests that failed, by kind.
    pub errors: Errors,
    /// Retries the gateway made for measured requests.
    pub retries: u64,
    /// Tries (first or retried) that failed, measured or not.
    pub failed_tries: u64,
    /// Requests answered within the window, per second.
    pub throughput: f64,
    /// Arrival to answer, queueing and retries included, of every answered
    /// measured request, successful or not.
    pub latency: Latency,
    pub routes: Vec<RouteReport>,
    pub endpoints: Vec<EndpointReport>,
    /// The latency distribution: (quantile, nanoseconds) pairs.
    #[serde(skip)]
    pub cdf: Vec<(f64, Nanos)>,
    /// Throughput, errors and p99 over the whole run, warm-up included.
    #[serde(skip)]
    pub series: Vec<Point>,
    /// 95% confidence half-widths, with two replications or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

impl VariantReport {
    /// Failed requests over measured requests, 0 to 1.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors.total(), self.requests)
    }

    pub fn success_rate(&self) -> f64 {
        ratio(self.succeeded, self.requests)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Failed requests by what the client received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// 504: the route's time limit passed.
    pub timeout: u64,
    /// 503: a circuit breaker refused.
    pub breaker: u64,
    /// 503: the pool had no eligible endpoint.
    pub no_endpoint: u64,
    /// 502: the endpoint refused or dropped the connection.
    pub unreachable: u64,
    /// The endpoint's own 5xx (failing, failing fast, or its queue full).
    pub upstream_5xx: u64,
    /// Never answered: an endpoint swallowed it and no time limit applied.
    pub unanswered: u64,
}

impl Errors {
    /// Errors the client received an answer for.
    pub fn answered(&self) -> u64 {
        self.timeout + self.breaker + self.no_endpoint + self.unreachable + self.upstream_5xx
    }

    pub fn total(&self) -> u64 {
        self.answered() + self.unanswered
    }
}

/// One step of a time series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub at_ns: Nanos,
    /// Answers per second in this step.
    pub throughput: f64,
    /// Errors answered in this step.
    pub errors: u64,
    pub p99_ns: Nanos,
}

/// Half-widths of 95% confidence intervals over replications (Student's t).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Interval {
    pub throughput: f64,
    pub mean_ns: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p99_9_ns: f64,
    /// Of the error rate, 0 to 1.
    pub error_rate: f64,
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
        let replications = if self.replications > 1 {
            format!(", {} replications (± is a 95% confidence half-width)", self.replications)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "seed {}, {}, {} warm-up, {} measured{replications}\n",
            self.seed,
            self.arrivals,
            Human(self.warmup_ns),
            Human(self.measured_ns),
        );

        // Overall figures, one row per variant.
        let header = [
            "variant",
            "requests",
            "throughput",
            "success",
            "errors",
            "retries",
            "mean",
            "p50",
            "p99",
            "p99.9",
            "max",
        ];
        let rows = self.variants.iter().map(|v| {
            let l = &v.latency;
            let ci = v.interval;
            let pm = |x: String, h: Option<f64>, f: &dyn Fn(f64) -> String| match h {
                Some(h) => format!("{x} ±{}", f(h)),
                None => x,
            };
            let time = |ns: f64| Human(ns.round() as Nanos).to_string();
            let mut row = vec![v.variant.clone(), v.requests.to_string()];
            row.push(pm(format!("{:.1}/s", v.throughput), ci.map(|c| c.throughput), &|h| {
                format!("{h:.1}")
            }));
            row.push(percent(v.success_rate()));
            row.push(pm(percent(v.error_rate()), ci.map(|c| c.error_rate), &|h| percent(h)));
            row.push(v.retries.to_string());
            row.push(pm(Human(l.mean_ns).to_string(), ci.map(|c| c.mean_ns), &time));
            row.push(pm(Human(l.p50_ns).to_string(), ci.map(|c| c.p50_ns), &time));
            row.push(pm(Human(l.p99_ns).to_string(), ci.map(|c| c.p99_ns), &time));
            row.push(pm(Human(l.p99_9_ns).to_string(), ci.map(|c| c.p99_9_ns), &time));
            row.push(Human(l.max_ns).to_string());
            row
        });
        render(&mut out, &header.map(String::from), rows.collect(), 1);

        // Errors by kind, for the variants that had any.
        let failing: Vec<_> = self.variants.iter().filter(|v| v.errors.total() > 0).collect();
        if !failing.is_empty() {
            let header = [
                "errors",
                "504 timeout",
                "503 breaker",
                "503 no endpoint",
                "502 unreachable",
                "5xx upstream",
                "unanswered",
            ];
            let rows = failing.iter().map(|v| {
                let e = &v.errors;
                let cells = [e.timeout, e.breaker, e.no_endpoint, e.unreachable, e.upstream_5xx];
                std::iter::once(v.variant.clone())
                    .chain(cells.iter().map(u64::to_string))
                    .chain(std::iter::once(e.unanswered.to_string()))
                    .collect()
            });
            out.push('\n');
            render(&mut out, &header.map(String::from), rows.collect(), 1);
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

    /// One CSV row per variant with the overall figures, durations in
    /// nanoseconds, rates from 0 to 1.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "variant,requests,succeeded,error_rate,timeout,breaker,no_endpoint,unreachable,\
             upstream_5xx,unanswered,retries,throughput,mean_ns,p50_ns,p99_ns,p99_9_ns,max_ns\n",
        );
        for v in &self.variants {
            let (e, l) = (&v.errors, &v.latency);
            let name = if v.variant.contains([',', '"']) {
                format!("\"{}\"", v.variant.replace('"', "\"\""))
            } else {
                v.variant.clone()
            };
            let _ = writeln!(
                out,
                "{name},{},{},{},{},{},{},{},{},{},{},{:.3},{},{},{},{},{}",
                v.requests,
                v.succeeded,
                v.error_rate(),
                e.timeout,
                e.breaker,
                e.no_endpoint,
                e.unreachable,
                e.upstream_5xx,
                e.unanswered,
                v.retries,
                v.throughput,
                l.mean_ns,
                l.p50_ns,
                l.p99_ns,
                l.p99_9_ns,
                l.max_ns
            );
        }
        out
    }
}

/// Combine the replications of one variant: counts add up, rates and
/// latencies are means, and with two or more replications each key figure
/// gets a 95% confidence half-width. Per-route, per-endpoint and time
/// figures are the first replication's.
pub(crate) fn combine<'a>(runs: impl Iterator<Item = &'a VariantReport>) -> VariantReport {
    let runs: Vec<&VariantReport> = runs.collect();
    let mut out = runs[0].clone();
    if runs.len() < 2 {
        return out;
    }
    let figure = |f: &dyn Fn(&VariantReport) -> f64| -> (f64, f64) {
        let xs: Vec<f64> = runs.iter().map(|r| f(r)).collect();
        mean_and_half_width(&xs)
    };
    let (throughput, t) = figure(&|r| r.throughput);
    let (mean, m) = figure(&|r| r.latency.mean_ns as f64);
    let (p50, a) = figure(&|r| r.latency.p50_ns as f64);
    let (p99, b) = figure(&|r| r.latency.p99_ns as f64);
    let (p999, c) = figure(&|r| r.latency.p99_9_ns as f64);
    let (_, e) = figure(&|r| r.error_rate());
    out.throughput = throughput;
    out.latency.mean_ns = mean.round() as Nanos;
    out.latency.p50_ns = p50.round() as Nanos;
    out.latency.p99_ns = p99.round() as Nanos;
    out.latency.p99_9_ns = p999.round() as Nanos;
    out.latency.max_ns = runs.iter().map(|r| r.latency.max_ns).max().unwrap_or(0);
    for r in &runs[1..] {
        out.requests += r.requests;
        out.succeeded += r.succeeded;
        out.retries += r.retries;
        out.failed_tries += r.failed_tries;
        let (x, y) = (&mut out.errors, &r.errors);
        x.timeout += y.timeout;
        x.breaker += y.breaker;
        x.no_endpoint += y.no_endpoint;
        x.unreachable += y.unreachable;
        x.upstream_5xx += y.upstream_5xx;
        x.unanswered += y.unanswered;
    }
    out.interval = Some(Interval {
        throughput: t,
        mean_ns: m,
        p50_ns: a,
        p99_ns: b,
        p99_9_ns: c,
        error_rate: e,
    });
    out
}

/// Sample mean and the half-width of its 95% confidence interval.
fn mean_and_half_width(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, student_t975(xs.len() - 1) * (var / n).sqrt())
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
fn student_t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// `0.12%`, with more digits for small shares.
pub fn percent(x: f64) -> String {
    let p = 100.0 * x;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.1}%")
    } else if p >= 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.3}%")
    }
}

/// `800` rather than `800.0`, and `0.5` as it is.
pub(crate) fn trim_float(x: f64) -> String {
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
    fn confidence_half_width_uses_student_t() {
        let (mean, h) = mean_and_half_width(&[1.0, 2.0, 3.0]);
        assert_eq!(mean, 2.0);
        // s = 1, n = 3: t(2) / sqrt(3).
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-9, "{h}");
    }

    #[test]
    fn rates_print_without_noise() {
        assert_eq!(trim_float(800.0), "800");
        assert_eq!(trim_float(0.5), "0.5");
    }
}
