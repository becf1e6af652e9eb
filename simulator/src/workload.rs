//! What the engine runs: the plan's shape and a validated workload.
//!
//! [`Topology`] is the part of a compiled plan the simulator needs (routes,
//! pools, endpoint weights and balancing algorithms), with names kept only
//! for the report. [`Workload`] is a scenario after checking, with every name
//! resolved to an index and every duration parsed; the engine trusts it.

use sluice_compiler::{Balance, Plan};

use crate::random::ServiceTime;
use crate::time::Nanos;

/// Routes and pools of a plan.
#[derive(Debug, Clone)]
pub struct Topology {
    pub pools: Vec<PoolShape>,
    pub routes: Vec<RouteShape>,
}

/// A pool as the simulator sees it.
#[derive(Debug, Clone)]
pub struct PoolShape {
    pub name: String,
    /// The algorithm the spec chose.
    pub balance: Balance,
    pub endpoints: Vec<EndpointShape>,
}

#[derive(Debug, Clone)]
pub struct EndpointShape {
    /// How the report names the endpoint (its address).
    pub label: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct RouteShape {
    pub name: String,
    /// Index into [`Topology::pools`]: the route's pool, or the first side of its split.
    pub pool: usize,
    /// For a weighted split, each side's pool and weight; empty otherwise.
    pub split: Vec<(usize, u32)>,
}

impl Topology {
    /// The shape of a compiled plan.
    pub fn from_plan(plan: &Plan) -> Topology {
        let pools = plan
            .pools
            .iter()
            .map(|p| PoolShape {
                name: p.name.clone(),
                balance: p.balance,
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| EndpointShape { label: e.address.to_string(), weight: e.weight })
                    .collect(),
            })
            .collect();
        let routes = plan
            .routes
            .iter()
            .map(|r| RouteShape {
                name: r.name.clone(),
                pool: r.pool,
                split: r.split.iter().map(|s| (s.pool, s.weight)).collect(),
            })
            .collect();
        Topology { pools, routes }
    }

    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }
}

/// A checked scenario, resolved against a [`Topology`].
#[derive(Debug, Clone)]
pub struct Workload {
    /// The scenario's seed, if it set one.
    pub seed: Option<u64>,
    /// When arrivals stop.
    pub length: Length,
    /// Arrivals before this instant warm the system up and are not measured.
    pub warmup: Nanos,
    /// Poisson arrival rate, requests per second of virtual time (> 0).
    pub rate: f64,
    /// How arrivals split over routes (weights > 0, at least one share).
    pub traffic: Vec<RouteShare>,
    /// Per pool of the topology, by index: its service model, when the
    /// scenario gives one. Every pool the traffic reaches has one.
    pub pools: Vec<Option<PoolLoad>>,
    /// The balancing variants to compare, at least one.
    pub variants: Vec<Variant>,
}

/// When a run stops admitting arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Arrivals stop at this instant, warm-up included.
    Duration(Nanos),
    /// Arrivals stop after this many measured (post-warm-up) requests.
    Requests(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteShare {
    /// Index into [`Topology::routes`].
    pub route: usize,
    pub weight: f64,
}

/// The service model of every endpoint of a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLoad {
    /// Requests an endpoint serves at once (>= 1); more wait in its FIFO queue.
    pub workers: u32,
    pub service: ServiceTime,
}

/// One way of balancing every pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Each pool uses the algorithm its spec names.
    Spec,
    /// Every pool uses this algorithm.
    All(Balance),
}

impl Variant {
    /// The name used in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Spec => "spec",
            Variant::All(b) => b.as_str(),
        }
    }

    /// The algorithm a pool whose spec says `own` uses under this variant.
    pub fn balance_for(self, own: Balance) -> Balance {
        match self {
            Variant::Spec => own,
            Variant::All(b) => b,
        }
    }
}
