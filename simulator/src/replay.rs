//! Sluice's own access log as arrivals.
//!
//! `sluice serve` writes one JSON object per request (format version 1,
//! documented in the runtime's `access_log` module and the README). A replay
//! reads three of its fields: `time` (when the request arrived, RFC 3339 in
//! UTC with milliseconds), `route` (the matched route's name, or null) and
//! `client` (`IP:PORT`, `[IPv6]:PORT` for IPv6). Version 1 only ever
//! gains fields, so other fields are ignored; a line without these three,
//! with another type for them, or with a client that is no address, is
//! refused with its line number. Lines are written when requests finish,
//! so the reader sorts them by arrival time.

/// One logged request that matched a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub route: String,
    /// As logged: `IP:PORT`.
    pub client: String,
    /// The client's IP address, the port left out.
    pub address: std::net::IpAddr,
}

/// The usable requests of a log, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub requests: Vec<Logged>,
    /// Lines with no route (404s and requests refused before parsing).
    pub unrouted: usize,
}

/// Read an access log; the error names the first bad line.
pub(crate) fn read(text: &str, max: usize) -> Result<Log, String> {
    let mut log = Log::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", n + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let time = value.get("time").and_then(|t| t.as_str()).ok_or_else(|| bad("no `time`"))?;
        let at_ms = parse_time(time).ok_or_else(|| {
            bad(&format!("`time` {time:?} is not RFC 3339 UTC, as version 1 writes"))
        })?;
        let client =
            value.get("client").and_then(|c| c.as_str()).ok_or_else(|| bad("no `client`"))?;
        let address = client.parse::<std::net::SocketAddr>().map(|a| a.ip()).map_err(|_| {
            bad(&format!("`client` {client:?} is not an address and port, as version 1 writes"))
        })?;
        match value.get("route") {
            Some(serde_json::Value::String(route)) => {
                let (route, client) = (route.clone(), client.to_owned());
                log.requests.push(Logged { at_ms, route, client, address })
            }
            Some(serde_json::Value::Null) => log.unrouted += 1,
            _ => return Err(bad("`route` is neither a name nor null")),
        }
        if log.requests.len() > max {
            return Err(format!("more than {max} requests"));
        }
    }
    log.requests.sort_by_key(|r| r.at_ms);
    Ok(log)
}

/// Milliseconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut clock = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 9
    {
        return None;
    }
    // Milliseconds from the fraction's first three digits.
    let millis = format!("{fraction:0<3}")[..3].parse::<i64>().ok()?;
    let days = days_from_epoch(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar,
/// counting in 400-year eras that begin on 1 March.
fn days_from_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_count_from_the_epoch() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_time("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        // 2000 is a leap year: 11,017 days to 1 March 2000.
        assert_eq!(parse_time("2000-03-01T00:00:00Z"), Some(11_017 * 86_400_000));
        assert_eq!(parse_time("2026-12-04T08:15:02.042Z"), Some(1_796_372_102_042));
        for bad in ["2026-12-04 08:15:02Z", "2026-13-04T08:15:02Z", "2026-12-04T08:15:02", "", "x"]
        {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn logs_keep_routed_requests_in_arrival_order() {
        let text = concat!(
            r#"{"time":"2026-01-01T00:00:00.300Z","client":"127.0.0.1:1","route":"a","status":200,"new":1}"#,
            "\n",
            r#"{"time":"2026-01-01T00:00:00.100Z","client":"127.0.0.1:2","route":"b"}"#,
            "\n\n",
            r#"{"time":"2026-01-01T00:00:00.200Z","client":"127.0.0.1:2","route":null}"#,
            "\n",
        );
        let log = read(text, 10).unwrap();
        let routes: Vec<&str> = log.requests.iter().map(|r| r.route.as_str()).collect();
        assert_eq!((routes, log.unrouted), (vec!["b", "a"], 1));
        assert_eq!(log.requests[1].at_ms - log.requests[0].at_ms, 200);

        assert_eq!(read("{}", 10).unwrap_err(), "line 1: no `time`");
        assert!(read("nope", 10).unwrap_err().starts_with("line 1: not JSON"));
        let wrong = r#"{"time":"2026-01-01T00:00:00Z","client":"10.1.2.3:80","route":3}"#;
        assert_eq!(read(wrong, 10).unwrap_err(), "line 1: `route` is neither a name nor null");
        let wrong = r#"{"time":"2026-01-01T00:00:00Z","client":"c","route":"a"}"#;
        let why = "line 1: `client` \"c\" is not an address and port, as version 1 writes";
        assert_eq!(read(wrong, 10).unwrap_err(), why);
        // The address, IPv6 too, without the port.
        let v6 = r#"{"time":"2026-01-01T00:00:00Z","client":"[2001:db8::7]:4321","route":"a"}"#;
        let log = read(&format!("{v6}\n{text}"), 10).unwrap();
        let addresses: Vec<String> = log.requests.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(addresses, ["2001:db8::7", "127.0.0.1", "127.0.0.1"]);
    }
}
