//! The plan file's body: the plan in postcard, a compact binary encoding of
//! its serde form (integers as variable-length numbers, strings and lists
//! prefixed by their lengths, fields in declaration order with no names).
//!
//! Most routes of a large spec share their host and their retry policy, and
//! many share their path template, so the file holds each distinct one
//! once, in `hosts`, `retry_policies` and `paths`, and a route refers to
//! them by index; a loaded plan shares them the same way. A route field that holds nothing
//! (an empty list, `None`) takes one byte, and parameter names are not
//! stored: they follow from the path template.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Plan, RetryPlan, RoutePlan, SplitSide};
use crate::condition::Pattern;
use crate::method::MethodSet;
use crate::router::{HostPattern, Router};

/// One route in the file: its name and path borrowed from the body when read.
#[derive(Serialize, Deserialize)]
pub(super) struct RouteFile<'a> {
    name: &'a str,
    pool: usize,
    split: Vec<SplitSide>,
    sticky: Option<Box<crate::spec::Sticky>>,
    timeout: Option<Duration>,
    max_body_size: Option<u64>,
    forward_original_path: bool,
    /// Index into the retry policies.
    pub(super) retries: u32,
    retry_budget: Option<sluice_traffic::BudgetSettings>,
    /// Index into the hosts.
    pub(super) host: u32,
    /// Index into the paths; the empty path for a `path_regex` route.
    pub(super) path: u32,
    path_regex: Option<Box<Pattern>>,
    methods: MethodSet,
    listeners: u64,
}

/// The fewest bytes a route takes in the file: one per field.
const MIN_ROUTE_BYTES: usize = 14;

/// The shared tables and routes of a plan as the file holds them.
pub(super) struct Tables<'a> {
    pub(super) hosts: Vec<&'a HostPattern>,
    pub(super) retry_policies: Vec<&'a RetryPlan>,
    pub(super) paths: Vec<&'a str>,
    pub(super) routes: Vec<RouteFile<'a>>,
}

/// Distinct values in order of first use, and each value's index.
struct Table<'a, T: ?Sized> {
    values: Vec<&'a T>,
    index: HashMap<&'a T, u32>,
}

impl<'a, T: Eq + Hash + ?Sized> Table<'a, T> {
    fn new() -> Self {
        Table { values: Vec::new(), index: HashMap::new() }
    }

    fn intern(&mut self, value: &'a T) -> u32 {
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value);
            (self.values.len() - 1) as u32
        })
    }
}

/// The shared tables of `plan` and its routes in terms of them.
pub(super) fn tables(plan: &Plan) -> Tables<'_> {
    let mut hosts = Table::new();
    let mut retries = Table::new();
    let mut paths = Table::new();
    let routes = plan
        .routes
        .iter()
        .map(|r| RouteFile {
            name: &r.name,
            pool: r.pool,
            split: r.split.clone(),
            sticky: r.sticky.clone(),
            timeout: r.timeout,
            max_body_size: r.max_body_size,
            forward_original_path: r.forward_original_path,
            retries: retries.intern(&*r.retries),
            retry_budget: r.retry_budget,
            host: hosts.intern(&*r.host),
            path: paths.intern(&*r.path),
            path_regex: r.path_regex.clone(),
            methods: r.methods,
            listeners: r.listeners,
        })
        .collect();
    Tables { hosts: hosts.values, retry_policies: retries.values, paths: paths.values, routes }
}

/// The body of `plan`: listeners, pools, hosts, retry policies, paths, the
/// number of routes and each route, then the router.
pub(super) fn write(plan: &Plan) -> Vec<u8> {
    encode(plan, &tables(plan))
}

pub(super) fn encode(plan: &Plan, tables: &Tables<'_>) -> Vec<u8> {
    fn put<T: Serialize + ?Sized>(out: Vec<u8>, value: &T) -> Vec<u8> {
        postcard::to_extend(value, out).expect("a plan holds only serialisable values")
    }
    let mut out = put(Vec::new(), &plan.listeners);
    out = put(out, &plan.pools);
    out = put(out, &tables.hosts);
    out = put(out, &tables.retry_policies);
    out = put(out, &tables.paths);
    out = put(out, &tables.routes.len());
    for route in &tables.routes {
        out = put(out, route);
    }
    put(out, &plan.router)
}

/// Reads a body's values in order.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<T: Deserialize<'a>>(&mut self) -> Result<T, String> {
        let (value, rest) = postcard::take_from_bytes(self.rest).map_err(describe)?;
        self.rest = rest;
        Ok(value)
    }
}

/// What went wrong in a body, in words.
fn describe(e: postcard::Error) -> String {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => "the plan ends early".into(),
        postcard::Error::SerdeDeCustom => "a value in the plan is invalid".into(),
        other => format!("the plan is malformed ({other})"),
    }
}

/// The plan in a body, its indices into the shared tables and its path
/// templates checked; the caller validates the rest.
pub(super) fn read(body: &[u8]) -> Result<Plan, String> {
    crate::condition::share_patterns(|| read_shared(body))
}

fn read_shared(body: &[u8]) -> Result<Plan, String> {
    let mut file = Reader { rest: body };
    let listeners = file.take()?;
    let pools = file.take()?;
    let hosts: Vec<HostPattern> = file.take()?;
    let hosts: Vec<Arc<HostPattern>> = hosts.into_iter().map(Arc::new).collect();
    let retry_policies: Vec<RetryPlan> = file.take()?;
    let retry_policies: Vec<Arc<RetryPlan>> = retry_policies.into_iter().map(Arc::new).collect();
    // Each path's template is checked once, however many routes have it;
    // only a `path_regex` route may have the empty path.
    let paths: Vec<(Arc<str>, Result<(), String>)> = file
        .take::<Vec<&str>>()?
        .into_iter()
        .map(|p| {
            (
                Arc::from(p),
                crate::template::Template::check_param_names(p).map_err(|e| e.to_string()),
            )
        })
        .collect();
    let count: usize = file.take()?;
    if count > file.rest.len() / MIN_ROUTE_BYTES {
        return Err(format!("it claims {count} routes in {} bytes", file.rest.len()));
    }
    let mut routes = Vec::with_capacity(count);
    for _ in 0..count {
        let r: RouteFile<'_> = file.take()?;
        let host = hosts.get(r.host as usize).ok_or_else(|| {
            format!("route `{}` refers to host {}, which does not exist", r.name, r.host)
        })?;
        let retries = retry_policies.get(r.retries as usize).ok_or_else(|| {
            format!("route `{}` refers to retry policy {}, which does not exist", r.name, r.retries)
        })?;
        let (path, checked) = paths.get(r.path as usize).ok_or_else(|| {
            format!("route `{}` refers to path {}, which does not exist", r.name, r.path)
        })?;
        match (&r.path_regex, checked) {
            (Some(_), _) if path.is_empty() => {}
            (Some(_), _) => {
                return Err(format!("route `{}` has both a path and a path regex", r.name))
            }
            (None, Err(e)) => return Err(format!("route `{}` has a bad path: {e}", r.name)),
            (None, Ok(())) => {}
        }
        routes.push(RoutePlan {
            name: r.name.to_owned(),
            pool: r.pool,
            split: r.split,
            sticky: r.sticky,
            timeout: r.timeout,
            max_body_size: r.max_body_size,
            forward_original_path: r.forward_original_path,
            retries: retries.clone(),
            retry_budget: r.retry_budget,
            host: host.clone(),
            path: path.clone(),
            path_regex: r.path_regex,
            methods: r.methods,
            listeners: r.listeners,
        });
    }
    let router = Router::from_file(file.take()?)?;
    if !file.rest.is_empty() {
        return Err(format!("{} bytes follow the plan", file.rest.len()));
    }
    Ok(Plan { listeners, pools, routes, router })
}
