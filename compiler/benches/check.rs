//! `check` and `compile` on a generated 10,000-route spec: how long CI
//! waits for a large platform's spec, and how long its plan file takes to
//! load, side by side (the run also prints the load-to-compile ratio).
//!
//! Run with `cargo bench -p sluice-compiler --bench check`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_compiler::{check, Plan, SourceFile};

/// 10,000 routes over 20 hosts: per host 50 resources, each with a
/// collection (GET, POST), an item (GET, PUT, DELETE), a sub-collection and
/// a catch-all for its files, over two listeners and 20 pools.
fn generated_spec() -> String {
    let mut spec = String::from(
        "version: 1\nlisteners:\n  - { name: public, bind: 127.0.0.1:8080 }\n  \
         - { name: admin, bind: 127.0.0.1:8081 }\npools:\n",
    );
    for p in 0..20 {
        spec.push_str(&format!(
            "  - name: pool{p}\n    balance: weighted_round_robin\n    endpoints:\n      \
             - {{ address: 127.0.0.1:{}, weight: 2 }}\n      - {{ address: 127.0.0.1:{} }}\n",
            9000 + 2 * p,
            9001 + 2 * p
        ));
    }
    spec.push_str("routes:\n");
    let mut n = 0;
    for h in 0..20 {
        for r in 0..50 {
            let base = format!("/v1/res{r}");
            let routes = [
                (base.clone(), "[GET, POST]"),
                (format!("{base}/{{id}}"), "[GET, PUT, DELETE]"),
                (format!("{base}/{{id}}/items"), "[GET]"),
                (format!("{base}/{{id}}/items/{{item}}"), "[GET, PATCH]"),
                (format!("{base}/{{id}}/files/{{*key}}"), "[GET, PUT]"),
            ];
            for (path, methods) in routes {
                for (host, listeners) in [
                    (format!("svc{h}.example.test"), "[public]"),
                    (format!("*.int{h}.test"), "[admin]"),
                ] {
                    spec.push_str(&format!(
                        "  - name: r{n}\n    listeners: {listeners}\n    match:\n      \
                         host: \"{host}\"\n      path: \"{path}\"\n      methods: {methods}\n    \
                         to: pool{}\n    timeout: 5s\n",
                        n % 20
                    ));
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 10_000);
    spec
}

fn bench_check(c: &mut Criterion) {
    let text = generated_spec();
    let checked = check(SourceFile::new("generated.yaml", text.clone()));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first().map(|d| d.one_line()));
    let bytes = checked.plan.expect("no errors means a plan").to_bytes();

    // The goal is a load far cheaper than a compile: say by how much, from
    // the fastest of a few runs of each, in this run.
    let fastest = |runs: u32, f: &dyn Fn()| {
        (0..runs)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed()
            })
            .min()
            .expect("at least one run")
    };
    let compile = fastest(5, &|| {
        let checked = check(SourceFile::new("generated.yaml", black_box(text.clone())));
        black_box(checked.plan.expect("the spec is valid").to_bytes());
    });
    let load = fastest(50, &|| {
        black_box(Plan::from_bytes(black_box(&bytes)).expect("the plan loads"));
    });
    eprintln!(
        "10,000 routes: plan file {} bytes; compile {compile:.1?}, load {load:.2?}: \
         loading takes 1/{:.0} of compiling",
        bytes.len(),
        compile.as_secs_f64() / load.as_secs_f64()
    );

    let mut group = c.benchmark_group("10,000 routes");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("check", |b| {
        b.iter(|| check(SourceFile::new("generated.yaml", black_box(text.clone()))))
    });
    group.bench_function("compile to plan bytes", |b| {
        b.iter(|| {
            let checked = check(SourceFile::new("generated.yaml", black_box(text.clone())));
            checked.plan.expect("the spec is valid").to_bytes()
        })
    });
    group.bench_function("load plan bytes", |b| {
        b.iter(|| Plan::from_bytes(black_box(&bytes)).expect("the plan loads"))
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
