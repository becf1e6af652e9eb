//! The access log: one JSON object per request, written off the request path.
//!
//! # Format, version 1
//!
//! Each line is one JSON object followed by `\n`, with these fields in this
//! order:
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `time` | string | when the request arrived, RFC 3339 in UTC with milliseconds, `2025-01-31T08:15:02.042Z` |
//! | `client` | string | the client's `IP:PORT` (`[IPv6]:PORT` for IPv6) |
//! | `listener` | string | name of the listener the request arrived on |
//! | `method` | string | request method as sent |
//! | `path` | string | request path, without the query string (queries often carry secrets) |
//! | `route` | string or null | name of the matched route; null when none matched |
//! | `endpoint` | string or null | `IP:PORT` of the upstream endpoint; null when none was tried |
//! | `status` | integer | status sent to the client; 499 when the client went away before a response existed, 503 when a drain cut short abandoned it before one did |
//! | `duration_ms` | number | milliseconds from arrival until the response body ended or was abandoned |
//! | `reason` | string or null | why the gateway answered the request itself: a request it could not parse (then `method` and `path` are empty and `route` is null), or an error it answered with (no route, an upstream that failed, ...); for a response from an upstream, null unless its body broke off after the head was sent on, when it says why |
//!
//! Within version 1, fields are only ever added, never renamed, removed or
//! given another type, so a consumer should ignore fields it does not know.
//!
//! # Writing
//!
//! Requests hand their [`Record`] to a bounded channel and never wait: when
//! the channel is full (the disk or the pipe cannot keep up), the record is
//! dropped and counted, and the count is reported as a warning. A dedicated
//! thread serialises records into a buffered writer and flushes whenever the
//! channel runs empty, so an idle gateway's log is always complete on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sluice_compiler::Plan;

/// Records that may wait for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLogTarget {
    /// No access log.
    Off,
    /// Standard output.
    #[default]
    Stdout,
    /// A file, created if missing and appended to.
    File(PathBuf),
}

/// The facts of one finished request. Names are resolved from the plan by
/// the writer thread, so building a record costs the request little.
#[derive(Debug)]
pub struct Record {
    pub plan: Arc<Plan>,
    pub time: SystemTime,
    pub client: std::net::SocketAddr,
    pub listener: usize,
    /// `None` for a request refused before its method could be read.
    pub method: Option<hyper::Method>,
    pub path: String,
    pub route: Option<usize>,
    /// `(pool, endpoint)` indices.
    pub endpoint: Option<(usize, usize)>,
    pub status: u16,
    pub duration: Duration,
    /// Why the gateway answered the request itself, if it did.
    pub reason: Option<String>,
}

/// The sending half of the access log, cheap to clone into every request.
#[derive(Debug, Clone)]
pub struct AccessLogSender {
    queue: Option<SyncSender<Record>>,
    dropped: Arc<AtomicU64>,
    /// Why the requests still in flight are being abandoned, once a drain
    /// was cut short: they are then logged as the gateway's doing.
    cut_short: Arc<OnceLock<String>>,
}

impl AccessLogSender {
    /// Note that the drain was cut short, `why`, so that each request
    /// abandoned from here on is logged as the gateway's doing rather than
    /// as one its client left (499) or as a whole answer.
    pub fn drain_cut_short(&self, why: String) {
        let _ = self.cut_short.set(why);
    }

    /// Why requests in flight are being abandoned, once they are.
    pub(crate) fn cut_short(&self) -> Option<&str> {
        self.cut_short.get().map(String::as_str)
    }

    /// Whether records are wanted at all; when not, callers can skip building them.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queue a record without waiting. A full queue drops it and counts the loss.
    pub fn send(&self, record: Record) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer stopped after a write error it has already reported.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The access log: the writer thread and the handle to feed it.
#[derive(Debug)]
pub struct AccessLog {
    sender: AccessLogSender,
    writer: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Open the target and start the writer thread.
    pub fn open(target: &AccessLogTarget) -> io::Result<AccessLog> {
        let dropped = Arc::new(AtomicU64::new(0));
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    sender: AccessLogSender { queue: None, dropped, cut_short: Arc::default() },
                    writer: None,
                })
            }
            AccessLogTarget::Stdout => Box::new(io::stdout()),
            AccessLogTarget::File(path) => Box::new(append(path)?),
        };

        let (queue, records) = mpsc::sync_channel(QUEUE);
        let counter = Arc::clone(&dropped);
        let writer =
            std::thread::Builder::new().name("sluice-access-log".into()).spawn(move || {
                write_records(records, BufWriter::with_capacity(64 * 1024, out), counter)
            })?;
        Ok(AccessLog {
            sender: AccessLogSender { queue: Some(queue), dropped, cut_short: Arc::default() },
            writer: Some(writer),
        })
    }

    /// A log that writes nothing.
    pub fn off() -> AccessLog {
        AccessLog {
            sender: AccessLogSender {
                queue: None,
                dropped: Arc::new(AtomicU64::new(0)),
                cut_short: Arc::default(),
            },
            writer: None,
        }
    }

    pub fn sender(&self) -> AccessLogSender {
        self.sender.clone()
    }

    /// Write every queued record and stop the writer. Records still held by
    /// other senders are written once those senders are dropped too.
    pub fn close(mut self) {
        self.sender.queue = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("access log writer thread panicked");
            }
        }
    }
}

fn append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_records(
    records: Receiver<Record>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    dropped: Arc<AtomicU64>,
) {
    let mut line = Vec::with_capacity(512);
    let mut reported = 0;
    loop {
        // Block only when there is nothing to do, and flush before blocking.
        let record = match records.try_recv() {
            Ok(record) => record,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if let Err(error) = out.flush() {
                    tracing::error!(%error, "access log write failed; access logging stops");
                    return;
                }
                reported = report_dropped(&dropped, reported);
                match records.recv() {
                    Ok(record) => record,
                    Err(_) => break,
                }
            }
        };

        line.clear();
        encode(&record, &mut line);
        drop(record);
        if let Err(error) = out.write_all(&line) {
            tracing::error!(%error, "access log write failed; access logging stops");
            return;
        }
    }
    if let Err(error) = out.flush() {
        tracing::error!(%error, "access log write failed at shutdown");
    }
    report_dropped(&dropped, reported);
}

fn report_dropped(dropped: &AtomicU64, reported: u64) -> u64 {
    let total = dropped.load(Ordering::Relaxed);
    if total > reported {
        tracing::warn!(
            dropped = total - reported,
            total,
            "access log records dropped because the writer could not keep up"
        );
    }
    total
}

#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    client: String,
    listener: &'a str,
    method: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    endpoint: Option<String>,
    status: u16,
    duration_ms: f64,
    reason: Option<&'a str>,
}

/// Append one JSON line for `record` to `out`.
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) {
    let plan = &record.plan;
    let time = rfc3339_millis(record.time);
    let line = Line {
        time: &time,
        client: record.client.to_string(),
        listener: plan.listeners.get(record.listener).map_or("", |l| l.name.as_str()),
        method: record.method.as_ref().map_or("", |m| m.as_str()),
        path: &record.path,
        route: record.route.and_then(|r| plan.routes.get(r)).map(|r| r.name.as_str()),
        endpoint: record
            .endpoint
            .and_then(|(p, e)| plan.pools.get(p)?.endpoints.get(e))
            .map(|e| e.address.to_string()),
        status: record.status,
        // Microsecond resolution is plenty and keeps lines short.
        duration_ms: (record.duration.as_micros() as f64) / 1000.0,
        reason: record.reason.as_deref(),
    };
    serde_json::to_writer(&mut *out, &line).expect("a log line holds only strings and numbers");
    out.push(b'\n');
}

/// Format a time as RFC 3339 in UTC with millisecond precision.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01. Works in 400-year
/// eras (146 097 days each) whose years start on 1 March, so the leap day
/// falls at the end of the year and month lengths follow a fixed pattern.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_across_leap_years_and_centuries() {
        let cases = [
            (0, (1970, 1, 1)),
            (59, (1970, 3, 1)),
            (10_957, (2000, 1, 1)),
            (11_016, (2000, 2, 29)),
            (19_782, (2024, 2, 29)),
            (47_540, (2100, 2, 28)),
            (47_541, (2100, 3, 1)),
        ];
        for (days, date) in cases {
            assert_eq!(civil_date(days), date, "day {days}");
        }
    }

    #[test]
    fn times_format_as_rfc3339_utc() {
        let time = UNIX_EPOCH + Duration::from_millis(1_709_210_096_042);
        assert_eq!(rfc3339_millis(time), "2024-02-29T12:34:56.042Z");
    }
}
