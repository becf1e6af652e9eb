//! Budgets a run must meet, such as `p99 < 250ms` or `errors < 0.1%`, so
//! that CI can gate a rollout on a simulation.
//!
//! A budget is `FIGURE OP VALUE`: a latency figure (`mean`, `p50`, `p99`,
//! `p99.9`, `max`) against a duration; a share of measured requests
//! (`errors`, `success`, `timeouts`, `retries`) against a percentage; or
//! `throughput` against requests per second. `OP` is `<`, `<=`, `>` or `>=`.
//! Every variant must meet every budget.

use std::fmt;
use std::str::FromStr;

use crate::report::{percent, Report, VariantReport};
use crate::time::{parse_duration, Human};

/// A parsed budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    text: String,
    figure: Figure,
    op: Op,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    Mean,
    P50,
    P99,
    P999,
    Max,
    Errors,
    Success,
    Timeouts,
    Retries,
    Throughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// Why a budget could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget `{text}`: {why}")]
pub struct AssertionError {
    text: String,
    why: String,
}

impl FromStr for Assertion {
    type Err = AssertionError;

    fn from_str(text: &str) -> Result<Assertion, AssertionError> {
        let fail = |why: &str| AssertionError { text: text.to_owned(), why: why.to_owned() };
        let at = text.find(['<', '>']).ok_or_else(|| {
            fail("write FIGURE OP VALUE, such as `p99 < 250ms` or `errors < 0.1%`")
        })?;
        let (name, rest) = text.split_at(at);
        let (op, value) = match rest.strip_prefix("<=").or_else(|| rest.strip_prefix(">=")) {
            Some(v) => (if rest.starts_with('<') { Op::Le } else { Op::Ge }, v),
            None if rest.starts_with('<') => (Op::Lt, &rest[1..]),
            None => (Op::Gt, &rest[1..]),
        };
        let figure =
            match name.trim() {
                "mean" => Figure::Mean,
                "p50" => Figure::P50,
                "p99" => Figure::P99,
                "p99.9" => Figure::P999,
                "max" => Figure::Max,
                "errors" => Figure::Errors,
                "success" => Figure::Success,
                "timeouts" => Figure::Timeouts,
                "retries" => Figure::Retries,
                "throughput" => Figure::Throughput,
                _ => return Err(fail(
                    "unknown figure; use mean, p50, p99, p99.9, max, errors, success, timeouts, \
                     retries or throughput",
                )),
            };
        let value = value.trim();
        let value = match figure {
            Figure::Mean | Figure::P50 | Figure::P99 | Figure::P999 | Figure::Max => {
                parse_duration(value).map_err(|e| fail(&e.to_string()))? as f64
            }
            Figure::Errors | Figure::Success | Figure::Timeouts | Figure::Retries => {
                let number = value.strip_suffix('%').ok_or_else(|| fail("give a percentage"))?;
                number.trim().parse::<f64>().map_err(|_| fail("not a percentage"))? / 100.0
            }
            Figure::Throughput => {
                let number = value.strip_suffix("/s").unwrap_or(value);
                number.trim().parse::<f64>().map_err(|_| fail("give requests per second"))?
            }
        };
        if !value.is_finite() {
            return Err(fail("the value is not a finite number"));
        }
        // No figure is ever negative, and no share of the requests above all
        // of them (retries may be more than the requests).
        if value < 0.0 {
            return Err(fail(&format!("`{}` is never negative", name.trim())));
        }
        if matches!(figure, Figure::Errors | Figure::Success | Figure::Timeouts) && value > 1.0 {
            return Err(fail(&format!(
                "`{}` is a share of the requests, at most 100%",
                name.trim()
            )));
        }
        Ok(Assertion { text: text.trim().to_owned(), figure, op, value })
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Assertion {
    /// The figure of `v` this budget reads.
    fn measure(&self, v: &VariantReport) -> f64 {
        let l = &v.latency;
        let share = |n: u64| if v.requests == 0 { 0.0 } else { n as f64 / v.requests as f64 };
        match self.figure {
            Figure::Mean => l.mean_ns as f64,
            Figure::P50 => l.p50_ns as f64,
            Figure::P99 => l.p99_ns as f64,
            Figure::P999 => l.p99_9_ns as f64,
            Figure::Max => l.max_ns as f64,
            Figure::Errors => v.error_rate(),
            Figure::Success => v.success_rate(),
            Figure::Timeouts => share(v.errors.timeout),
            Figure::Retries => share(v.retries),
            Figure::Throughput => v.throughput,
        }
    }

    fn show(&self, x: f64) -> String {
        match self.figure {
            Figure::Mean | Figure::P50 | Figure::P99 | Figure::P999 | Figure::Max => {
                Human(x.round() as u64).to_string()
            }
            Figure::Throughput => format!("{x:.1}/s"),
            _ => percent(x),
        }
    }

    /// A message for every variant of `report` that breaks this budget.
    pub fn failures(&self, report: &Report) -> Vec<String> {
        report
            .variants
            .iter()
            .filter_map(|v| {
                let x = self.measure(v);
                let ok = match self.op {
                    Op::Lt => x < self.value,
                    Op::Le => x <= self.value,
                    Op::Gt => x > self.value,
                    Op::Ge => x >= self.value,
                };
                (!ok).then(|| {
                    format!("variant `{}` fails `{}`: it is {}", v.variant, self.text, self.show(x))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_refuse_clearly() {
        let a: Assertion = "p99 < 250ms".parse().unwrap();
        assert_eq!((a.figure, a.op, a.value), (Figure::P99, Op::Lt, 250e6));
        let a: Assertion = "errors<=0.1%".parse().unwrap();
        assert_eq!((a.figure, a.op), (Figure::Errors, Op::Le));
        assert!((a.value - 0.001).abs() < 1e-12);
        let a: Assertion = "throughput >= 900/s".parse().unwrap();
        assert_eq!((a.figure, a.op, a.value), (Figure::Throughput, Op::Ge, 900.0));
        for bad in ["p99 250ms", "p98 < 1s", "p99 < fast", "errors < 1", "errors < x%"] {
            let e = bad.parse::<Assertion>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("budget `{bad}`")), "{e}");
        }
    }

    #[test]
    fn budgets_decided_before_the_run_are_refused() {
        // Regression: `errors < -1%` was accepted, a budget every run fails.
        for (bad, why) in [
            ("errors < -1%", "`errors` is never negative"),
            ("retries <= -0.5%", "`retries` is never negative"),
            ("throughput > -5/s", "`throughput` is never negative"),
            ("success >= 101%", "`success` is a share of the requests, at most 100%"),
            ("timeouts < 150%", "`timeouts` is a share of the requests, at most 100%"),
        ] {
            let e = bad.parse::<Assertion>().unwrap_err().to_string();
            assert_eq!(e, format!("budget `{bad}`: {why}"));
        }
        // Retries can outnumber the requests; the bounds themselves are fine.
        for good in ["retries < 150%", "errors <= 0%", "success >= 100%", "throughput > 0"] {
            good.parse::<Assertion>().unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
}
