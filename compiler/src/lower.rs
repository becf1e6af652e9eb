//! Lowering a validated spec into a [`Plan`]: names become indices,
//! strings become addresses and durations, routes become the trie.

mod policy;

pub(crate) use self::policy::{status_range, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT};

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use crate::method::{Method, MethodSet};
use crate::plan::{EndpointPlan, ListenerPlan, Plan, PoolPlan, RoutePlan};
use crate::router::{HostPattern, RouteKey, RouterBuilder};
use crate::spec::{
    parse_cidr, parse_duration, parse_size, Spec, DEFAULT_CLIENT_IDLE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEAD_SIZE, DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_STALL_TIMEOUT,
};
use crate::template::Template;

/// Lower a spec that `validate` passed without errors.
pub(crate) fn lower(spec: &Spec) -> Plan {
    const VALID: &str = "validate accepted the spec, so this value parses";
    let listeners: Vec<ListenerPlan> = spec
        .listeners
        .iter()
        .map(|l| ListenerPlan {
            name: l.name.clone(),
            bind: l.bind.parse().expect(VALID),
            normalize: l.normalize,
            trusted_proxies: l
                .trusted_proxies
                .iter()
                .map(|c| parse_cidr(c).expect(VALID))
                .collect(),
            max_connections: l.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_headers: l.max_headers.unwrap_or(DEFAULT_MAX_HEADERS),
            max_head_size: l
                .max_head_size
                .as_deref()
                .map_or(DEFAULT_MAX_HEAD_SIZE, |s| parse_size(s).expect(VALID)),
            head_timeout: duration_or(l.head_timeout.as_deref(), DEFAULT_HEAD_TIMEOUT),
            idle_timeout: duration_or(l.idle_timeout.as_deref(), DEFAULT_CLIENT_IDLE_TIMEOUT),
            stall_timeout: duration_or(l.stall_timeout.as_deref(), DEFAULT_STALL_TIMEOUT),
            h2_max_concurrent_streams: l
                .http2
                .max_concurrent_streams
                .unwrap_or(crate::spec::DEFAULT_H2_MAX_CONCURRENT_STREAMS),
            h2_max_pending_resets: l
                .http2
                .max_pending_resets
                .unwrap_or(crate::spec::DEFAULT_H2_MAX_PENDING_RESETS),
            request_id: l.request_id,
            http10_default_host: l.http10_default_host.clone(),
        })
        .collect();
    let pools: Vec<PoolPlan> = spec
        .pools
        .iter()
        .map(|p| PoolPlan {
            name: p.name.clone(),
            balance: p.balance,
            endpoints: p
                .endpoints
                .iter()
                .map(|e| EndpointPlan {
                    address: crate::plan::EndpointAddress::parse(&e.address).expect(VALID),
                    weight: e.weight,
                })
                .collect(),
            connect_timeout: duration_or(p.connect_timeout.as_deref(), DEFAULT_CONNECT_TIMEOUT),
            idle_timeout: duration_or(p.idle_timeout.as_deref(), DEFAULT_POOL_IDLE_TIMEOUT),
            stall_timeout: duration_or(p.stall_timeout.as_deref(), DEFAULT_STALL_TIMEOUT),
            protocol: p.protocol,
            choices: policy::choices(p),
            ewma_window: p.ewma_window.as_deref().map(|w| duration_or(Some(w), Default::default())),
            hash_on: p.hash_on.clone(),
            balance_settings: policy::balance_settings(p),
            health_check: p.health_check.as_ref().map(policy::health_check),
            outlier_detection: p.outlier_detection.as_ref().map(policy::outlier),
            circuit_breaker: policy::circuit(p.circuit_breaker.as_ref()),
            resolve_interval: duration_or(
                p.resolve_interval.as_deref(),
                crate::spec::DEFAULT_RESOLVE_INTERVAL,
            ),
        })
        .collect();

    let mut router = RouterBuilder::new();
    let mut routes = Vec::with_capacity(spec.routes.len());
    // Routes with the same host or retry policy share one.
    let (mut hosts, mut retry_policies) = (HashMap::new(), HashMap::new());
    let mut paths: HashMap<&str, Arc<str>> = HashMap::new();
    let pool_index = |name: &str| {
        pools.iter().position(|p| p.name == name).expect("validate resolved every pool")
    };
    for (i, route) in spec.routes.iter().enumerate() {
        let path_regex = route
            .matcher
            .path_regex
            .as_deref()
            .map(|r| crate::condition::Pattern::new(r).expect(VALID));
        let template = match &path_regex {
            Some(_) => None,
            None => Some(Template::parse(&route.matcher.path).expect(VALID)),
        };
        let host = HostPattern::parse(route.matcher.host.as_deref());
        let methods = route
            .matcher
            .methods
            .as_ref()
            .map_or(MethodSet::ANY, |m| MethodSet::of(m.iter().map(|&m| Method::from(m))));
        let listener_mask = match &route.listeners {
            None => u64::MAX,
            Some(names) => names
                .iter()
                .filter_map(|n| listeners.iter().position(|l| &l.name == n))
                .fold(0, |mask, i| mask | (1 << i)),
        };
        let conditions = crate::condition::lower(&route.matcher).expect(VALID);
        const UNTIED: &str = "validate refused ambiguous routes";
        match (&template, &path_regex) {
            (Some(template), _) => {
                let (slash, case) = (route.matcher.trailing_slash, route.matcher.case);
                for shape in crate::validate::shapes(template, slash, case) {
                    let key = RouteKey {
                        host: &host,
                        template: &shape,
                        listeners: listener_mask,
                        methods,
                    };
                    router
                        .insert_with_conditions(i as u32, &key, conditions.clone())
                        .expect(UNTIED);
                }
            }
            (None, Some(pattern)) => {
                let (p, c) = (pattern.clone(), conditions.clone());
                router.insert_regex(i as u32, &host, p, listener_mask, methods, c).expect(UNTIED);
            }
            (None, None) => unreachable!("validate requires a path or a path_regex"),
        }

        let sides = route.to.sides();
        let largest_pool = sides.iter().map(|s| pools[pool_index(s.0)].endpoints.len()).max();
        let retries = policy::retries(route.retries.as_ref(), largest_pool.unwrap_or(1));
        routes.push(RoutePlan {
            name: route.name.clone(),
            pool: pool_index(route.to.sides()[0].0),
            split: match &route.to {
                crate::spec::Target::Pool(_) => Vec::new(),
                crate::spec::Target::Split(sides) => sides
                    .iter()
                    .map(|s| crate::plan::SplitSide { pool: pool_index(&s.pool), weight: s.weight })
                    .collect(),
            },
            sticky: route.sticky.clone().map(Box::new),
            timeout: route.timeout.as_deref().map(|t| parse_duration(t).expect(VALID)),
            max_body_size: route.max_body_size.as_deref().map(|s| parse_size(s).expect(VALID)),
            forward_original_path: route.forward_path == crate::spec::ForwardPath::Original,
            retries: shared(&mut retry_policies, retries, |r| Arc::new(r.clone())),
            retry_budget: route.retry_budget.as_ref().map(policy::budget),
            host: shared(&mut hosts, host, |h| Arc::new(h.clone())),
            path: shared(&mut paths, route.matcher.path.as_str(), |p| Arc::from(*p)),
            path_regex: path_regex.map(Box::new),
            methods,
            listeners: listener_mask,
        });
    }
    Plan { listeners, pools, routes, router: router.build() }
}

/// The shared copy of `value` in `seen`, made when it is the first.
fn shared<K: Eq + Hash, V: ?Sized>(
    seen: &mut HashMap<K, Arc<V>>,
    value: K,
    make: impl FnOnce(&K) -> Arc<V>,
) -> Arc<V> {
    seen.entry(value).or_insert_with_key(make).clone()
}

/// A duration setting, or its default when the spec leaves it out.
fn duration_or(text: Option<&str>, default: std::time::Duration) -> std::time::Duration {
    text.map_or(default, |t| parse_duration(t).expect("validate accepted the duration"))
}
