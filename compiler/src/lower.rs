//! Lowering a validated spec into a [`Plan`]: names become indices,
//! strings become addresses and durations, routes become the trie.

use crate::method::{Method, MethodSet};
use crate::plan::{EndpointPlan, ListenerPlan, Plan, PoolPlan, RoutePlan};
use crate::router::{HostPattern, RouteKey, RouterBuilder};
use crate::spec::{parse_duration, Spec};
use crate::template::Template;

/// Lower a spec that `validate` passed without errors.
pub(crate) fn lower(spec: &Spec) -> Plan {
    const VALID: &str = "validate accepted the spec, so this value parses";
    let listeners: Vec<ListenerPlan> = spec
        .listeners
        .iter()
        .map(|l| ListenerPlan { name: l.name.clone(), bind: l.bind.parse().expect(VALID) })
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
                    address: e.address.parse().expect(VALID),
                    weight: e.weight,
                })
                .collect(),
        })
        .collect();

    let mut router = RouterBuilder::new();
    let mut routes = Vec::with_capacity(spec.routes.len());
    for (i, route) in spec.routes.iter().enumerate() {
        let template = Template::parse(&route.matcher.path).expect(VALID);
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
        let key = RouteKey { host: &host, template: &template, listeners: listener_mask, methods };
        router.insert(i as u32, &key).expect("validate refused ambiguous routes");

        routes.push(RoutePlan {
            name: route.name.clone(),
            pool: pools.iter().position(|p| p.name == route.to).expect(VALID),
            timeout: route.timeout.as_deref().map(|t| parse_duration(t).expect(VALID)),
            host,
            path: route.matcher.path.clone(),
            methods,
            listeners: listener_mask,
            params: template.param_names(),
        });
    }
    Plan { listeners, pools, routes, router: router.build() }
}
