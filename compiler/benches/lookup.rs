//! Route lookup speed: the bundled platform spec, and two path-only route
//! sets measured side by side with the `matchit` router: the GitHub REST
//! API's paths and 10,000 generated routes.
//!
//! Run with `cargo bench -p sluice-compiler --bench lookup`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_compiler::{check, Captures, Method, Plan, RequestFacts, SourceFile};

fn compile(name: &str, text: String) -> Plan {
    let checked = check(SourceFile::new(name, text));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first().map(|d| d.one_line()));
    checked.plan.expect("no errors means a plan")
}

/// 10,000 routes: 100 services with 50 resources, each a collection and an item.
fn generated_spec() -> (String, Vec<String>) {
    let mut spec = String::from(
        "version: 1\nlisteners: [{ name: public, bind: 127.0.0.1:8080 }]\n\
         pools: [{ name: p, endpoints: [{ address: 127.0.0.1:9000 }] }]\nroutes:\n",
    );
    let mut templates = Vec::new();
    for s in 0..100 {
        for r in 0..50 {
            for template in [format!("/svc{s}/v1/res{r}"), format!("/svc{s}/v1/res{r}/{{id}}")] {
                let name = format!("r{}", templates.len());
                spec.push_str(&format!(
                    "  - {{ name: {name}, match: {{ path: \"{template}\" }}, to: p }}\n"
                ));
                templates.push(template);
            }
        }
    }
    (spec, templates)
}

/// The GitHub REST API paths in `benches/data`, as a spec and as templates.
fn github_spec() -> (String, Vec<String>) {
    let list = include_str!("data/github-api.txt");
    let templates: Vec<String> =
        list.lines().filter(|l| l.starts_with('/')).map(str::to_owned).collect();
    let mut spec = String::from(
        "version: 1\nlisteners: [{ name: public, bind: 127.0.0.1:8080 }]\n\
         pools: [{ name: p, endpoints: [{ address: 127.0.0.1:9000 }] }]\nroutes:\n",
    );
    for (i, t) in templates.iter().enumerate() {
        spec.push_str(&format!("  - {{ name: g{i}, match: {{ path: \"{t}\" }}, to: p }}\n"));
    }
    (spec, templates)
}

/// One concrete request path per template.
fn concrete(templates: &[String]) -> Vec<String> {
    templates
        .iter()
        .map(|t| {
            t.split('/')
                .map(|s| match s {
                    s if s.starts_with("{*") => "docs/readme.md".to_owned(),
                    s if s.starts_with('{') => format!("v{}", s.len()),
                    s => s.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .map(|p| if p.is_empty() { "/".to_owned() } else { p })
        .collect()
}

fn requests_for(templates: &[String]) -> Vec<String> {
    // A fixed spread over the route set, concrete values for parameters.
    (0..1024)
        .map(|i| templates[(i * 7919) % templates.len()].replace("{id}", &format!("{}", 1000 + i)))
        .collect()
}

fn bench_lookup(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/../specs/platform.yaml")).unwrap();
    let platform = compile("platform.yaml", text);
    let platform_requests = [
        ("api.example.test", Method::Get, "/v1/contacts/123"),
        ("api.example.test", Method::Post, "/v1/contacts"),
        ("api.example.test", Method::Get, "/v1/search/suggest"),
        ("api.example.test", Method::Put, "/v1/deals/9/stage"),
        ("files.example.test", Method::Get, "/v1/files/a/b/c.pdf"),
        ("acme.hooks.example.test", Method::Post, "/in/stripe"),
        ("api.example.test", Method::Get, "/v1/unknown"),
    ];
    let mut captures = Captures::new();
    c.bench_function("platform: 7 lookups", |b| {
        b.iter(|| {
            for (host, method, path) in platform_requests {
                let facts = RequestFacts { listener: 0, host, method, path };
                black_box(platform.lookup(black_box(&facts), &mut captures));
            }
        })
    });

    let (text, templates) = github_spec();
    let plan = compile("github.yaml", text);
    let requests = concrete(&templates);
    let mut router = matchit::Router::new();
    for (i, t) in templates.iter().enumerate() {
        router.insert(t.as_str(), i).unwrap();
    }
    // Both routers must agree before their speed means anything.
    for path in &requests {
        let facts = RequestFacts { listener: 0, host: "", method: Method::Get, path };
        let ours = plan.lookup(&facts, &mut captures).map(|r| r as usize);
        assert_eq!(ours, router.at(path.as_str()).ok().map(|m| *m.value), "{path}");
    }
    let mut group = c.benchmark_group("github api: one lookup per route");
    group.bench_function("sluice", |b| {
        b.iter(|| {
            for path in &requests {
                let facts = RequestFacts { listener: 0, host: "", method: Method::Get, path };
                black_box(plan.lookup(black_box(&facts), &mut captures));
            }
        })
    });
    group.bench_function("matchit", |b| {
        b.iter(|| {
            for path in &requests {
                let _ = black_box(router.at(black_box(path.as_str())));
            }
        })
    });
    group.finish();

    let (text, templates) = generated_spec();
    let plan = compile("generated.yaml", text);
    let requests = requests_for(&templates);
    let mut group = c.benchmark_group("10k routes: 1024 lookups");
    group.bench_function("sluice", |b| {
        b.iter(|| {
            for path in &requests {
                let facts = RequestFacts { listener: 0, host: "", method: Method::Get, path };
                black_box(plan.lookup(black_box(&facts), &mut captures));
            }
        })
    });
    let mut router = matchit::Router::new();
    for (i, t) in templates.iter().enumerate() {
        router.insert(t.as_str(), i).unwrap();
    }
    group.bench_function("matchit", |b| {
        b.iter(|| {
            for path in &requests {
                let _ = black_box(router.at(black_box(path.as_str())));
            }
        })
    });
    group.finish();

    let bytes = plan.to_bytes();
    c.bench_function("10k routes: load plan file", |b| {
        b.iter(|| black_box(Plan::from_bytes(black_box(&bytes)).unwrap()))
    });
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
