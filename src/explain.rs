//! `sluice explain`: which route a request matches, and what it captured.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
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

    let path_only = path.split(['?', '#']).next().unwrap_or(path);
    let facts = RequestFacts {
        listener,
        host: sluice_compiler::router::host_name(&host),
        method: Method::from_bytes(args.method.as_bytes()),
        path: path_only,
    };
    let mut captures = Captures::new();
    let listener_name = &plan.listeners[listener].name;
    let shown_host = if host.is_empty() { "(no host)" } else { host.as_str() };
    match plan.lookup(&facts, &mut captures) {
        Some(route) => {
            print!("{}", describe(&plan, route, path_only, &captures, listener_name));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "no route matches {} {path_only} with host {shown_host} on listener `{listener_name}`",
                args.method
            );
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
    let params: Vec<String> =
        plan.params(route, path, captures).map(|(n, v)| format!("{n} = {v:?}")).collect();
    if params.is_empty() {
        out.push_str("params    (none)\n");
    } else {
        out.push_str(&format!("params    {}\n", params.join(", ")));
    }
    out
}

fn host_text(host: &sluice_compiler::router::HostPattern) -> String {
    use sluice_compiler::router::HostPattern;
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

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn splits_urls() {
        assert_eq!(split_url("http://a.test/x/y?q=1"), Ok(("a.test", "/x/y?q=1")));
        assert_eq!(split_url("http://a.test:8080"), Ok(("a.test:8080", "/")));
        assert_eq!(split_url("/only/path"), Ok(("", "/only/path")));
        assert!(split_url("ftp://x").is_err());
    }
}
