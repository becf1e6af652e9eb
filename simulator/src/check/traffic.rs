//! The traffic mix: shares of routes, named or found by routing a request
//! path, and the values their requests carry, checked and resolved into
//! [`Template`]s.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use sluice_compiler::router::Captures;
use sluice_compiler::spec::{HashOn, Sticky};
use sluice_compiler::{Balance, Diagnostic};

use super::{child, codes, known, Checker};
use crate::request::{KeyLaw, Keys, Piece, Template, Value};
use crate::scenario::{DrawnKeys, KeyValue, Scenario, TrafficShare};
use crate::workload::{RouteShare, Variant};

/// Most distinct keys a distribution may have (a Zipf law keeps a table of them).
const MAX_KEYS: u64 = 1_000_000;
/// Largest Zipf exponent; beyond it, every request draws key 1.
const MAX_EXPONENT: f64 = 10.0;

/// A number for a message: in exponent form when very large or small.
fn short(x: f64) -> String {
    if x != 0.0 && !(1e-6..1e15).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Where a value goes, for messages and for matching the keys policies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Header,
    Cookie,
    Query,
    Param,
    Client,
}

impl Place {
    fn field(self) -> &'static str {
        match self {
            Place::Header => "headers",
            Place::Cookie => "cookies",
            Place::Query => "query",
            Place::Param => "params",
            Place::Client => "client",
        }
    }

    /// Characters a value written here may not contain, and why.
    fn forbidden(self) -> (&'static [char], &'static str) {
        match self {
            Place::Header => (&[], "a header value"),
            Place::Cookie => (&[';', ',', '"', ' '], "a cookie value"),
            Place::Query => (&['&', '#', ' '], "a query value"),
            Place::Param => (&['/', '?', '#', ' '], "a path segment"),
            Place::Client => (&[], "an address"),
        }
    }
}

impl Checker<'_> {
    pub(super) fn traffic(&mut self, s: &Scenario) -> Vec<RouteShare> {
        // Without a mix, every route of the spec gets the same share.
        if s.traffic.is_empty() {
            let routes = self.topology.map_or(0, |t| t.routes.len());
            if routes == 0 && self.topology.is_some() {
                let message = "the spec has no routes, so no request can be simulated";
                let help = "add a route to the spec";
                self.push(Diagnostic::error(codes::UNKNOWN_ROUTE, message).with_help(help), "");
            }
            return (0..routes).map(|route| RouteShare::new(route, 1.0)).collect();
        }
        let mut shares = Vec::with_capacity(s.traffic.len());
        // Each share's entry in `traffic`, for findings about the mix.
        let mut entries = Vec::with_capacity(s.traffic.len());
        let mut seen = BTreeSet::new();
        for (i, entry) in s.traffic.iter().enumerate() {
            let here = format!("/traffic/{i}");
            if !(entry.weight.is_finite() && entry.weight > 0.0) {
                let message = format!("traffic weight {} is not positive", entry.weight);
                let help = "remove the entry to send it no traffic";
                let finding = Diagnostic::error(codes::BAD_WEIGHT, message).with_help(help);
                self.push(finding, &format!("{here}/weight"));
            }
            let mut template = self.values(&here, entry);
            let route = match (&entry.route, &entry.path) {
                (Some(_), Some(_)) => {
                    let message = "give `route` or `path`, not both";
                    self.found.push(
                        Diagnostic::error(codes::BAD_TEMPLATE, message)
                            .with_label(self.doc, &format!("{here}/route"), "`route` is here")
                            .at_key(self.doc, &format!("{here}/path")),
                    );
                    None
                }
                (None, None) => {
                    let message = "a traffic share needs `route` (a route's name) or `path`";
                    let help = "add `route: NAME`, or `path: /some/path`";
                    self.push(
                        Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help),
                        &here,
                    );
                    None
                }
                (Some(name), None) => {
                    let bare = template.values.is_empty();
                    if bare && !seen.insert(name.as_str()) {
                        let message =
                            format!("route `{name}` is listed more than once; its weights add up");
                        let finding = Diagnostic::warning(codes::DUPLICATE_ROUTE, message);
                        self.push(finding, &format!("{here}/route"));
                    }
                    self.named_route(&here, entry, name, &mut template)
                }
                (None, Some(path)) => self.routed_path(&here, entry, path, &mut template),
            };
            let Some(route) = route else { continue };
            let carries = !(template.values.is_empty() && template.params.is_empty());
            let template = carries.then(|| Arc::new(template));
            shares.push(RouteShare { route, weight: entry.weight.max(0.0), template });
            entries.push(i);
        }
        self.weights_add_up(&shares, &entries);
        shares
    }

    /// Requests pick a share by the running sum of the weights, so every
    /// weight must count in it: a sum too large for a number, or a weight
    /// too small to change the sum before it, would leave a share with no
    /// requests, silently.
    fn weights_add_up(&mut self, shares: &[RouteShare], entries: &[usize]) {
        let help = "weights are relative: scale them to ordinary numbers, such as 1, 5 and 20";
        let mut sum = 0.0f64;
        for (share, &i) in shares.iter().zip(entries) {
            let (weight, next) = (share.weight, sum + share.weight);
            let pointer = format!("/traffic/{i}/weight");
            if weight <= 0.0 {
                continue; // Reported already.
            }
            let written = self.doc.written(&pointer).map_or_else(|| short(weight), str::to_owned);
            if !next.is_finite() {
                let message = format!(
                    "the traffic weights add up to more than the largest number there is \
                     (about 1.8e308) at this weight of {written}"
                );
                self.push(Diagnostic::error(codes::BAD_WEIGHT, message).with_help(help), &pointer);
                return;
            }
            if next == sum {
                let message = format!(
                    "traffic weight {written} is lost beside the {} of the weights before it, \
                     so the share would get no requests",
                    short(sum)
                );
                self.push(Diagnostic::error(codes::BAD_WEIGHT, message).with_help(help), &pointer);
            }
            sum = next;
        }
    }

    /// The values of a share, with each place's names; path parameters are
    /// left for the route to place.
    fn values(&mut self, here: &str, entry: &TrafficShare) -> Template {
        let mut t = Template::default();
        let lists = [
            (Place::Header, &entry.headers, &mut t.headers),
            (Place::Cookie, &entry.cookies, &mut t.cookies),
            (Place::Query, &entry.query, &mut t.query),
        ];
        for (place, given, names) in lists {
            for (name, value) in given {
                let pointer = child(&format!("{here}/{}", place.field()), name);
                self.name(&pointer, place, name);
                if let Some(value) = self.value(&pointer, place, value) {
                    let name = if place == Place::Header {
                        name.to_ascii_lowercase()
                    } else {
                        name.clone()
                    };
                    names.push((name, t.values.len()));
                    t.values.push(value);
                }
            }
        }
        for (name, value) in &entry.params {
            let pointer = child(&format!("{here}/params"), name);
            if let Some(value) = self.value(&pointer, Place::Param, value) {
                t.params.push((name.clone(), vec![Piece::Value(t.values.len())]));
                t.values.push(value);
            }
        }
        if let Some(value) = &entry.client {
            if let Some(value) = self.value(&format!("{here}/client"), Place::Client, value) {
                t.client = Some(t.values.len());
                t.values.push(value);
            }
        }
        t
    }

    /// A header, cookie or query parameter name: a token that the request
    /// can carry as written.
    fn name(&mut self, pointer: &str, place: Place, name: &str) {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let ok = match place {
            Place::Query => !name.is_empty() && !name.contains(['&', '=', '#', ' ']),
            _ => !name.is_empty() && name.chars().all(token),
        };
        if !ok {
            let message = format!("`{name}` is not a valid name in `{}`", place.field());
            let help = "use letters, digits and `-`, `_` or `.`";
            self.found.push(
                Diagnostic::error(codes::BAD_TEMPLATE, message)
                    .with_help(help)
                    .at_key(self.doc, pointer),
            );
        }
    }

    /// One value, fixed or drawn, checked for where it goes.
    fn value(&mut self, pointer: &str, place: Place, value: &KeyValue) -> Option<Value> {
        let (forbidden, what) = place.forbidden();
        let text_ok = |this: &mut Self, pointer: &str, text: &str| {
            let bad = text.chars().find(|&c| c.is_control() || forbidden.contains(&c));
            match bad {
                Some(c) => {
                    let message = format!("{c:?} cannot be part of {what}, as in {text:?}");
                    this.push(Diagnostic::error(codes::BAD_TEMPLATE, message), pointer);
                    false
                }
                None => true,
            }
        };
        match value {
            KeyValue::Number(n) if place != Place::Client => Some(Value::Fixed(n.to_string())),
            KeyValue::Number(n) => self.value(pointer, place, &KeyValue::Text(n.to_string())),
            KeyValue::Text(text) if place == Place::Client => match text.parse::<IpAddr>() {
                Ok(_) => Some(Value::Fixed(text.clone())),
                Err(_) => {
                    let message = format!("client `{text}` is not an IP address");
                    let help = "write an address such as `192.0.2.7`, or draw keys";
                    let finding = Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help);
                    self.push(finding, pointer);
                    None
                }
            },
            KeyValue::Text(text) if place == Place::Param && text.is_empty() => {
                let message = "a path parameter cannot be empty";
                self.push(Diagnostic::error(codes::BAD_TEMPLATE, message), pointer);
                None
            }
            KeyValue::Text(text) => {
                text_ok(self, pointer, text).then(|| Value::Fixed(text.clone()))
            }
            KeyValue::Drawn(drawn) => {
                let law = self.key_law(pointer, drawn);
                let prefix = drawn.prefix.clone().unwrap_or_default();
                let prefix_pointer = format!("{pointer}/prefix");
                let prefix_ok = match place {
                    Place::Client if drawn.prefix.is_some() => {
                        let message = "drawn client addresses take no `prefix`: key k is the \
                                       address 10.0.0.0 plus k";
                        self.push_at_key(
                            Diagnostic::error(codes::BAD_TEMPLATE, message),
                            &prefix_pointer,
                        );
                        false
                    }
                    _ => text_ok(self, &prefix_pointer, &prefix),
                };
                let address = place == Place::Client;
                Some(Value::Keys(Keys { law: law?, prefix, address })).filter(|_| prefix_ok)
            }
        }
    }

    /// The law of drawn keys: exactly one of `zipf` and `uniform`, with
    /// sound parameters.
    fn key_law(&mut self, pointer: &str, drawn: &DrawnKeys) -> Option<KeyLaw> {
        let keys = |this: &mut Self, at: &str, keys: u64| {
            if (1..=MAX_KEYS).contains(&keys) {
                return true;
            }
            let message = format!("`keys` {keys} is not between 1 and {MAX_KEYS}");
            this.push(Diagnostic::error(codes::BAD_KEYS, message), &format!("{at}/keys"));
            false
        };
        match (&drawn.zipf, &drawn.uniform) {
            (Some(_), Some(_)) => {
                let message = "give `zipf` or `uniform`, not both";
                self.push_at_key(
                    Diagnostic::error(codes::BAD_KEYS, message),
                    &format!("{pointer}/uniform"),
                );
                None
            }
            (None, None) => {
                let message = "drawn keys need a law: `zipf` or `uniform`";
                let help = "such as `{ zipf: { keys: 1000, exponent: 1.1 } }`";
                self.push(Diagnostic::error(codes::BAD_KEYS, message).with_help(help), pointer);
                None
            }
            (Some(z), None) => {
                let at = format!("{pointer}/zipf");
                let mut ok = keys(self, &at, z.keys);
                if !(z.exponent.is_finite() && z.exponent > 0.0 && z.exponent <= MAX_EXPONENT) {
                    let message = format!(
                        "Zipf exponent {} is not above 0 and at most {MAX_EXPONENT}",
                        z.exponent
                    );
                    let help = "around 1 is typical; use `uniform` for keys equally likely";
                    let finding = Diagnostic::error(codes::BAD_KEYS, message).with_help(help);
                    self.push(finding, &format!("{at}/exponent"));
                    ok = false;
                }
                ok.then(|| KeyLaw::zipf(z.keys, z.exponent))
            }
            (None, Some(u)) => {
                let ok = keys(self, &format!("{pointer}/uniform"), u.keys);
                ok.then_some(KeyLaw::Uniform { keys: u.keys })
            }
        }
    }

    /// A share that names its route: the route, with every parameter in
    /// `params` one of the route's.
    fn named_route(
        &mut self,
        here: &str,
        entry: &TrafficShare,
        name: &str,
        template: &mut Template,
    ) -> Option<usize> {
        for (field, set) in [
            ("method", entry.method.is_some()),
            ("host", entry.host.is_some()),
            ("listener", entry.listener.is_some()),
        ] {
            if set {
                let message = format!("`{field}` applies only to a share given by `path`");
                let help = "remove it, or give `path` instead of `route`";
                self.push_at_key(
                    Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help),
                    &format!("{here}/{field}"),
                );
            }
        }
        let topology = self.topology?;
        let Some(route) = topology.route_index(name) else {
            let names = topology.routes.iter().map(|r| r.name.as_str());
            let help = known("routes", name, names);
            let finding =
                Diagnostic::error(codes::UNKNOWN_ROUTE, format!("unknown route `{name}`"))
                    .with_help(help);
            self.push(finding, &format!("{here}/route"));
            return None;
        };
        if let Some(plan) = self.plan {
            let names: Vec<&str> = plan.routes[route].param_names().collect();
            for (param, _) in &template.params {
                if !names.contains(&param.as_str()) {
                    let message = match names.is_empty() {
                        true => format!("route `{name}` has no path parameters"),
                        false => format!(
                            "route `{name}` has no path parameter `{param}`; it has {}",
                            super::list(&names)
                        ),
                    };
                    let finding = Diagnostic::error(codes::BAD_TEMPLATE, message);
                    self.push_at_key(finding, &child(&format!("{here}/params"), param));
                }
            }
        }
        Some(route)
    }

    /// A share given by a request path: the route `serve` would match, with
    /// each of the route's path parameters made of the path's text and the
    /// share's `params`.
    fn routed_path(
        &mut self,
        here: &str,
        entry: &TrafficShare,
        path: &str,
        template: &mut Template,
    ) -> Option<usize> {
        let at = format!("{here}/path");
        let pieces = self.path_pieces(here, path, template)?;
        let method = entry.method.as_deref().unwrap_or("GET");
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if method.is_empty() || !method.chars().all(token) {
            let message = format!("`{method}` is not an HTTP method");
            let finding =
                Diagnostic::error(codes::BAD_TEMPLATE, message).with_help("such as `GET`");
            self.push(finding, &format!("{here}/method"));
            return None;
        }
        let plan = self.plan?;
        let host = entry.host.as_deref().unwrap_or("");
        let listeners: Vec<usize> = match &entry.listener {
            None => (0..plan.listeners.len()).collect(),
            Some(name) => match plan.listener_index(name) {
                Some(l) => vec![l],
                None => {
                    let names = plan.listeners.iter().map(|l| l.name.as_str());
                    let finding = Diagnostic::error(
                        codes::BAD_TEMPLATE,
                        format!("unknown listener `{name}`"),
                    )
                    .with_help(known("listeners", name, names));
                    self.push(finding, &format!("{here}/listener"));
                    return None;
                }
            },
        };

        // The path as sent, with each value at its first key, and where each piece lies in it.
        let sample = template.sample();
        let mut sent = String::new();
        let mut spans = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let start = sent.len();
            match piece {
                Piece::Literal(text) => sent.push_str(text),
                Piece::Value(i) => sent.push_str(sample.text(*i)),
            }
            spans.push((start, sent.len()));
        }
        // Routing sees the normalised path: a template must already be normal,
        // or its placeholders would no longer line up with what was matched.
        for &l in &listeners {
            let normal = sluice_compiler::normalize::normalize(&sent, &plan.listeners[l].normalize);
            match normal {
                Ok(normal) if normal == sent => {}
                Ok(normal) => {
                    let message = format!("path `{sent}` is routed as `{normal}`");
                    let help = format!("write the path as `{normal}`");
                    let finding = Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help);
                    self.push(finding, &at);
                    return None;
                }
                Err(e) => {
                    let message = format!("path `{sent}` cannot be routed: {}", e.reason());
                    self.push(Diagnostic::error(codes::BAD_TEMPLATE, message), &at);
                    return None;
                }
            }
        }
        let mut captures = Captures::new();
        let found = listeners.iter().find_map(|&l| {
            let route =
                plan.lookup_parts_with(l, host, method.as_bytes(), &sent, &sample, &mut captures)?;
            Some(route as usize)
        });
        let Some(route) = found else {
            let host_text =
                if host.is_empty() { String::from("no host") } else { format!("host `{host}`") };
            let message = format!("no route matches {method} `{sent}` with {host_text}");
            let help = "check the path, `method`, `host` and `listener` against the spec's routes \
                        (`sluice explain` shows how a request is routed)";
            let finding = Diagnostic::error(codes::NO_MATCHING_ROUTE, message).with_help(help);
            self.push(finding, &at);
            return None;
        };

        // Each path parameter of the route: the pieces its capture covers.
        let names: Vec<&str> = plan.routes[route].param_names().collect();
        template.params = names
            .iter()
            .zip(captures.ranges())
            .map(|(name, &(s, e))| {
                let (s, e) = (s as usize, e as usize);
                let mut text = Vec::new();
                for (piece, &(from, to)) in pieces.iter().zip(&spans) {
                    if to <= s || from >= e || from == to {
                        continue;
                    }
                    match piece {
                        Piece::Value(i) if s <= from && to <= e => text.push(Piece::Value(*i)),
                        // A capture that cuts through a value keeps the text it saw.
                        _ => text.push(Piece::Literal(sent[from.max(s)..to.min(e)].to_owned())),
                    }
                }
                (name.to_string(), text)
            })
            .collect();
        Some(route)
    }

    /// A path's literal text and `{name}` placeholders, each placeholder one
    /// of the share's `params` and every one of those used.
    fn path_pieces(&mut self, here: &str, path: &str, template: &Template) -> Option<Vec<Piece>> {
        let at = format!("{here}/path");
        if !path.starts_with('/')
            || path.contains(['?', '#', ' '])
            || path.contains(char::is_control)
        {
            let message = format!("path `{path}` is not a request path");
            let help = "start it with `/`; give query parameters under `query`";
            self.push(Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help), &at);
            return None;
        }
        let mut pieces = Vec::new();
        let mut used = BTreeSet::new();
        let mut rest = path;
        let mut ok = true;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                let message = format!("path `{path}` has a `{{` without its `}}`");
                self.push(Diagnostic::error(codes::BAD_TEMPLATE, message), &at);
                return None;
            };
            let name = &rest[open + 1..close];
            match template.params.iter().find(|(n, _)| n == name) {
                Some((_, value)) => {
                    pieces.extend(value.iter().cloned());
                    used.insert(name);
                }
                None => {
                    let message = format!("`{{{name}}}` in the path has no value in `params`");
                    let help = format!("add `params: {{ {name}: ... }}`, or write the segment out");
                    self.push(Diagnostic::error(codes::BAD_TEMPLATE, message).with_help(help), &at);
                    ok = false;
                }
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        for (name, _) in &template.params {
            if !used.contains(name.as_str()) {
                let message = format!("`params.{name}` is not used: the path has no `{{{name}}}`");
                let finding = Diagnostic::error(codes::BAD_TEMPLATE, message);
                self.push_at_key(finding, &child(&format!("{here}/params"), name));
                ok = false;
            }
        }
        ok.then_some(pieces)
    }

    /// Warn about shares that set values: a drawn key no policy reads, and
    /// a hash key a reached pool reads but the share does not set.
    pub(super) fn unused_keys(
        &mut self,
        s: &Scenario,
        traffic: &[RouteShare],
        variants: &[Variant],
    ) {
        let Some(topology) = self.topology else { return };
        // With a share left out for an error, shares and entries no longer pair up.
        if traffic.len() != s.traffic.len() {
            return;
        }
        for (i, share) in traffic.iter().enumerate() {
            let Some(template) = &share.template else { continue };
            let route = &topology.routes[share.route];
            let pools: Vec<usize> = match route.split.is_empty() {
                true => vec![route.pool],
                false => route.split.iter().map(|&(p, _)| p).collect(),
            };
            let hashing = |p: usize| {
                let pool = &topology.pools[p];
                let hashes =
                    variants.iter().any(|v| v.balance_for(pool.balance) == Balance::ConsistentHash);
                pool.hash_on.as_ref().filter(|_| hashes)
            };
            let here = format!("/traffic/{i}");
            // What reads a key, and which.
            let mut read: Vec<(String, (Place, String))> = Vec::new();
            for p in pools.iter().copied() {
                let Some(key) = hashing(p) else { continue };
                let wanted = hash_place(key);
                read.push((format!("pool `{}` hashes on", topology.pools[p].name), wanted.clone()));
                if !sets(template, &wanted) {
                    let message = format!(
                        "pool `{}` hashes on {}, which the requests of this share do not carry; \
                         its picks for them are random",
                        topology.pools[p].name,
                        describe(&wanted)
                    );
                    let help = format!("set it under `{}`", wanted.0.field());
                    self.push(
                        Diagnostic::warning(codes::MISSING_KEY, message).with_help(help),
                        &here,
                    );
                }
            }
            if let Some(sticky) = route.sticky.as_ref().filter(|_| !route.split.is_empty()) {
                read.push((
                    format!("route `{}` pins its split on", route.name),
                    sticky_place(sticky),
                ));
            }
            for (place, name, value) in placed(template) {
                if !matches!(template.values[value], Value::Keys(_)) {
                    continue;
                }
                let reads = |(p, n): &(Place, String)| {
                    *p == place && (place == Place::Client || *n == name)
                };
                if read.iter().any(|(_, key)| reads(key)) {
                    continue;
                }
                let message = format!(
                    "no pool or split this share reaches reads {} ({}), so its drawn keys \
                     change nothing in the simulation",
                    describe(&(place, name.clone())),
                    match read.first() {
                        Some((who, key)) => format!("{who} {}", describe(key)),
                        None => String::from("none hashes or pins on a key"),
                    }
                );
                let pointer = match place {
                    Place::Client => format!("{here}/client"),
                    _ => child(&format!("{here}/{}", place.field()), &name),
                };
                self.push(Diagnostic::warning(codes::UNUSED_KEY, message), &pointer);
            }
        }
    }
}

/// Where a consistent hash reads its key.
fn hash_place(key: &HashOn) -> (Place, String) {
    match key {
        HashOn::Header(n) => (Place::Header, n.to_ascii_lowercase()),
        HashOn::Cookie(n) => (Place::Cookie, n.clone()),
        HashOn::Query(n) => (Place::Query, n.clone()),
        HashOn::PathParam(n) => (Place::Param, n.clone()),
        HashOn::ClientAddress => (Place::Client, String::new()),
    }
}

/// Where a sticky split reads its key.
fn sticky_place(key: &Sticky) -> (Place, String) {
    match key {
        Sticky::Header(n) => (Place::Header, n.to_ascii_lowercase()),
        Sticky::Cookie(n) => (Place::Cookie, n.clone()),
        Sticky::ClientAddress => (Place::Client, String::new()),
    }
}

fn describe((place, name): &(Place, String)) -> String {
    match place {
        Place::Header => format!("header `{name}`"),
        Place::Cookie => format!("cookie `{name}`"),
        Place::Query => format!("query parameter `{name}`"),
        Place::Param => format!("path parameter `{name}`"),
        Place::Client => String::from("the client address"),
    }
}

/// Every value of a template with its place and name; a path parameter
/// counts once per value it is made of.
fn placed(t: &Template) -> Vec<(Place, String, usize)> {
    let mut out = Vec::new();
    for (place, list) in
        [(Place::Header, &t.headers), (Place::Cookie, &t.cookies), (Place::Query, &t.query)]
    {
        out.extend(list.iter().map(|(n, i)| (place, n.clone(), *i)));
    }
    for (name, pieces) in &t.params {
        for piece in pieces {
            if let Piece::Value(i) = piece {
                out.push((Place::Param, name.clone(), *i));
            }
        }
    }
    out.extend(t.client.map(|i| (Place::Client, String::new(), i)));
    out
}

/// Whether the template sets the key at `wanted`.
fn sets(t: &Template, wanted: &(Place, String)) -> bool {
    placed(t).iter().any(|(p, n, _)| *p == wanted.0 && (*p == Place::Client || n == &wanted.1))
        || (wanted.0 == Place::Param && t.params.iter().any(|(n, _)| n == &wanted.1))
}

#[cfg(test)]
mod tests;
