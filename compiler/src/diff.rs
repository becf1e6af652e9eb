//! What changed between two specs, and which requests it affects.
//!
//! Two views of a change:
//! - *structure*: listeners, pools and routes (matched by name) added,
//!   removed, or changed field by field, from the specs as written;
//! - *impact*: sample requests generated from the routes of both specs (each
//!   route's example host and path, each of its methods, each listener it
//!   serves) are looked up in both compiled plans, and every request whose
//!   handling differs is listed. Handling is the route, its timeout, the
//!   pool, its algorithm and its endpoints with their weights, so a changed
//!   weight or address in the pool a request lands on counts, and a
//!   reordering of the file that changes no precedence does not.
//!
//! Samples are evidence, not proof: a change that only affects requests no
//! route's example resembles can go unlisted. The structural view names
//! every change regardless.

use crate::condition::{Condition, RequestFields, Rule, Source};
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::plan::Plan;
use crate::router::Captures;
use crate::spec::Spec;
use crate::template::{Segment, Template};

/// The whole comparison of two specs.
#[derive(Debug, Clone, Serialize)]
pub struct SpecDiff {
    pub listeners: KindDiff,
    pub pools: KindDiff,
    pub routes: KindDiff,
    pub impact: Impact,
}

impl SpecDiff {
    /// Whether any sample request would be handled differently.
    pub fn handled_differently(&self) -> bool {
        !self.impact.changed.is_empty()
    }

    /// Whether the specs differ in anything the structural view sees.
    pub fn has_changes(&self) -> bool {
        [&self.listeners, &self.pools, &self.routes]
            .iter()
            .any(|k| !k.added.is_empty() || !k.removed.is_empty() || !k.changed.is_empty())
    }
}

/// Items of one kind, by name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ItemChange>,
}

/// One item present in both specs whose fields differ.
#[derive(Debug, Clone, Serialize)]
pub struct ItemChange {
    pub name: String,
    pub fields: Vec<FieldChange>,
}

/// One field, as a JSON pointer inside the item (`/endpoints/0/weight`),
/// with its value before and after (`null` when absent).
#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Value,
    pub new: Value,
}

/// The sample requests and those handled differently.
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    /// How many distinct sample requests were compared.
    pub requests: usize,
    pub changed: Vec<RequestChange>,
}

/// A sample request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Request {
    pub listener: String,
    pub method: String,
    pub host: String,
    pub path: String,
    /// Headers (lowercase names) that meet some route's conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The query string, without `?`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
}

/// How a plan handles a request; `None` in [`RequestChange`] is "no route"
/// (or no such listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handling {
    pub route: String,
    pub timeout_ms: Option<u128>,
    pub pool: String,
    pub balance: String,
    /// `address` and `weight` of each endpoint, in order.
    pub endpoints: Vec<(String, u32)>,
    /// The sides of the route's weighted split (pool and weight), if it has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<(String, u32)>,
    /// What pins a client to one side of the split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
}

/// A request whose handling differs between the plans.
#[derive(Debug, Clone, Serialize)]
pub struct RequestChange {
    pub request: Request,
    pub old: Option<Handling>,
    pub new: Option<Handling>,
}

/// Compare two valid specs and their plans.
pub fn diff(old: (&Spec, &Plan), new: (&Spec, &Plan)) -> SpecDiff {
    let named = |spec: &Spec, kind: fn(&Spec) -> Vec<Value>| kind(spec);
    SpecDiff {
        listeners: kind_diff(named(old.0, listeners), named(new.0, listeners)),
        pools: kind_diff(named(old.0, pools), named(new.0, pools)),
        routes: kind_diff(named(old.0, routes), named(new.0, routes)),
        impact: impact(old.1, new.1),
    }
}

fn listeners(spec: &Spec) -> Vec<Value> {
    spec.listeners.iter().filter_map(|l| serde_json::to_value(l).ok()).collect()
}

fn pools(spec: &Spec) -> Vec<Value> {
    spec.pools.iter().filter_map(|p| serde_json::to_value(p).ok()).collect()
}

fn routes(spec: &Spec) -> Vec<Value> {
    spec.routes.iter().filter_map(|r| serde_json::to_value(r).ok()).collect()
}

/// Match items by their `name` field and compare the rest field by field.
fn kind_diff(old: Vec<Value>, new: Vec<Value>) -> KindDiff {
    let name = |v: &Value| v.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut out = KindDiff::default();
    for o in &old {
        match new.iter().find(|n| name(n) == name(o)) {
            None => out.removed.push(name(o)),
            Some(n) => {
                let mut fields = Vec::new();
                compare("", o, n, &mut fields);
                if !fields.is_empty() {
                    out.changed.push(ItemChange { name: name(o), fields });
                }
            }
        }
    }
    for n in &new {
        if !old.iter().any(|o| name(o) == name(n)) {
            out.added.push(name(n));
        }
    }
    out
}

/// Every leaf that differs between `a` and `b`, by pointer. Objects and
/// arrays of the same length are compared element by element; anything
/// else that differs is reported whole.
fn compare(at: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (va, vb) =
                    (x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null));
                let child = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                compare(&child, va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                compare(&format!("{at}/{i}"), va, vb, out);
            }
        }
        _ if a != b => {
            out.push(FieldChange { field: at.to_owned(), old: a.clone(), new: b.clone() })
        }
        _ => {}
    }
}

/// Look every sample request up in both plans.
fn impact(old: &Plan, new: &Plan) -> Impact {
    let mut requests = BTreeSet::new();
    for plan in [old, new] {
        samples(plan, &mut requests);
    }
    let changed = requests
        .iter()
        .filter_map(|request| {
            let (before, after) = (handle(old, request), handle(new, request));
            (before != after).then(|| RequestChange {
                request: request.clone(),
                old: before,
                new: after,
            })
        })
        .collect();
    Impact { requests: requests.len(), changed }
}

/// The sample requests of every route of a plan.
fn samples(plan: &Plan, out: &mut BTreeSet<Request>) {
    for route in &plan.routes {
        let Ok(template) = Template::parse(&route.path) else { continue };
        let host = route.host.example();
        let mut paths = vec![example_path(&template, "")];
        if matches!(template.segments.last(), Some(Segment::CatchAll(_))) {
            paths.push(example_path(&template, "x"));
        }
        let mut methods: Vec<&str> = route.methods.names().collect();
        if route.methods.is_any() {
            methods = vec!["GET", "POST", "PURGE"];
        }
        // Each request goes once bare and once meeting the route's conditions,
        // so that a changed condition value moves a request visibly.
        let route_id = plan.route_index(&route.name).unwrap_or(0) as u32;
        let met = meeting(plan.router.conditions(route_id), &host);
        let variants = [(host.clone(), Vec::new(), String::new()), met];
        for (i, listener) in plan.listeners.iter().enumerate() {
            if i >= 64 || route.listeners & (1 << i) == 0 {
                continue;
            }
            for method in &methods {
                for path in &paths {
                    for (host, headers, query) in &variants {
                        out.insert(Request {
                            listener: listener.name.clone(),
                            method: (*method).to_owned(),
                            host: host.clone(),
                            path: path.clone(),
                            headers: headers.clone(),
                            query: query.clone(),
                        });
                    }
                }
            }
        }
    }
}

/// A host, headers and query that meet `conditions` (as far as simple
/// example values can).
fn meeting(conditions: &[Condition], host: &str) -> (String, Vec<(String, String)>, String) {
    let mut host = host.to_owned();
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut cookies = Vec::new();
    for c in conditions {
        let value = match &c.rule {
            Rule::Exact(v) => Some(v.clone()),
            Rule::Prefix(p) => Some(format!("{p}x")),
            Rule::Regex(p) => p.example().map(str::to_owned),
            Rule::Present => Some("1".to_owned()),
            Rule::Absent => None,
        };
        let Some(value) = value else { continue };
        match &c.source {
            Source::Header(name) => headers.push((name.clone(), value)),
            Source::Query(name) => query.push(format!("{name}={value}")),
            Source::Cookie(name) => cookies.push(format!("{name}={value}")),
            Source::Port => host = format!("{host}:{value}"),
        }
    }
    if !cookies.is_empty() {
        headers.push(("cookie".to_owned(), cookies.join("; ")));
    }
    headers.sort();
    (host, headers, query.join("&"))
}

/// The headers and query of a sample request, as route conditions read them.
struct SampleFields<'r>(&'r Request);

impl RequestFields for SampleFields<'_> {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        if name == "host" {
            return each(&self.0.host);
        }
        self.0.headers.iter().filter(|(n, _)| n == name).any(|(_, v)| each(v))
    }

    fn query(&self) -> &str {
        &self.0.query
    }
}

/// A path the template matches: `1` for each parameter (a value few
/// literals equal), `rest` for a final catch-all.
fn example_path(template: &Template, rest: &str) -> String {
    let mut out = String::new();
    for segment in &template.segments {
        match segment {
            Segment::Literal(l) => {
                out.push('/');
                out.push_str(l);
            }
            Segment::CatchAll(_) => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str("/1"),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn handle(plan: &Plan, request: &Request) -> Option<Handling> {
    let listener = plan.listener_index(&request.listener)?;
    let mut captures = Captures::new();
    let route = plan.lookup_parts_with(
        listener,
        &request.host,
        request.method.as_bytes(),
        &request.path,
        &SampleFields(request),
        &mut captures,
    )?;
    let route = plan.routes.get(route as usize)?;
    let pool = plan.pools.get(route.pool)?;
    Some(Handling {
        route: route.name.clone(),
        timeout_ms: route.timeout.map(|t| t.as_millis()),
        pool: pool.name.clone(),
        balance: pool.balance.as_str().to_owned(),
        endpoints: pool.endpoints.iter().map(|e| (e.address.to_string(), e.weight)).collect(),
        split: route
            .split
            .iter()
            .map(|s| {
                (plan.pools.get(s.pool).map_or_else(String::new, |p| p.name.clone()), s.weight)
            })
            .collect(),
        sticky: route.sticky.as_ref().map(|s| format!("{s:?}")),
    })
}
