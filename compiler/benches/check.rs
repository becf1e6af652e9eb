//! `check` and `compile` on a generated 10,000-route spec: how long CI
//! waits for a large platform's spec, and how long its plan file takes to
//! load, side by side (the run also prints the load-to-compile ratio).
//!
//! Run with `cargo bench -p sluice-compiler --bench check`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_compiler::{check, Plan, SourceFile};
use support::generated_spec;

mod support;

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
