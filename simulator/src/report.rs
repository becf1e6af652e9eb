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

/// One step of a time series. The series covers the run up to the moment
/// arrivals stop; answers after it (the drain) count in every total but in
/// no step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub at_ns: Nanos,
    /// Answers per second in this step, over the time the step covers: the
    /// last step may end early, where the run does, or take in a remainder
    /// shorter than half a step.
    pub throughput: f64,
    /// Errors answered in this step.
    pub errors: u64,
    pub p99_ns: Nanos,
}

/// Half-widths of 95% confidence intervals over replications (Student's t
/// with N - 1 degrees of freedom), each in the unit of the figure it stands
/// beside: a count summed over the replications (requests, retries, errors
/// by kind) has the half-width of that sum, a mean or rate has the
/// half-width of the mean. Present only with two replications or more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Interval {
    pub requests: f64,
    pub succeeded: f64,
    pub throughput: f64,
    /// Of the success rate, 0 to 1.
    pub success_rate: f64,
    /// Of the error rate, 0 to 1.
    pub error_rate: f64,
    /// Of the error counts by kind.
    pub errors: ErrorsInterval,
    pub retries: f64,
    pub mean_ns: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p99_9_ns: f64,
}

/// Half-widths of the error counts by kind, as [`Errors`] counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ErrorsInterval {
    pub timeout: f64,
    pub breaker: f64,
    pub no_endpoint: f64,
    pub unreachable: f64,
    pub upstream_5xx: f64,
    pub unanswered: f64,
}

/// Half-widths of a latency summary's figures over replications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyInterval {
    pub mean_ns: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p99_9_ns: f64,
}

/// Latency of the measured requests of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub requests: u64,
    pub latency: Latency,
    /// 95% confidence half-widths, with two replications or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<LatencyInterval>,
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
    /// Its 95% confidence half-width, with two replications or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation_ci95: Option<f64>,
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
            let mut cells = vec![v.variant.clone()];
            cells.extend(summary_cells(v, &pm));
            cells.push(Human(v.latency.max_ns).to_string());
            cells
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
            let rows = failing
                .iter()
                .map(|v| std::iter::once(v.variant.clone()).chain(error_cells(v, &pm)).collect());
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
            let cells = self.variants.iter().map(|v| {
                let route = &v.routes[r];
                pm(
                    Human(route.latency.p99_ns).to_string(),
                    route.interval.map(|c| c.p99_ns),
                    &|h| Human(h.round() as Nanos).to_string(),
                )
            });
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
            let cells = self.variants.iter().map(|v| {
                let endpoint = &v.endpoints[e];
                pm(
                    format!("{:.1}%", 100.0 * endpoint.utilisation),
                    endpoint.utilisation_ci95,
                    &|h| format!("{:.1}%", 100.0 * h),
                )
            });
            [first.pool.clone(), first.endpoint.clone()].into_iter().chain(cells).collect()
        });
        out.push('\n');
        render(&mut out, &header, rows.collect(), 2);
        out
    }

    /// One CSV row per variant with the overall figures, durations in
    /// nanoseconds, rates from 0 to 1. After them, a `_ci95` column per
    /// figure (all but `max_ns`) holds its 95% confidence half-width over
    /// replications, in the figure's unit; with one replication those cells
    /// are empty, so that the header is the same whatever `--replications`.
    pub fn to_csv(&self) -> String {
        const FIGURES: [&str; 17] = [
            "requests",
            "succeeded",
            "error_rate",
            "timeout",
            "breaker",
            "no_endpoint",
            "unreachable",
            "upstream_5xx",
            "unanswered",
            "retries",
            "throughput",
            "mean_ns",
            "p50_ns",
            "p99_ns",
            "p99_9_ns",
            "max_ns",
            "success_rate",
        ];
        let with_ci = FIGURES.iter().filter(|&&f| f != "max_ns");
        let mut out = String::from("variant");
        for f in FIGURES.iter().map(|f| f.to_string()).chain(with_ci.map(|f| format!("{f}_ci95"))) {
            out.push(',');
            out.push_str(&f);
        }
        out.push('\n');
        for v in &self.variants {
            let (e, l) = (&v.errors, &v.latency);
            let name = if v.variant.contains([',', '"']) {
                format!("\"{}\"", v.variant.replace('"', "\"\""))
            } else {
                v.variant.clone()
            };
            let _ = write!(
                out,
                "{name},{},{},{},{},{},{},{},{},{},{},{:.3},{},{},{},{},{},{}",
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
                l.max_ns,
                v.success_rate(),
            );
            let halves = v.interval.map(|c| {
                let e = c.errors;
                [
                    c.requests,
                    c.succeeded,
                    c.error_rate,
                    e.timeout,
                    e.breaker,
                    e.no_endpoint,
                    e.unreachable,
                    e.upstream_5xx,
                    e.unanswered,
                    c.retries,
                    c.throughput,
                    c.mean_ns,
                    c.p50_ns,
                    c.p99_ns,
                    c.p99_9_ns,
                    c.success_rate,
                ]
            });
            for k in 0..FIGURES.len() - 1 {
                out.push(',');
                if let Some(h) = halves {
                    let _ = write!(out, "{}", h[k]);
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Combine the replications of one variant: counts add up, rates,
/// latencies and utilisations are means, and with two or more replications
/// every figure but `max` (the largest of all) gets a 95% confidence
/// half-width. The distribution and the time series are the first
/// replication's, for the charts.
pub(crate) fn combine<'a>(runs: impl Iterator<Item = &'a VariantReport>) -> VariantReport {
    let runs: Vec<&VariantReport> = runs.collect();
    let mut out = runs[0].clone();
    if runs.len() < 2 {
        return out;
    }
    let mean = |f: &dyn Fn(&VariantReport) -> f64| -> (f64, f64) {
        mean_and_half_width(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let sum = |f: &dyn Fn(&VariantReport) -> u64| -> (u64, f64) {
        let xs: Vec<u64> = runs.iter().map(|r| f(r)).collect();
        sum_and_half_width(&xs)
    };

    // Overall figures.
    let (throughput, throughput_h) = mean(&|r| r.throughput);
    let (_, success_h) = mean(&|r| r.success_rate());
    let (_, error_h) = mean(&|r| r.error_rate());
    let (latency, latency_h) = combine_latency(runs.iter().map(|r| &r.latency));
    let (requests, requests_h) = sum(&|r| r.requests);
    let (succeeded, succeeded_h) = sum(&|r| r.succeeded);
    let (retries, retries_h) = sum(&|r| r.retries);
    let (failed_tries, _) = sum(&|r| r.failed_tries);
    let kinds: [fn(&Errors) -> u64; 6] = [
        |e| e.timeout,
        |e| e.breaker,
        |e| e.no_endpoint,
        |e| e.unreachable,
        |e| e.upstream_5xx,
        |e| e.unanswered,
    ];
    let [timeout, breaker, no_endpoint, unreachable, upstream_5xx, unanswered] =
        kinds.map(|kind| sum(&|r| kind(&r.errors)));
    out.throughput = throughput;
    out.latency = latency;
    (out.requests, out.succeeded, out.retries, out.failed_tries) =
        (requests, succeeded, retries, failed_tries);
    out.errors = Errors {
        timeout: timeout.0,
        breaker: breaker.0,
        no_endpoint: no_endpoint.0,
        unreachable: unreachable.0,
        upstream_5xx: upstream_5xx.0,
        unanswered: unanswered.0,
    };
    out.interval = Some(Interval {
        requests: requests_h,
        succeeded: succeeded_h,
        throughput: throughput_h,
        success_rate: success_h,
        error_rate: error_h,
        errors: ErrorsInterval {
            timeout: timeout.1,
            breaker: breaker.1,
            no_endpoint: no_endpoint.1,
            unreachable: unreachable.1,
            upstream_5xx: upstream_5xx.1,
            unanswered: unanswered.1,
        },
        retries: retries_h,
        mean_ns: latency_h.mean_ns,
        p50_ns: latency_h.p50_ns,
        p99_ns: latency_h.p99_ns,
        p99_9_ns: latency_h.p99_9_ns,
    });

    // Per route and per endpoint, position by position (every run has the
    // same routes and endpoints, in the same order).
    for (i, route) in out.routes.iter_mut().enumerate() {
        let (latency, h) = combine_latency(runs.iter().map(|r| &r.routes[i].latency));
        route.requests = runs.iter().map(|r| r.routes[i].requests).sum();
        (route.latency, route.interval) = (latency, Some(h));
    }
    for (i, endpoint) in out.endpoints.iter_mut().enumerate() {
        let (u, h) = mean(&|r| r.endpoints[i].utilisation);
        endpoint.requests = runs.iter().map(|r| r.endpoints[i].requests).sum();
        (endpoint.utilisation, endpoint.utilisation_ci95) = (u, Some(h));
    }
    out
}

/// The mean of each latency figure over replications with its half-width;
/// the max is the largest.
fn combine_latency<'a>(runs: impl Iterator<Item = &'a Latency>) -> (Latency, LatencyInterval) {
    let runs: Vec<&Latency> = runs.collect();
    let figure = |f: fn(&Latency) -> Nanos| {
        mean_and_half_width(&runs.iter().map(|l| f(l) as f64).collect::<Vec<_>>())
    };
    let (mean, m) = figure(|l| l.mean_ns);
    let (p50, a) = figure(|l| l.p50_ns);
    let (p99, b) = figure(|l| l.p99_ns);
    let (p999, c) = figure(|l| l.p99_9_ns);
    let latency = Latency {
        mean_ns: mean.round() as Nanos,
        p50_ns: p50.round() as Nanos,
        p99_ns: p99.round() as Nanos,
        p99_9_ns: p999.round() as Nanos,
        max_ns: runs.iter().map(|l| l.max_ns).max().unwrap_or(0),
    };
    (latency, LatencyInterval { mean_ns: m, p50_ns: a, p99_ns: b, p99_9_ns: c })
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

/// The sum of per-replication counts and the half-width of its 95%
/// confidence interval (N times the mean's).
fn sum_and_half_width(xs: &[u64]) -> (u64, f64) {
    let as_f64: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
    let (_, h) = mean_and_half_width(&as_f64);
    (xs.iter().sum(), h * xs.len() as f64)
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

/// `x`, or `x ±h` with a confidence half-width written by `f`.
/// (A count of none in every replication reads as just `0`.)
/// How a table writes a figure `x` with its confidence half-width `h`,
/// which `f` formats.
pub(crate) type WithHalfWidth = dyn Fn(String, Option<f64>, &dyn Fn(f64) -> String) -> String;

/// The summary figures of `v`, from requests to p99.9, each beside its
/// confidence half-width as `pm` writes it (the terminal and HTML tables
/// differ only there).
pub(crate) fn summary_cells(v: &VariantReport, pm: &WithHalfWidth) -> Vec<String> {
    let (l, ci) = (&v.latency, v.interval);
    let time = |ns: f64| Human(ns.round() as Nanos).to_string();
    let count = |h: f64| format!("{h:.0}");
    let rate = |h: f64| format!("{h:.1}");
    vec![
        pm(v.requests.to_string(), ci.map(|c| c.requests), &count),
        pm(format!("{:.1}/s", v.throughput), ci.map(|c| c.throughput), &rate),
        pm(percent(v.success_rate()), ci.map(|c| c.success_rate), &percent),
        pm(percent(v.error_rate()), ci.map(|c| c.error_rate), &percent),
        pm(v.retries.to_string(), ci.map(|c| c.retries), &count),
        pm(Human(l.mean_ns).to_string(), ci.map(|c| c.mean_ns), &time),
        pm(Human(l.p50_ns).to_string(), ci.map(|c| c.p50_ns), &time),
        pm(Human(l.p99_ns).to_string(), ci.map(|c| c.p99_ns), &time),
        pm(Human(l.p99_9_ns).to_string(), ci.map(|c| c.p99_9_ns), &time),
    ]
}

/// The errors of `v` by kind, in the order of the tables' columns, each
/// beside its half-width as `pm` writes it.
pub(crate) fn error_cells(v: &VariantReport, pm: &WithHalfWidth) -> [String; 6] {
    let (e, h) = (&v.errors, v.interval.map(|c| c.errors));
    let cells = [
        (e.timeout, h.map(|h| h.timeout)),
        (e.breaker, h.map(|h| h.breaker)),
        (e.no_endpoint, h.map(|h| h.no_endpoint)),
        (e.unreachable, h.map(|h| h.unreachable)),
        (e.upstream_5xx, h.map(|h| h.upstream_5xx)),
        (e.unanswered, h.map(|h| h.unanswered)),
    ];
    cells.map(|(n, h)| pm(n.to_string(), h, &|h| format!("{h:.0}")))
}

fn pm(x: String, h: Option<f64>, f: &dyn Fn(f64) -> String) -> String {
    match h {
        Some(h) if !(h == 0.0 && x == "0") => format!("{x} ±{}", f(h)),
        _ => x,
    }
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
