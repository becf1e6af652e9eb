//! The plan file's body: the plan as compact JSON.
//!
//! Most routes of a large spec share their host and their retry policy, so
//! the file holds each distinct one once, in `hosts` and `retry_policies`,
//! and a route refers to them by index. A route field that holds its default
//! is left out, and parameter names are not stored: they follow from the
//! path template, which is parsed when the plan loads anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

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

/// The body as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct In {
    listeners: Vec<ListenerPlan>,
    pools: Vec<PoolPlan>,
    hosts: Vec<HostPattern>,
    retry_policies: Vec<RetryPlan>,
    routes: Vec<RouteFile>,
    router: Router,
}

/// One route in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: String,
    pool: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    split: Vec<SplitSide>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sticky: Option<crate::spec::Sticky>,
    /// `[seconds, nanoseconds]`.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "short_duration")]
    timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_body_size: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    forward_original_path: bool,
    /// Index into `retry_policies`.
    retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_budget: Option<sluice_traffic::BudgetSettings>,
    /// Index into `hosts`.
    host: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_regex: Option<Pattern>,
    #[serde(default = "any_method", skip_serializing_if = "is_any_method")]
    methods: MethodSet,
    #[serde(default = "every_listener", skip_serializing_if = "is_every_listener")]
    listeners: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn any_method() -> MethodSet {
    MethodSet::ANY
}

fn is_any_method(methods: &MethodSet) -> bool {
    methods.is_any()
}

fn every_listener() -> u64 {
    u64::MAX
}

fn is_every_listener(mask: &u64) -> bool {
    *mask == u64::MAX
}

/// A duration as `[seconds, nanoseconds]`, which serde reads back as a `Duration`.
fn short_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    d.map(|d| (d.as_secs(), d.subsec_nanos())).serialize(s)
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

/// The JSON body of `plan`.
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
    serde_json::to_vec(&out).expect("a plan holds only serialisable values")
}

/// The plan in a JSON body, its indices into the shared tables checked and
/// its parameter names taken from its templates; the caller validates the rest.
pub(super) fn read(body: &[u8]) -> Result<Plan, String> {
    let file: In = crate::condition::share_patterns(|| serde_json::from_slice(body))
        .map_err(|e| e.to_string())?;
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
