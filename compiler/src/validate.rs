//! Rules a schema cannot express: references between names, duplicates,
//! addresses, durations, templates, hosts, and routes that tie.
//!
//! Every rule runs even when an earlier one failed, so one `check` reports
//! everything. Each finding is built from pointers into the document.

mod policy;

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::diagnostic::{codes, Diagnostic};
use crate::document::Document;
use crate::method::{Method, MethodSet};
use crate::router::{HostPattern, RouteKey, RouterBuilder};
use crate::schema::{describe, nearest, size_help};
use crate::spec::{duration, parse_cidr, parse_size, DurationError, Listener, Spec};
use crate::template::Template;

pub(crate) fn validate(doc: &Document, spec: &Spec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let listeners = check_listeners(doc, spec, &mut out);
    let pools = check_pools(doc, spec, &mut out);
    check_routes(doc, spec, &listeners, &pools, &mut out);
    policy::check(doc, spec, &mut out);
    out
}

/// Report names used twice, and return the index of each first use.
fn unique_names<'s>(
    doc: &Document,
    kind: &str,
    base: &str,
    names: impl Iterator<Item = &'s str>,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'s str, usize> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(&j) = first.get(name) {
            out.push(
                Diagnostic::error(
                    codes::DUPLICATE_NAME,
                    format!("{kind} name `{name}` is used twice"),
                )
                .with_help(format!("give each {kind} a unique name"))
                .at(doc, &format!("{base}/{i}/name"))
                .with_label(doc, &format!("{base}/{j}/name"), "first used here"),
            );
        } else {
            first.insert(name, i);
        }
    }
    first
}

fn check_listeners<'s>(
    doc: &Document,
    spec: &'s Spec,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'s str, usize> {
    let names = unique_names(
        doc,
        "listener",
        "/listeners",
        spec.listeners.iter().map(|l| l.name.as_str()),
        out,
    );
    if spec.listeners.len() > 64 {
        out.push(
            Diagnostic::error(
                codes::TOO_MANY_LISTENERS,
                format!("{} listeners; at most 64 are supported", spec.listeners.len()),
            )
            .at(doc, "/listeners/64"),
        );
    }
    if spec.listeners.is_empty() && !spec.routes.is_empty() {
        out.push(
            Diagnostic::warning(
                codes::NO_LISTENERS,
                "the spec has routes but no listeners, so it serves nothing",
            )
            .with_help("add a listener such as `{ name: public, bind: 127.0.0.1:8080 }`")
            .at_key(doc, "/routes"),
        );
    }

    let mut binds: Vec<(SocketAddr, usize)> = Vec::new();
    for (i, listener) in spec.listeners.iter().enumerate() {
        check_listener_settings(doc, i, listener, out);
        let pointer = format!("/listeners/{i}/bind");
        match listener.bind.parse::<SocketAddr>() {
            Err(_) => out.push(bad_address(doc, &pointer, &listener.bind, "127.0.0.1:8080")),
            Ok(addr) if addr.port() == 0 => {}
            Ok(addr) => {
                if let Some(&(other, j)) = binds.iter().find(|(b, _)| binds_overlap(*b, addr)) {
                    let message = if other == addr {
                        format!("address {addr} is bound by two listeners")
                    } else {
                        format!("address {addr} overlaps {other}, which another listener binds")
                    };
                    out.push(
                        Diagnostic::error(codes::DUPLICATE_BIND, message)
                            .with_help("each listener needs its own address or port")
                            .at(doc, &pointer)
                            .with_label(doc, &format!("/listeners/{j}/bind"), "also bound here"),
                    );
                } else {
                    binds.push((addr, i));
                }
            }
        }
    }
    names
}

/// Whether two listeners could not both bind: the same port, and the same
/// address or one of them the unspecified address of its family (`0.0.0.0`
/// takes the port on every IPv4 address; `[::]` usually takes IPv4 too).
fn binds_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() {
        return false;
    }
    let (ia, ib) = (a.ip(), b.ip());
    ia == ib
        || (ia.is_unspecified() && (ia.is_ipv6() || ib.is_ipv4()))
        || (ib.is_unspecified() && (ib.is_ipv6() || ia.is_ipv4()))
}

fn bad_endpoint(
    doc: &Document,
    pointer: &str,
    text: &str,
    error: crate::plan::AddressError,
) -> Diagnostic {
    use crate::plan::AddressError;
    let help = match error {
        AddressError::PortZero => "name the port the upstream listens on",
        _ => {
            "write an IP address or a DNS name and a port, such as 127.0.0.1:9101, \
              [::1]:9101 or orders.internal:8080"
        }
    };
    Diagnostic::error(codes::BAD_ADDRESS, format!("endpoint `{text}` is not usable: {error}"))
        .with_help(help)
        .at(doc, pointer)
}

fn bad_address(doc: &Document, pointer: &str, text: &str, example: &str) -> Diagnostic {
    Diagnostic::error(codes::BAD_ADDRESS, format!("`{text}` is not an IP:PORT address"))
        .with_help(format!(
            "write an IP address and a port, such as {example} or [::1]:{}",
            example.rsplit(':').next().unwrap_or("80")
        ))
        .at(doc, pointer)
}

fn check_pools<'s>(
    doc: &Document,
    spec: &'s Spec,
    out: &mut Vec<Diagnostic>,
) -> HashMap<&'s str, usize> {
    let names =
        unique_names(doc, "pool", "/pools", spec.pools.iter().map(|p| p.name.as_str()), out);
    for (i, pool) in spec.pools.iter().enumerate() {
        let base = format!("/pools/{i}");
        check_duration(doc, &base, "connect_timeout", pool.connect_timeout.as_deref(), out);
        check_duration(doc, &base, "idle_timeout", pool.idle_timeout.as_deref(), out);
        check_duration(doc, &base, "stall_timeout", pool.stall_timeout.as_deref(), out);
        check_duration(doc, &base, "ewma_window", pool.ewma_window.as_deref(), out);
        check_duration(doc, &base, "resolve_interval", pool.resolve_interval.as_deref(), out);
        for (j, endpoint) in pool.endpoints.iter().enumerate() {
            let pointer = format!("/pools/{i}/endpoints/{j}/address");
            if let Err(error) = crate::plan::EndpointAddress::parse(&endpoint.address) {
                out.push(bad_endpoint(doc, &pointer, &endpoint.address, error));
            }
        }

        let weighted = pool.balance.is_weighted();
        let all_zero = pool.endpoints.iter().all(|e| e.weight == 0);
        if all_zero && !pool.endpoints.is_empty() {
            out.push(
                Diagnostic::error(
                    codes::NO_WEIGHT,
                    format!(
                        "every endpoint of pool `{}` has weight 0, so it can send nothing",
                        pool.name
                    ),
                )
                .with_help("give at least one endpoint a positive weight")
                .at(doc, &format!("/pools/{i}/endpoints")),
            );
        }
        // Weight 0 drains an endpoint under every algorithm; the others
        // ignore only the differences between positive weights.
        let uneven = pool.endpoints.iter().any(|e| e.weight > 1);
        if !weighted && uneven {
            out.push(
                Diagnostic::warning(
                    codes::IGNORED_WEIGHTS,
                    format!(
                        "pool `{}` sets weights, but `{}` ignores them",
                        pool.name,
                        pool.balance.as_str()
                    ),
                )
                .with_help(
                    "use `balance: weighted_round_robin` or `least_request` to honour weights \
                     (weight 0 drains an endpoint under every algorithm)",
                )
                .at(doc, &format!("/pools/{i}/endpoints")),
            );
        }
    }
    names
}

fn check_routes(
    doc: &Document,
    spec: &Spec,
    listeners: &HashMap<&str, usize>,
    pools: &HashMap<&str, usize>,
    out: &mut Vec<Diagnostic>,
) {
    unique_names(doc, "route", "/routes", spec.routes.iter().map(|r| r.name.as_str()), out);
    let pool_names: Vec<String> = spec.pools.iter().map(|p| p.name.clone()).collect();
    let listener_names: Vec<String> = spec.listeners.iter().map(|l| l.name.clone()).collect();
    let mut used_pools = vec![false; spec.pools.len()];
    let mark_used = |used: &mut Vec<bool>, name: &str| {
        // Every pool of that name, so a duplicate is reported once, as a duplicate.
        for (p, pool) in spec.pools.iter().enumerate() {
            if pool.name == name {
                used[p] = true;
            }
        }
    };
    let mut router = RouterBuilder::new();
    let mut keys: Vec<Key> = Vec::new();

    for (i, route) in spec.routes.iter().enumerate() {
        let base = format!("/routes/{i}");
        let mut ok = true;

        let sides = route.to.sides();
        for (j, (pool, _, below)) in sides.iter().enumerate() {
            if sides[..j].iter().any(|(p, _, _)| p == pool) {
                out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_NAME,
                        format!("route `{}` lists pool `{pool}` twice in its split", route.name),
                    )
                    .with_help("give the pool one entry with the sum of the weights")
                    .at(doc, &format!("{base}/to{below}")),
                );
                continue;
            }
            match pools.get(pool) {
                Some(_) => mark_used(&mut used_pools, pool),
                None => {
                    ok = false;
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_POOL,
                        format!(
                            "route `{}` sends to pool `{pool}`, which is not defined",
                            route.name
                        ),
                    );
                    d = match nearest(pool, &pool_names) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None if pool_names.is_empty() => {
                            d.with_help("define the pool under `pools:`")
                        }
                        None => d.with_help(format!("defined pools: {}", pool_names.join(", "))),
                    };
                    out.push(d.at(doc, &format!("{base}/to{below}")));
                }
            }
        }
        if matches!(route.to, crate::spec::Target::Split(_)) && sides.iter().all(|s| s.1 == 0) {
            out.push(
                Diagnostic::error(
                    codes::NO_WEIGHT,
                    format!(
                        "every side of route `{}`'s split has weight 0, so it sends nothing",
                        route.name
                    ),
                )
                .with_help("give at least one side a positive weight")
                .at(doc, &format!("{base}/to")),
            );
        }

        let mut mask = 0u64;
        match &route.listeners {
            None => mask = u64::MAX,
            Some(names) => {
                for (j, name) in names.iter().enumerate() {
                    match listeners.get(name.as_str()) {
                        Some(&l) if l < 64 => mask |= 1 << l,
                        Some(_) => ok = false,
                        None => {
                            ok = false;
                            let mut d = Diagnostic::error(
                                codes::UNKNOWN_LISTENER,
                                format!(
                                    "route `{}` names listener `{name}`, which is not defined",
                                    route.name
                                ),
                            );
                            if let Some(best) = nearest(name, &listener_names) {
                                d = d.with_help(format!("did you mean `{best}`?"));
                            }
                            out.push(d.at(doc, &format!("{base}/listeners/{j}")));
                        }
                    }
                }
            }
        }

        if let Some(size) = &route.max_body_size {
            check_size(doc, &format!("{base}/max_body_size"), size, (BODY_SIZE_UNITS, 0), out);
        }
        if let Some(timeout) = &route.timeout {
            match duration(timeout) {
                Ok(d) if d.is_zero() => out.push(
                    Diagnostic::error(
                        codes::BAD_DURATION,
                        format!("timeout `{timeout}` is zero, so every request would time out"),
                    )
                    .with_help("use a positive duration, or remove `timeout` for no limit")
                    .at(doc, &format!("{base}/timeout")),
                ),
                Ok(_) => {}
                Err(DurationError::TooLong) => {
                    out.push(too_long(doc, &format!("{base}/timeout"), "timeout", timeout))
                }
                Err(DurationError::Syntax) => out.push(
                    Diagnostic::error(
                        codes::BAD_DURATION,
                        format!("bad duration `{timeout}` in `routes[{i}].timeout`"),
                    )
                    .with_help(
                        "write a whole number followed by ms, s, m or h, such as 250ms or 5s",
                    )
                    .at(doc, &format!("{base}/timeout")),
                ),
            }
        }

        let path_regex = match (&route.matcher.path_regex, route.matcher.path.is_empty()) {
            (Some(_), false) => {
                out.push(
                    Diagnostic::error(
                        codes::BAD_PATH,
                        format!("route `{}` gives both `path` and `path_regex`", route.name),
                    )
                    .with_help("keep one of them")
                    .at_key(doc, &format!("{base}/match/path_regex")),
                );
                None
            }
            (Some(text), true) => match crate::condition::Pattern::new(text) {
                Ok(p) => Some(p),
                Err(e) => {
                    let message = e.to_string();
                    let why = message.lines().last().unwrap_or_default().trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    out.push(
                        Diagnostic::error(
                            codes::BAD_PATH,
                            format!("path_regex `{text}` is not a valid regex: {why}"),
                        )
                        .at(doc, &format!("{base}/match/path_regex")),
                    );
                    None
                }
            },
            (None, true) => {
                out.push(
                    Diagnostic::error(
                        codes::MISSING_KEY,
                        format!("route `{}` needs a `path` or a `path_regex`", route.name),
                    )
                    .at_key(doc, &format!("{base}/match")),
                );
                None
            }
            (None, false) => None,
        };
        let template = match Template::parse(&route.matcher.path) {
            _ if route.matcher.path_regex.is_some() || route.matcher.path.is_empty() => None,
            Ok(t) => Some(t),
            Err(e) => {
                out.push(
                    Diagnostic::error(
                        codes::BAD_PATH,
                        format!("path template `{}`: {e}", route.matcher.path),
                    )
                    .with_help("segments are literals, `{name}`, or a final `{*name}`")
                    .at(doc, &format!("{base}/match/path")),
                );
                None
            }
        };
        let host = match check_host(route.matcher.host.as_deref()) {
            Ok(h) => Some(h),
            Err(why) => {
                out.push(
                    Diagnostic::error(codes::BAD_HOST, format!("host `{}` {why}", route.matcher.host.as_deref().unwrap_or_default()))
                        .with_help("write a host name such as api.example.test, or *.example.test for its subdomains")
                        .at(doc, &format!("{base}/match/host")),
                );
                None
            }
        };
        let methods = route
            .matcher
            .methods
            .as_ref()
            .map_or(MethodSet::ANY, |m| MethodSet::of(m.iter().map(|&m| Method::from(m))));

        let conditions = match crate::condition::lower(&route.matcher) {
            Ok(c) => Some(c),
            Err(errors) => {
                for (pointer, message) in errors {
                    out.push(
                        Diagnostic::error(codes::BAD_CONDITION, message)
                            .at(doc, &format!("{base}/match{pointer}")),
                    );
                }
                None
            }
        };

        if let (Some(pattern), Some(h), Some(c)) = (&path_regex, &host, &conditions) {
            if ok || mask != 0 {
                let inserted =
                    router.insert_regex(i as u32, h, pattern.clone(), mask, methods, c.clone());
                if let Err(other) = inserted {
                    out.push(ambiguous(doc, spec, i, other as usize, &keys, &None));
                }
            }
        }

        let key = match (template, host, conditions) {
            (Some(t), Some(h), Some(c)) if ok || mask != 0 => Some((h, t, mask, methods, c)),
            _ => None,
        };
        if let Some((host, template, listeners, methods, conditions)) = &key {
            for shape in shapes(template, route.matcher.trailing_slash, route.matcher.case) {
                let route_key =
                    RouteKey { host, template: &shape, listeners: *listeners, methods: *methods };
                if let Err(other) =
                    router.insert_with_conditions(i as u32, &route_key, conditions.clone())
                {
                    // The example request is one of the shape that tied.
                    let mut tied = key.clone();
                    if let Some(k) = tied.as_mut() {
                        k.1 = shape.clone();
                    }
                    out.push(ambiguous(doc, spec, i, other as usize, &keys, &tied));
                    break;
                }
            }
        }
        keys.push(key);
    }

    for (i, used) in used_pools.iter().enumerate() {
        if !used {
            out.push(
                Diagnostic::warning(
                    codes::UNUSED_POOL,
                    format!("pool `{}` is not used by any route", spec.pools[i].name),
                )
                .with_help("route traffic to it, or delete it")
                .at(doc, &format!("/pools/{i}/name")),
            );
        }
    }
}

type Key = Option<(HostPattern, Template, u64, MethodSet, Vec<crate::condition::Condition>)>;

fn ambiguous(
    doc: &Document,
    spec: &Spec,
    i: usize,
    other: usize,
    keys: &[Key],
    key: &Key,
) -> Diagnostic {
    let (name, other_name) = (&spec.routes[i].name, &spec.routes[other].name);
    let mut example = String::new();
    if let (
        Some((host, template, listeners, methods, conditions)),
        Some((_, _, other_listeners, other_methods, other_conditions)),
    ) = (key, &keys[other])
    {
        let method = methods.intersection(*other_methods).first().unwrap_or("GET");
        let shared = listeners & other_listeners;
        let listener = spec
            .listeners
            .iter()
            .enumerate()
            .find(|(l, _)| *l < 64 && shared & (1 << l) != 0)
            .map(|(_, l)| format!(" on listener `{}`", l.name))
            .unwrap_or_default();
        let with = if conditions.is_empty() && other_conditions.is_empty() {
            ""
        } else {
            " meeting the conditions of both"
        };
        example = format!(
            ", for example {method} http://{}{}{listener}{with}",
            host.example(),
            template.example_path()
        );
    }
    Diagnostic::error(codes::AMBIGUOUS_ROUTES, format!("routes `{other_name}` and `{name}` match the same requests{example}"))
        .with_help("make one of them more specific (host, path or methods), or restrict their listeners, or delete one")
        .at_key(doc, &format!("/routes/{i}/match"))
        .with_key_label(doc, &format!("/routes/{other}/match"), format!("`{other_name}` matches here"))
}

fn check_host(host: Option<&str>) -> Result<HostPattern, &'static str> {
    let Some(text) = host else { return Ok(HostPattern::Any) };
    let (without_port, port) = crate::router::split_host_port(text);
    if port == Some(0) {
        return Err("names port 0, which no request can carry");
    }
    let name = without_port.strip_prefix("*.").unwrap_or(without_port);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("is empty");
    }
    if name.contains(':') {
        return Err("has a port that is not a number from 1 to 65535");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !name.split('.').all(label_ok) {
        return Err("is not a valid host name (a `*` is allowed only as the whole first label)");
    }
    Ok(HostPattern::parse(Some(text)))
}

/// Trusted proxy blocks, head limits and timeouts of one listener.
fn check_listener_settings(
    doc: &Document,
    i: usize,
    listener: &Listener,
    out: &mut Vec<Diagnostic>,
) {
    let base = format!("/listeners/{i}");
    for (j, block) in listener.trusted_proxies.iter().enumerate() {
        if parse_cidr(block).is_none() {
            out.push(
                Diagnostic::error(
                    codes::BAD_ADDRESS,
                    format!("`{block}` is not a CIDR block with a clean network address"),
                )
                .with_help("write a network and prefix length, such as 10.0.0.0/8 or fd00::/8, or a single IP")
                .at(doc, &format!("{base}/trusted_proxies/{j}")),
            );
        }
    }
    if let Some(size) = &listener.max_head_size {
        let setting = (HEAD_SIZE_UNITS, MIN_HEAD_SIZE);
        check_size(doc, &format!("{base}/max_head_size"), size, setting, out);
    }
    check_duration(doc, &base, "head_timeout", listener.head_timeout.as_deref(), out);
    check_duration(doc, &base, "idle_timeout", listener.idle_timeout.as_deref(), out);
    check_duration(doc, &base, "stall_timeout", listener.stall_timeout.as_deref(), out);
    if let Some(host) = &listener.http10_default_host {
        let problem = match check_host(Some(host)) {
            Err(problem) => Some(problem),
            Ok(_) if host.starts_with("*.") => Some("is a wildcard, which no request can carry"),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            out.push(
                Diagnostic::error(codes::BAD_HOST, format!("`{host}` {problem}"))
                    .with_help("write one host name, optionally with a port, such as api.example.test or api.example.test:8080")
                    .at(doc, &format!("{base}/http10_default_host")),
            );
        }
    }
}

/// Smallest `max_head_size` that leaves room for an ordinary request head.
const MIN_HEAD_SIZE: u64 = 1024;

/// The units a size setting takes, as its schema pattern lists them:
/// `max_head_size` up to MiB, body sizes up to GiB.
pub(crate) const HEAD_SIZE_UNITS: &[&str] = &["B", "KiB", "MiB"];
pub(crate) const BODY_SIZE_UNITS: &[&str] = &["B", "KiB", "MiB", "GiB"];

/// A size setting, written with one of `units`: it must parse and be at
/// least `min` bytes.
pub(crate) fn check_size(
    doc: &Document,
    pointer: &str,
    text: &str,
    (units, min): (&[&str], u64),
    out: &mut Vec<Diagnostic>,
) {
    let at = describe(pointer);
    match parse_size(text) {
        Some(n) if n >= min => {}
        Some(_) => out.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                format!("{at} must be at least {min} bytes, found `{text}`"),
            )
            .with_help("use at least 1KiB; 16KiB to 64KiB is usual")
            .at(doc, pointer),
        ),
        None => out.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("bad size `{text}` in {at}"))
                .with_help(size_help(units))
                .at(doc, pointer),
        ),
    }
}

/// An optional duration setting `key` of the object at `base`: it must parse
/// and be positive, since a zero timeout would fire at once.
fn check_duration(
    doc: &Document,
    base: &str,
    key: &str,
    text: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(text) = text else { return };
    let pointer = format!("{base}/{key}");
    match duration(text) {
        Ok(d) if d.is_zero() => out.push(
            Diagnostic::error(
                codes::BAD_DURATION,
                format!("`{key}` of `{text}` is zero, so it would fire at once"),
            )
            .with_help("use a positive duration, or leave the setting out for its default")
            .at(doc, &pointer),
        ),
        Ok(_) => {}
        Err(DurationError::TooLong) => out.push(too_long(doc, &pointer, key, text)),
        Err(DurationError::Syntax) => out.push(
            Diagnostic::error(codes::BAD_DURATION, format!("bad duration `{text}` in `{key}`"))
                .with_help("write a whole number followed by ms, s, m or h, such as 250ms or 5s")
                .at(doc, &pointer),
        ),
    }
}

/// A duration longer than the clocks that time it can count.
fn too_long(doc: &Document, pointer: &str, key: &str, text: &str) -> Diagnostic {
    Diagnostic::error(
        codes::BAD_DURATION,
        format!("`{key}` of `{text}` is too long; the longest duration is about 584 years"),
    )
    .with_help("use a shorter duration, or leave the setting out for its default")
    .at(doc, pointer)
}

/// The templates a route is inserted under: one, or two when it ignores a trailing slash.
pub(crate) fn shapes(
    template: &Template,
    slash: crate::spec::TrailingSlash,
    case: crate::spec::PathCase,
) -> Vec<Template> {
    let mut template = template.clone();
    template.case_insensitive = case == crate::spec::PathCase::Insensitive;
    let template = &template;
    match slash {
        crate::spec::TrailingSlash::Strict => vec![template.clone()],
        crate::spec::TrailingSlash::Ignore => template.trailing_slash_variants(),
    }
}
