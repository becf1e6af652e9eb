//! Simulated requests per second of wall time: 1,000,000 requests over a
//! pool of 10 endpoints at utilisation 0.9, one balancing variant per run.
//!
//! `cargo bench -p sluice-simulator`; criterion reports the rate as
//! "thrpt" in elements (simulated requests) per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_compiler::Balance;
use sluice_simulator::random::ServiceTime;
use sluice_simulator::workload::{
    EndpointShape, Length, PoolLoad, PoolShape, RouteShape, RouteShare,
};
use sluice_simulator::{Topology, Workload};

const REQUESTS: u64 = 1_000_000;
const ENDPOINTS: usize = 10;

fn setup(balance: Balance) -> (Topology, Workload) {
    let endpoints = (0..ENDPOINTS)
        .map(|i| EndpointShape { label: format!("10.0.0.{i}:80"), weight: 1 })
        .collect();
    let topology = Topology {
        pools: vec![PoolShape::new("pool", balance, endpoints)],
        routes: vec![RouteShape::new("route", 0)],
    };
    // Ten 1 ms exponential servers offered 9,000 requests per second.
    let traffic = vec![RouteShare::new(0, 1.0)];
    let service = ServiceTime::Exponential { mean: 1_000_000 };
    let pools = vec![Some(PoolLoad::new(1, service))];
    let workload = Workload::poisson(Length::Requests(REQUESTS), 0, 9_000.0, traffic, pools);
    (topology, workload)
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate_1m_requests_10_endpoints");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(REQUESTS));
    for balance in [Balance::RoundRobin, Balance::Random, Balance::LeastRequest] {
        let (topology, workload) = setup(balance);
        group.bench_function(balance.as_str(), |b| {
            b.iter(|| sluice_simulator::simulate(&topology, &workload, black_box(1)))
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
