//! Virtual time and the duration syntax scenarios use.
//!
//! Virtual time is a `u64` count of nanoseconds since the start of a run.
//! Integers rather than `f64` seconds because event order must be a total,
//! exact order: two runs that add the same gaps reach the same instants bit
//! for bit, ties are real ties (broken by scheduling order, see
//! [`crate::queue`]), and precision does not decay as time grows. A `u64`
//! covers about 584 years, far past any run the request limit allows.

use std::fmt;

/// Nanoseconds of virtual time.
pub type Nanos = u64;

/// One second of virtual time.
pub const SECOND: Nanos = 1_000_000_000;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    #[error(
        "`{0}` is not a duration; write a number and a unit, such as `250ms`, `1.5s` or `800us`"
    )]
    Syntax(String),
    #[error("`{0}` has an unknown unit; use ns, us, µs, ms, s, m or h")]
    Unit(String),
    #[error("`{0}` is too long; the longest duration is about 584 years")]
    Overflow(String),
}

/// Parse a duration such as `250ms`, `1.5s`, `800us`, `2m` or `1h`.
///
/// The number is decimal (digits, optionally one `.` and more digits) and is
/// converted exactly, rounding to the nearest nanosecond.
pub fn parse_duration(text: &str) -> Result<Nanos, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(syntax)?;
    let (number, unit) = text.split_at(split);
    // Without a number first (`-5ms`, `n/a`) it is no duration at all,
    // rather than one with a strange unit.
    if number.is_empty() {
        return Err(syntax());
    }
    let unit_ns: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(DurationError::Unit(text.to_owned())),
    };

    // Split the number into whole and fractional digits, at most one dot.
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) || number.ends_with('.') {
        return Err(syntax());
    }
    if whole.len() > 20 || fraction.len() > 18 {
        return Err(DurationError::Overflow(text.to_owned()));
    }

    // Exact: (whole + fraction / 10^k) * unit, rounded to the nearest ns.
    let overflow = || DurationError::Overflow(text.to_owned());
    let whole: u128 = whole.parse().map_err(|_| overflow())?;
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 =
        if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| syntax())? };
    let ns =
        whole.checked_mul(unit_ns).ok_or_else(overflow)? + (fraction * unit_ns + scale / 2) / scale;
    Nanos::try_from(ns).map_err(|_| overflow())
}

/// A duration for people: the largest unit that keeps the number at or
/// above one, with four significant figures or so (`812.3µs`, `21.30ms`).
pub struct Human(pub Nanos);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let text = if ns < 1_000 {
            format!("{ns}ns")
        } else if ns < 1_000_000 {
            format!("{:.1}µs", ns as f64 / 1e3)
        } else if ns < SECOND {
            format!("{:.2}ms", ns as f64 / 1e6)
        } else {
            format!("{:.3}s", ns as f64 / 1e9)
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_exactly() {
        let cases = [
            ("0s", 0),
            ("7ns", 7),
            ("800us", 800_000),
            ("800µs", 800_000),
            ("250ms", 250_000_000),
            ("1.5s", 1_500_000_000),
            ("0.25ms", 250_000),
            ("2m", 120 * SECOND),
            ("1h", 3_600 * SECOND),
            ("0.0000000015s", 2),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_duration(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_durations() {
        for text in ["", "5", "ms", ".5s", "5.s", "1.2.3s", "-1s", "5 s", "5sec", "1e3ms"] {
            assert!(parse_duration(text).is_err(), "{text} was accepted");
        }
        assert!(matches!(parse_duration("5d"), Err(DurationError::Unit(_))));
        for text in ["-1s", "n/a", "ms", "µs"] {
            assert!(matches!(parse_duration(text), Err(DurationError::Syntax(_))), "{text}");
        }
        assert!(matches!(parse_duration("9999999999999h"), Err(DurationError::Overflow(_))));
    }

    #[test]
    fn formats_with_a_fitting_unit() {
        let shown: Vec<String> = [999, 812_345, 21_304_000, 1_523_000_000]
            .iter()
            .map(|&n| Human(n).to_string())
            .collect();
        assert_eq!(shown, ["999ns", "812.3µs", "21.30ms", "1.523s"]);
        assert_eq!(format!("{:>8}", Human(5_000_000)), "  5.00ms");
    }
}
