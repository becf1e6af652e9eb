//! Which route sets shadow a catch-all route, and which only seem to.

use crate::diagnostic::codes;
use crate::{check, SourceFile};

const HEAD: &str = "\
version: 1
listeners:
  - { name: public, bind: 127.0.0.1:8080 }
pools:
  - { name: p, endpoints: [{ address: 127.0.0.1:9001 }] }
routes:
";

/// The S0212 messages for a spec whose routes are given one per line as
/// `name path [methods]`.
fn shadowed(routes: &[&str]) -> Vec<String> {
    let mut text = HEAD.to_owned();
    for line in routes {
        let mut parts = line.split_whitespace();
        let (name, path) = (parts.next().unwrap(), parts.next().unwrap());
        let methods: Vec<&str> = parts.collect();
        let methods = if methods.is_empty() {
            String::new()
        } else {
            format!(", methods: [{}]", methods.join(", "))
        };
        text.push_str(&format!(
            "  - {{ name: {name}, match: {{ host: a.test, path: \"{path}\"{methods} }}, to: p }}\n"
        ));
    }
    let checked = check(SourceFile::new("spec.yaml", text));
    checked
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::SHADOWED_ROUTE)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn a_catch_all_covered_by_deeper_routes_is_shadowed() {
    let found = shadowed(&[
        "rest /files/{*rest}",
        "root /files",
        "item /files/{key}/{*more}",
        "slash /files//{*more}",
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("route `rest` can never match"), "{}", found[0]);
    assert!(found[0].contains("GET http://a.test/files goes to `root`"), "{}", found[0]);
}

#[test]
fn a_root_catch_all_needs_no_route_for_the_bare_root() {
    let found = shadowed(&["all /{*rest}", "slash //{*rest}", "first /{a}/{*rest}"]);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn one_uncovered_request_keeps_a_route_alive() {
    // `/files/` (the empty segment) still reaches `rest`.
    assert!(
        shadowed(&["rest /files/{*rest}", "root /files", "item /files/{key}/{*more}"]).is_empty()
    );
    // `/files/x/y` reaches `rest`: `item` takes one segment only.
    assert!(shadowed(&[
        "rest /files/{*rest}",
        "root /files",
        "item /files/{key}",
        "slash /files//{*more}",
    ])
    .is_empty());
    // `/files` itself reaches `rest`.
    assert!(shadowed(&[
        "rest /files/{*rest}",
        "item /files/{key}/{*more}",
        "slash /files//{*more}"
    ])
    .is_empty());
}

#[test]
fn methods_must_be_covered_too() {
    // `rest` takes every method; the others only GET, so POST still reaches it.
    let found = shadowed(&[
        "rest /files/{*rest}",
        "root /files GET",
        "item /files/{key}/{*more} GET",
        "slash /files//{*more} GET",
    ]);
    assert!(found.is_empty(), "{found:?}");

    // A GET-only catch-all under GET-only routes is shadowed.
    let found = shadowed(&[
        "rest /files/{*rest} GET",
        "root /files GET",
        "item /files/{key}/{*more} GET",
        "slash /files//{*more} GET",
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn more_specific_routes_alone_never_shadow() {
    // Every pair where one template is more general than the other: the
    // specific route wins its own requests, the general one keeps the rest.
    let pairs = [
        ("/users/{id}", "/users/me"),
        ("/{*rest}", "/users/{id}"),
        ("/users/{*rest}", "/users"),
        ("/users/{*rest}", "/users/{id}/{*more}"),
    ];
    for (general, specific) in pairs {
        let found = shadowed(&[&format!("g {general}"), &format!("s {specific}")]);
        assert!(found.is_empty(), "{general} vs {specific}: {found:?}");
    }
}

/// The same four routes on two listeners, with `item` on the given ones.
fn two_listener_spec(item_listeners: &str) -> Vec<String> {
    let text = format!(
        "version: 1
listeners:
  - {{ name: public, bind: 127.0.0.1:8080 }}
  - {{ name: admin, bind: 127.0.0.1:8081 }}
pools:
  - {{ name: p, endpoints: [{{ address: 127.0.0.1:9001 }}] }}
routes:
  - {{ name: rest, match: {{ path: \"/f/{{*r}}\" }}, to: p }}
  - {{ name: root, match: {{ path: /f }}, to: p }}
  - {{ name: item, listeners: {item_listeners}, match: {{ path: \"/f/{{k}}/{{*m}}\" }}, to: p }}
  - {{ name: slash, match: {{ path: \"/f//{{*m}}\" }}, to: p }}
"
    );
    let checked = check(SourceFile::new("spec.yaml", text));
    assert!(!checked.diagnostics.iter().any(|d| d.code.id < "S0200"), "{:?}", checked.diagnostics);
    checked
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::SHADOWED_ROUTE)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn other_listeners_do_not_cover() {
    assert!(two_listener_spec("[admin]").is_empty());
    let found = two_listener_spec("[public, admin]");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("on listener `public`"), "{}", found[0]);
}

mod soundness {
    //! Whenever the lint reports a route, the real trie never picks it for
    //! any request over a small alphabet that covers every distinction the
    //! generated templates make.

    use proptest::prelude::*;

    use crate::method::{Method, MethodSet};
    use crate::router::{Captures, HostPattern, RequestFacts, RouteKey, RouterBuilder};
    use crate::template::Template;
    use crate::{check, diagnostic::codes, SourceFile};

    const SEGMENTS: [&str; 5] = ["a", "b", "", "{p}", "{q}"];

    fn template() -> impl Strategy<Value = String> {
        (prop::collection::vec(0..SEGMENTS.len(), 0..3), any::<bool>()).prop_map(|(segs, catch)| {
            let mut t: String = segs.iter().map(|&i| format!("/{}", SEGMENTS[i])).collect();
            // Parameter names must differ within a template.
            let mut n = 0;
            while let Some(i) = t.find("{p}").or_else(|| t.find("{q}")) {
                t.replace_range(i..i + 3, &format!("{{v{n}}}"));
                n += 1;
            }
            if catch || t.is_empty() {
                t.push_str("/{*rest}");
            }
            t
        })
    }

    fn methods() -> impl Strategy<Value = Option<&'static str>> {
        prop::sample::select(vec![None, Some("[GET]"), Some("[GET, POST]"), Some("[POST]")])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn reported_routes_are_never_picked(
            random in prop::collection::vec((template(), methods()), 1..6),
            cover in prop::sample::select(vec!["", "/a", "/b"]),
            cover_methods in methods(),
        ) {
            // A catch-all with the three routes that can cover it, so that a
            // good share of the cases have a shadowed route, among random others.
            let mut routes = random;
            routes.push((format!("{cover}/{{*all}}"), cover_methods));
            for t in [format!("{cover}/{{seg}}/{{*more}}"), format!("{cover}//{{*more}}")] {
                routes.push((t, cover_methods));
            }
            if !cover.is_empty() {
                routes.push((cover.to_owned(), cover_methods));
            }
            let mut text = String::from(
                "version: 1\nlisteners: [{ name: l, bind: 127.0.0.1:8080 }]\n\
                 pools: [{ name: p, endpoints: [{ address: 127.0.0.1:9001 }] }]\nroutes:\n",
            );
            for (i, (path, methods)) in routes.iter().enumerate() {
                let methods = methods.map(|m| format!(", methods: {m}")).unwrap_or_default();
                text.push_str(&format!(
                    "  - {{ name: r{i}, match: {{ path: \"{path}\"{methods} }}, to: p }}\n"
                ));
            }
            let checked = check(SourceFile::new("spec.yaml", text));
            let reported: Vec<u32> = checked
                .diagnostics
                .iter()
                .filter(|d| d.code == codes::SHADOWED_ROUTE)
                .map(|d| d.pointer.split('/').nth(2).unwrap().parse().unwrap())
                .collect();
            if reported.is_empty() {
                return Ok(());
            }

            let mut builder = RouterBuilder::new();
            for (i, (path, methods)) in routes.iter().enumerate() {
                let template = Template::parse(path).unwrap();
                let methods = match methods {
                    None => MethodSet::ANY,
                    Some(m) if m.contains("POST") && m.contains("GET") =>
                        MethodSet::of([Method::Get, Method::Post]),
                    Some(m) if m.contains("POST") => MethodSet::of([Method::Post]),
                    Some(_) => MethodSet::of([Method::Get]),
                };
                let key = RouteKey { host: &HostPattern::Any, template: &template, listeners: 1, methods };
                let _ = builder.insert(i as u32, &key);
            }
            let router = builder.build();

            let alphabet = ["a", "b", "", "c"];
            let mut paths = vec![String::from("/")];
            let mut frontier = vec![String::new()];
            for _ in 0..4 {
                let mut next = Vec::new();
                for p in &frontier {
                    for s in alphabet {
                        next.push(format!("{p}/{s}"));
                    }
                }
                paths.extend(next.iter().cloned());
                frontier = next;
            }
            let mut captures = Captures::new();
            for path in &paths {
                for method in [Method::Get, Method::Post, Method::Other] {
                    let facts = RequestFacts { listener: 0, host: "h.test", method, path };
                    if let Some(r) = router.lookup(&facts, &mut captures) {
                        prop_assert!(!reported.contains(&r), "r{r} reported but picked for {method:?} {path}");
                    }
                }
            }
        }
    }
}
