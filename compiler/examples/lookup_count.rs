//! Run a fixed number of route lookups, for instruction counting with
//! `valgrind --tool=callgrind`, which is repeatable where timings on a busy
//! machine are not: `lookup_count sluice|matchit github|generated ROUNDS`.

use std::hint::black_box;

use sluice_compiler::{check, Captures, Method, RequestFacts, SourceFile};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, set, rounds) = (&args[1], &args[2], args[3].parse::<usize>().unwrap());
    let templates: Vec<String> = match set.as_str() {
        "github" => include_str!("../benches/data/github-api.txt")
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(str::to_owned)
            .collect(),
        _ => (0..100)
            .flat_map(|s| (0..50).map(move |r| (s, r)))
            .flat_map(|(s, r)| [format!("/svc{s}/v1/res{r}"), format!("/svc{s}/v1/res{r}/{{id}}")])
            .collect(),
    };
    let requests: Vec<String> = templates
        .iter()
        .map(|t| {
            let p = t
                .split('/')
                .map(|s| match s {
                    s if s.starts_with("{*") => "docs/readme.md".to_owned(),
                    s if s.starts_with('{') => format!("v{}", s.len()),
                    s => s.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            if p.is_empty() {
                "/".to_owned()
            } else {
                p
            }
        })
        .collect();

    if which == "sluice" {
        let mut spec = String::from("version: 1\nlisteners: [{ name: l, bind: 127.0.0.1:8080 }]\npools: [{ name: p, endpoints: [{ address: 127.0.0.1:9000 }] }]\nroutes:\n");
        for (i, t) in templates.iter().enumerate() {
            spec.push_str(&format!("  - {{ name: r{i}, match: {{ path: \"{t}\" }}, to: p }}\n"));
        }
        let plan = check(SourceFile::new("s.yaml", spec)).plan.expect("valid");
        let mut captures = Captures::new();
        for _ in 0..rounds {
            for path in &requests {
                let facts = RequestFacts { listener: 0, host: "", method: Method::Get, path };
                black_box(plan.lookup(black_box(&facts), &mut captures));
            }
        }
    } else {
        let mut router = matchit::Router::new();
        for (i, t) in templates.iter().enumerate() {
            router.insert(t.as_str(), i).unwrap();
        }
        for _ in 0..rounds {
            for path in &requests {
                let _ = black_box(router.at(black_box(path.as_str())));
            }
        }
    }
}
