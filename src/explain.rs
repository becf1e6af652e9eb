//! `sluice explain`: which route a request matches, what it captured, and
//! why the closest other routes lost.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_compiler::condition::RequestFields;
use sluice_compiler::router::HostPattern;
use sluice_compiler::template::{Segment, Template};
use sluice_compiler::{Captures, Method, Plan, RequestFacts};

use crate::EXIT_CANNOT_RUN;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The spec (or compiled plan) to consult.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Request method, such as GET.
    #[arg(value_name = "METHOD")]
    method: String,
    /// `http://host/path?query`, or just `/path` (then the host comes from `-H Host:`).
    #[arg(value_name = "URL")]
    url: String,
    /// A request header, `Name: value`; repeatable. `Host` sets the host.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The listener the request arrives on. Default: the first listener of the spec.
    #[arg(long, value_name = "NAME")]
    listener: Option<String>,
}

pub fn explain(args: ExplainArgs) -> ExitCode {
    let plan = match sluice_compiler::load_plan(&args.spec) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };

    let (url_host, path) = match split_url(&args.url) {
        Ok(parts) => parts,
        Err(why) => {
            eprintln!("error: URL `{}` {why}", args.url);
            return ExitCode::from(2);
        }
    };
    let mut host = url_host.to_owned();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            eprintln!("error: header `{header}` is not `Name: value`");
            return ExitCode::from(2);
        };
        if name.trim().eq_ignore_ascii_case("host") {
            host = value.trim().to_owned();
        }
    }

    // A Host that `serve` would refuse is refused here the same way.
    let given = !host.is_empty()
        || args.headers.iter().any(|h| {
            h.split_once(':').is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        });
    if given {
        if let Err(why) = sluice_compiler::router::check_host_header(&host) {
            eprintln!("the gateway answers 400 to Host `{host}`: {why}");
            return ExitCode::from(1);
        }
    }

    let listener = match &args.listener {
        None if plan.listeners.is_empty() => {
            eprintln!(
                "error: {} defines no listener, so no request can arrive",
                args.spec.display()
            );
            return ExitCode::from(1);
        }
        None => 0,
        Some(name) => match plan.listener_index(name) {
            Some(i) => i,
            None => {
                let names: Vec<&str> = plan.listeners.iter().map(|l| l.name.as_str()).collect();
                eprintln!("error: no listener named `{name}`; listeners: {}", names.join(", "));
                return ExitCode::from(2);
            }
        },
    };

    let raw_path = path.split(['?', '#']).next().unwrap_or(path);
    // Match what `serve` would match: the path normalised by the listener's rules.
    let normalized = match sluice_compiler::normalize::normalize(
        raw_path,
        &plan.listeners[listener].normalize,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("the gateway answers 400 to {raw_path}: {e}");
            return ExitCode::from(1);
        }
    };
    let path_only: &str = &normalized;
    let facts = RequestFacts {
        listener,
        host: sluice_compiler::router::host_name(&host),
        method: Method::from_bytes(args.method.as_bytes()),
        path: path_only,
    };
    let mut captures = Captures::new();
    let listener_name = &plan.listeners[listener].name;
    let shown_host = if host.is_empty() { "(no host)" } else { host.as_str() };
    let mut fields = ExplainFields {
        headers: args
            .headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        query: path.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(q)),
    };
    // Route conditions on the port read the Host header; the URL's host is that header.
    if !fields.headers.iter().any(|(n, _)| n == "host") && !host.is_empty() {
        fields.headers.push(("host".to_owned(), host.clone()));
    }
    match plan.lookup_with(&facts, &fields, &mut captures) {
        Some(route)
            if facts.method == Method::Trace && plan.routes[route as usize].refuses_trace() =>
        {
            let name = &plan.routes[route as usize].name;
            eprintln!(
                "the gateway answers 405 to TRACE {path_only}: route `{name}` matches it, but does \
                 not list TRACE among its methods (a TRACE answer would reflect credentials)"
            );
            ExitCode::from(1)
        }
        Some(route) => {
            crate::out(&describe(&plan, route, path_only, &captures, listener_name));
            crate::out(&split(&plan, route, &fields));
            crate::out(&others(&plan, &facts, &fields, Some(route)));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "no route matches {} {path_only} with host {shown_host} on listener `{listener_name}`",
                args.method
            );
            eprint!("{}", others(&plan, &facts, &fields, None));
            ExitCode::from(1)
        }
    }
}

fn describe(plan: &Plan, route: u32, path: &str, captures: &Captures, listener: &str) -> String {
    let r = &plan.routes[route as usize];
    let pool = &plan.pools[r.pool];
    let mut out = format!("route     {}\n", r.name);
    out.push_str(&format!("listener  {listener}\n"));
    let methods: Vec<&str> = r.methods.names().collect();
    let methods = if r.methods.is_any() { "any".to_owned() } else { methods.join(", ") };
    out.push_str(&format!("match     {} {}  (methods: {methods})\n", host_text(&r.host), r.path));
    let endpoints: Vec<String> = pool.endpoints.iter().map(|e| e.address.to_string()).collect();
    out.push_str(&format!(
        "pool      {} ({}, {} endpoint(s): {})\n",
        pool.name,
        pool.balance.as_str(),
        pool.endpoints.len(),
        endpoints.join(", ")
    ));
    let timeout = r.timeout.map_or("none".to_owned(), |t| format!("{t:?}"));
    out.push_str(&format!("timeout   {timeout}\n"));
    out.push_str(&failover(pool));
    out.push_str(&retries(r));
    let params: Vec<String> =
        plan.params(route, path, captures).map(|(n, v)| format!("{n} = {v:?}")).collect();
    if params.is_empty() {
        out.push_str("params    (none)\n");
    } else {
        out.push_str(&format!("params    {}\n", params.join(", ")));
    }
    out
}

/// How one route fares against a request.
struct Verdict {
    /// Conditions it fails: listener, host, path, method.
    failures: usize,
    /// Segments of the path it matched before failing (all when it matched).
    depth: usize,
    reason: String,
}

/// Up to three other routes that came closest, each with why it lost:
/// first those that match but were outranked, then those that fail one
/// condition, the deepest path match first.
/// For a route with a weighted split: its sides, and the side this request
/// takes when the sticky key pins it.
fn split(plan: &Plan, route: u32, fields: &ExplainFields<'_>) -> String {
    use sluice_compiler::spec::Sticky;
    let r = &plan.routes[route as usize];
    if r.split.is_empty() {
        return String::new();
    }
    let sides: Vec<String> = r
        .split
        .iter()
        .map(|s| {
            format!("{} w{}", plan.pools.get(s.pool).map_or("?", |p| p.name.as_str()), s.weight)
        })
        .collect();
    let header = |name: &str| {
        fields.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let (sticky, key) = match r.sticky.as_deref() {
        None => ("none".to_owned(), None),
        Some(Sticky::Header(name)) => (format!("header {name}"), header(name)),
        Some(Sticky::Cookie(name)) => {
            let value = header("cookie").and_then(|c| {
                c.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k.trim() == name).then(|| v.trim().to_owned())
                })
            });
            (format!("cookie {name}"), value)
        }
        Some(Sticky::ClientAddress) => ("client address".to_owned(), None),
    };
    let side = match key {
        Some(key) => {
            let point = sluice_traffic::key_hash(key.as_bytes());
            let weights = r.split_weights();
            let pool = sluice_traffic::split::choose(&weights, point)
                .and_then(|i| plan.pools.get(r.split[i].pool))
                .map_or("none", |p| p.name.as_str());
            format!("{pool} (pinned by its sticky key)")
        }
        None => "by weight, at random".to_owned(),
    };
    format!(
        "split     {} (sticky: {sticky})
side      {side}
",
        sides.join(", ")
    )
}

fn others(
    plan: &Plan,
    facts: &RequestFacts<'_>,
    fields: &dyn RequestFields,
    winner: Option<u32>,
) -> String {
    let winner_route = winner.and_then(|w| plan.routes.get(w as usize));
    let mut verdicts: Vec<(usize, Verdict)> = plan
        .routes
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i as u32) != winner)
        .filter_map(|(i, r)| verdict(plan, i, r, facts, fields, winner_route).map(|v| (i, v)))
        .collect();
    verdicts.sort_by_key(|(i, v)| (v.failures, std::cmp::Reverse(v.depth), *i));

    let mut out = String::new();
    for (n, (i, v)) in verdicts.iter().take(3).enumerate() {
        let title = if n == 0 { "others" } else { "" };
        out.push_str(&format!("{title:<10}{}: {}\n", plan.routes[*i].name, v.reason));
    }
    out
}

/// Why route `r` did not take the request; `None` when it is too far off
/// to be worth naming (neither its host nor any of its path matches).
fn verdict(
    plan: &Plan,
    index: usize,
    r: &sluice_compiler::plan::RoutePlan,
    facts: &RequestFacts<'_>,
    fields: &dyn RequestFields,
    winner: Option<&sluice_compiler::plan::RoutePlan>,
) -> Option<Verdict> {
    let template = Template::parse(&r.path).ok()?;
    let path = match_path(&template, facts.path);
    let host_ok = host_matches(&r.host, facts.host);
    let listener_ok = facts.listener < 64 && r.listeners & (1 << facts.listener) != 0;
    let method_ok = r.methods.contains(facts.method);
    let depth = match &path {
        Ok(()) => usize::MAX,
        Err((k, _)) => k - 1,
    };
    if depth == 0 && !host_ok {
        return None;
    }

    let mut reasons = Vec::new();
    if !listener_ok {
        let names: Vec<&str> = plan
            .listeners
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 64 && r.listeners & (1 << i) != 0)
            .map(|(_, l)| l.name.as_str())
            .collect();
        reasons.push(format!("serves other listeners ({})", names.join(", ")));
    }
    if !host_ok {
        reasons.push(format!("host {} does not match", host_text(&r.host)));
    }
    if let Err((_, why)) = &path {
        reasons.push(why.clone());
    }
    if !method_ok {
        let allowed: Vec<&str> = r.methods.names().collect();
        reasons.push(format!("method not allowed (only {})", allowed.join(", ")));
    }
    for condition in plan.router.conditions(index as u32) {
        if !condition.holds(fields) {
            reasons.push(format!("condition `{}` not met", condition.key()));
        }
    }
    let failures = reasons.len();
    if failures == 0 {
        let why = winner.map_or_else(
            || "matches, but lost to another route".to_owned(),
            |w| outranked_because(w, r, &template),
        );
        reasons.push(format!("matches, but is outranked: {why}"));
    }
    Some(Verdict { failures, depth, reason: reasons.join("; ") })
}

fn host_matches(pattern: &HostPattern, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern {
        HostPattern::Any => true,
        HostPattern::Exact(h) => *h == host,
        HostPattern::Wildcard(s) => host.len() > s.len() && host.ends_with(s.as_str()),
    }
}

/// `Ok` when the template matches the path; otherwise the 1-based segment
/// where it stops matching, and why.
fn match_path(template: &Template, path: &str) -> Result<(), (usize, String)> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err((1, "the path does not start with `/`".to_owned()));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, t) in template.segments.iter().enumerate() {
        let k = i + 1;
        let got = segments.get(i);
        match (t, got) {
            (Segment::CatchAll(_), _) => return Ok(()),
            (Segment::Literal(l), Some(v)) if v == l => {}
            (Segment::Literal(l), Some(v)) => {
                return Err((k, format!("segment {k} is `{v}`, not `{l}`")));
            }
            (Segment::Param(p), Some(&"")) => {
                return Err((k, format!("segment {k} is empty, which `{{{p}}}` does not match")));
            }
            (Segment::Param(_), Some(_)) => {}
            (_, None) => {
                return Err((k, format!("the path ends before segment {k} of {}", template)))
            }
        }
    }
    if segments.len() > template.segments.len() {
        let k = template.segments.len() + 1;
        return Err((k, format!("the path goes on past its template at segment {k}")));
    }
    Ok(())
}

/// Why the winning route `w` ranks above route `r` when both match.
fn outranked_because(
    w: &sluice_compiler::plan::RoutePlan,
    r: &sluice_compiler::plan::RoutePlan,
    template: &Template,
) -> String {
    if w.host != r.host {
        return format!("host {} is more specific than {}", host_text(&w.host), host_text(&r.host));
    }
    let Ok(winner) = Template::parse(&w.path) else {
        return format!("`{}` ranks higher", w.name);
    };
    let kind = |s: Option<&Segment>| match s {
        Some(Segment::Literal(l)) => (0, format!("the literal `{l}`")),
        Some(Segment::Param(p)) => (1, format!("`{{{p}}}`")),
        Some(Segment::CatchAll(p)) => (2, format!("`{{*{p}}}`")),
        None => (0, "a template that ends there".to_owned()),
    };
    let n = winner.segments.len().max(template.segments.len());
    for i in 0..n {
        let (a, b) = (kind(winner.segments.get(i)), kind(template.segments.get(i)));
        if a.0 < b.0 {
            return format!("{} beats {} at segment {}", a.1, b.1, i + 1);
        }
    }
    if !w.methods.is_any() && r.methods.is_any() {
        return "a route with methods beats one without".to_owned();
    }
    format!("`{}` ranks higher", w.name)
}

fn host_text(host: &HostPattern) -> String {
    match host {
        HostPattern::Any => "(any host)".to_owned(),
        HostPattern::Exact(h) => h.clone(),
        HostPattern::Wildcard(s) => format!("*{s}"),
    }
}

/// Split `http://host/path` into host and path; a bare `/path` has no host.
fn split_url(url: &str) -> Result<(&str, &str), &'static str> {
    if url.starts_with('/') {
        return Ok(("", url));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http://, https:// or /")?;
    Ok(match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], "/"),
        None => (rest, "/"),
    })
}

/// The `-H` headers and the URL's query, as route conditions read them.
struct ExplainFields<'a> {
    headers: Vec<(String, String)>,
    query: &'a str,
}

impl RequestFields for ExplainFields<'_> {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        self.headers.iter().filter(|(n, _)| n == name).any(|(_, v)| each(v))
    }

    fn query(&self) -> &str {
        self.query
    }
}

/// How long the pool takes to stop sending to a dead endpoint and to take
/// it back, by active checks and by outlier detection.
fn failover(pool: &sluice_compiler::plan::PoolPlan) -> String {
    let mut out = String::new();
    match &pool.health_check {
        Some(check) => {
            let s = &check.settings;
            out.push_str(&format!(
                "health    GET {} every {:?} (+ up to {:?}); a dead endpoint is out within {:?}, a recovered one back within {:?}\n",
                check.path,
                s.interval,
                s.jitter,
                s.worst_detection(),
                s.worst_recovery()
            ));
        }
        None => out.push_str("health    no active checks; every endpoint stays in rotation\n"),
    }
    if let Some(o) = &pool.outlier_detection {
        out.push_str(&format!(
            "outliers  ejected after {} failures or {} failed connections in a row, for {:?} to {:?}, at most {}% of the pool\n",
            o.consecutive_failures,
            o.consecutive_connect_failures,
            o.base_ejection,
            o.max_ejection,
            o.max_ejection_percent
        ));
    }
    out
}

/// The route's retry policy in one line.
fn retries(route: &sluice_compiler::plan::RoutePlan) -> String {
    let plan = &route.retries;
    let s = &plan.settings;
    let mut on: Vec<String> = Vec::new();
    if s.on.connect_failure {
        on.push("connect_failure".into());
    }
    if s.on.reset {
        on.push("reset".into());
    }
    if s.on.timeout {
        on.push("timeout".into());
    }
    on.extend(s.on.statuses.iter().map(u16::to_string));
    let per_try = plan.per_try_timeout.map_or("none".to_owned(), |t| format!("{t:?}"));
    let budget = route.retry_budget.map_or("none".to_owned(), |b| {
        format!("{}% of requests + {}/s", b.ratio_percent, b.min_per_second)
    });
    let methods = if s.non_idempotent { "any method" } else { "idempotent methods" };
    format!(
        "retries   {} tries on {} ({methods}; per try {per_try}; budget {budget})\n",
        s.attempts,
        on.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(split_url("http://a.test/x/y?q=1"), Ok(("a.test", "/x/y?q=1")));
        assert_eq!(split_url("http://a.test:8080"), Ok(("a.test:8080", "/")));
        assert_eq!(split_url("/only/path"), Ok(("", "/only/path")));
        assert!(split_url("ftp://x").is_err());
    }

    #[test]
    fn path_mismatches_name_the_segment() {
        let t = Template::parse("/v1/contacts/{id}").unwrap();
        assert_eq!(match_path(&t, "/v1/contacts/7"), Ok(()));
        assert_eq!(match_path(&t, "/v1/deals/7").unwrap_err().0, 2);
        assert_eq!(match_path(&t, "/v1/contacts").unwrap_err().0, 3);
        assert_eq!(match_path(&t, "/v1/contacts/").unwrap_err().0, 3);
        assert_eq!(match_path(&t, "/v1/contacts/7/x").unwrap_err().0, 4);
        let files = Template::parse("/files/{*key}").unwrap();
        assert_eq!(match_path(&files, "/files"), Ok(()));
        assert_eq!(match_path(&files, "/files/a/b"), Ok(()));
    }
}
