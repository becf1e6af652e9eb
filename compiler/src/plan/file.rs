//! The plan file's body: the plan in postcard, a compact binary encoding of
//! its serde form (integers as variable-length numbers, strings and lists
//! prefixed by their lengths, fields in declaration order with no names).
//!
//! Most routes of a large spec share their host and their retry policy, so
//! the file holds each distinct one once, in `hosts` and `retry_policies`,
//! and a route refers to them by index. A route field that holds nothing
//! (an empty list, `None`) takes one byte, and parameter names are not
//! stored: they follow from the path template.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ListenerPlan, Plan, PoolPlan, RetryPlan, RoutePlan, SplitSide};
use crate::condition::Pattern;
use crate::method::MethodSet;
use crate::router::{HostPattern, Router};

/// The body as written: borrows what it can from the plan.
#[derive(Serialize)]
struct Out<'a> {
    listeners: &'a [ListenerPlan],
    pools: &'a [PoolPlan],
    hosts: Vec<&'a HostPattern>,
    retry_policies: Vec<&'a RetryPlan>,
    routes: Vec<RouteFile>,
    router: &'a Router,
}

/// The body as read (and, in tests, written back after an edit).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct In {
    pub(super) listeners: Vec<ListenerPlan>,
    pub(super) pools: Vec<PoolPlan>,
    pub(super) hosts: Vec<HostPattern>,
    pub(super) retry_policies: Vec<RetryPlan>,
    pub(super) routes: Vec<RouteFile>,
    pub(super) router: Router,
}

/// One route in the file.
#[derive(Serialize, Deserialize)]
pub(super) struct RouteFile {
    name: String,
    pool: usize,
    split: Vec<SplitSide>,
    sticky: Option<crate::spec::Sticky>,
    timeout: Option<Duration>,
    max_body_size: Option<u64>,
    forward_original_path: bool,
    /// Index into `retry_policies`.
    pub(super) retries: u32,
    retry_budget: Option<sluice_traffic::BudgetSettings>,
    /// Index into `hosts`.
    pub(super) host: u32,
    /// Empty for a `path_regex` route.
    path: String,
    path_regex: Option<Pattern>,
    methods: MethodSet,
    listeners: u64,
}

/// Distinct values in order of first use, and each value's index.
struct Table<'a, T> {
    values: Vec<&'a T>,
    index: HashMap<&'a T, u32>,
}

impl<'a, T: Eq + Hash> Table<'a, T> {
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

/// The body of `plan`.
pub(super) fn write(plan: &Plan) -> Vec<u8> {
    let mut hosts = Table::new();
    let mut retries = Table::new();
    let routes = plan
        .routes
        .iter()
        .map(|r| RouteFile {
            name: r.name.clone(),
            pool: r.pool,
            split: r.split.clone(),
            sticky: r.sticky.clone(),
            timeout: r.timeout,
            max_body_size: r.max_body_size,
            forward_original_path: r.forward_original_path,
            retries: retries.intern(&r.retries),
            retry_budget: r.retry_budget,
            host: hosts.intern(&r.host),
            path: r.path.clone(),
            path_regex: r.path_regex.clone(),
            methods: r.methods,
            listeners: r.listeners,
        })
        .collect();
    let out = Out {
        listeners: &plan.listeners,
        pools: &plan.pools,
        hosts: hosts.values,
        retry_policies: retries.values,
        routes,
        router: &plan.router,
    };
    postcard::to_allocvec(&out).expect("a plan holds only serialisable values")
}

/// Decode a body, refusing one with bytes left over.
pub(super) fn decode(body: &[u8]) -> Result<In, String> {
    let (file, rest) = crate::condition::share_patterns(|| postcard::take_from_bytes::<In>(body))
        .map_err(describe)?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the plan", rest.len()));
    }
    Ok(file)
}

/// What went wrong in a body, in words.
fn describe(e: postcard::Error) -> String {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => "the plan ends early".into(),
        postcard::Error::SerdeDeCustom => "a value in the plan is invalid".into(),
        other => format!("the plan is malformed ({other})"),
    }
}

/// The plan in a body, its indices into the shared tables checked and its
/// parameter names taken from its templates; the caller validates the rest.
pub(super) fn read(body: &[u8]) -> Result<Plan, String> {
    let file = decode(body)?;
    let mut routes = Vec::with_capacity(file.routes.len());
    for r in file.routes {
        let host = file.hosts.get(r.host as usize).ok_or_else(|| {
            format!("route `{}` refers to host {}, which does not exist", r.name, r.host)
        })?;
        let retries = file.retry_policies.get(r.retries as usize).ok_or_else(|| {
            format!("route `{}` refers to retry policy {}, which does not exist", r.name, r.retries)
        })?;
        let params = match (&r.path_regex, r.path.as_str()) {
            (Some(_), "") => Vec::new(),
            (Some(_), _) => {
                return Err(format!("route `{}` has both a path and a path regex", r.name))
            }
            (None, path) => crate::template::Template::param_names_of(path)
                .map_err(|e| format!("route `{}` has a bad path: {e}", r.name))?,
        };
        routes.push(RoutePlan {
            name: r.name,
            pool: r.pool,
            split: r.split,
            sticky: r.sticky,
            timeout: r.timeout,
            max_body_size: r.max_body_size,
            forward_original_path: r.forward_original_path,
            retries: retries.clone(),
            retry_budget: r.retry_budget,
            host: host.clone(),
            path: r.path,
            path_regex: r.path_regex,
            methods: r.methods,
            listeners: r.listeners,
            params,
        });
    }
    Ok(Plan { listeners: file.listeners, pools: file.pools, routes, router: file.router })
}
