use proptest::prelude::*;

use super::*;
use crate::condition::Pattern;

struct Case {
    host: Option<&'static str>,
    path: &'static str,
    methods: Option<Vec<Method>>,
    listeners: u64,
}

fn route(host: Option<&'static str>, path: &'static str) -> Case {
    Case { host, path, methods: None, listeners: u64::MAX }
}

fn build(cases: &[Case]) -> (Router, Vec<Vec<String>>) {
    let mut b = RouterBuilder::new();
    let mut names = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let template = Template::parse(c.path).unwrap();
        let host = HostPattern::parse(c.host);
        let methods = c.methods.clone().map_or(MethodSet::ANY, MethodSet::of);
        let key = RouteKey { host: &host, template: &template, listeners: c.listeners, methods };
        b.insert(i as u32, &key).unwrap_or_else(|o| panic!("route {i} ties with {o}"));
        names.push(template.param_names());
    }
    (b.build(), names)
}

fn find(
    router: &Router,
    listener: usize,
    host: &str,
    method: Method,
    path: &str,
) -> Option<(u32, Vec<String>)> {
    let mut caps = Captures::new();
    let facts = RequestFacts { listener, host: host_name(host), method, path };
    let r = router.lookup(&facts, &mut caps)?;
    let values =
        caps.ranges().iter().map(|&(s, e)| path[s as usize..e as usize].to_owned()).collect();
    Some((r, values))
}

#[test]
fn precedence_follows_the_documented_rules() {
    let (r, _) = build(&[
        route(None, "/v1/{id}"),               // 0
        route(None, "/v1/search"),             // 1: literal beats param
        route(None, "/v1/{*rest}"),            // 2
        route(Some("api.test"), "/v1/{id}"),   // 3: exact host beats any host
        route(Some("*.test"), "/v1/{id}"),     // 4
        route(Some("*.api.test"), "/v1/{id}"), // 5: longer wildcard beats shorter
        route(None, "/files/{*key}"),          // 6
        route(None, "/files"),                 // 7: an exact end beats an empty catch-all
    ]);
    let get = |host, path| find(&r, 0, host, Method::Get, path).map(|(id, _)| id);
    assert_eq!(get("", "/v1/search"), Some(1));
    assert_eq!(get("", "/v1/42"), Some(0));
    assert_eq!(get("", "/v1/a/b"), Some(2));
    assert_eq!(get("", "/v1"), Some(2));
    assert_eq!(get("api.test", "/v1/42"), Some(3));
    assert_eq!(get("other.test", "/v1/42"), Some(4));
    assert_eq!(get("x.api.test", "/v1/42"), Some(5));
    // Host outranks path: the exact host's parameter beats the host-less literal.
    assert_eq!(get("api.test", "/v1/search"), Some(3));
    // A host-specific tree without a match falls back to less specific hosts.
    assert_eq!(get("api.test", "/v1/a/b"), Some(2));
    assert_eq!(get("", "/files"), Some(7));
    assert_eq!(get("", "/files/"), Some(6));
    assert_eq!(get("", "/files/a/b"), Some(6));
}

#[test]
fn catch_all_matches_an_empty_remainder() {
    let (r, _) = build(&[route(None, "/{*rest}")]);
    for (path, rest) in [("/", ""), ("/a", "a"), ("/a/b/", "a/b/")] {
        assert_eq!(find(&r, 0, "", Method::Get, path), Some((0, vec![rest.to_owned()])), "{path}");
    }
    assert_eq!(find(&r, 0, "", Method::Get, "no-slash"), None);
}

#[test]
fn params_need_a_non_empty_segment_and_trailing_slashes_are_strict() {
    let (r, _) = build(&[route(None, "/users/{id}"), route(None, "/teams/")]);
    assert_eq!(find(&r, 0, "", Method::Get, "/users/7"), Some((0, vec!["7".into()])));
    assert_eq!(find(&r, 0, "", Method::Get, "/users/"), None);
    assert_eq!(find(&r, 0, "", Method::Get, "/teams/"), Some((1, vec![])));
    assert_eq!(find(&r, 0, "", Method::Get, "/teams"), None);
}

#[test]
fn hosts_ignore_case_port_and_trailing_dot() {
    let (r, _) = build(&[route(Some("API.Example.test"), "/"), route(Some("*.hooks.test"), "/")]);
    for host in
        ["api.example.test", "API.EXAMPLE.TEST", "api.example.test:8080", "api.example.test."]
    {
        assert_eq!(find(&r, 0, host, Method::Get, "/").map(|m| m.0), Some(0), "{host}");
    }
    assert_eq!(find(&r, 0, "a.b.HOOKS.test:1", Method::Get, "/").map(|m| m.0), Some(1));
    // A wildcard needs at least one label before its suffix.
    assert_eq!(find(&r, 0, "hooks.test", Method::Get, "/"), None);
    assert_eq!(find(&r, 0, "[::1]:80", Method::Get, "/"), None);
}

#[test]
fn methods_and_listeners_filter_and_backtrack() {
    let (r, _) = build(&[
        Case { methods: Some(vec![Method::Post]), ..route(None, "/a/b") },
        route(None, "/a/{x}"),
        Case { methods: Some(vec![Method::Get]), ..route(None, "/a/{x}") },
        Case { listeners: 0b10, ..route(None, "/admin") },
    ]);
    assert_eq!(find(&r, 0, "", Method::Post, "/a/b").map(|m| m.0), Some(0));
    // GET /a/b is not served by the POST-only literal, so the walk backtracks to the param.
    assert_eq!(find(&r, 0, "", Method::Get, "/a/b").map(|m| m.0), Some(2));
    assert_eq!(find(&r, 0, "", Method::Put, "/a/b").map(|m| m.0), Some(1));
    assert_eq!(find(&r, 0, "", Method::Other, "/a/b").map(|m| m.0), Some(1));
    assert_eq!(find(&r, 0, "", Method::Get, "/admin"), None);
    assert_eq!(find(&r, 1, "", Method::Get, "/admin").map(|m| m.0), Some(3));
}

#[test]
fn ties_are_refused_with_the_earlier_route() {
    let mut b = RouterBuilder::new();
    let t1 = Template::parse("/a/{x}").unwrap();
    let t2 = Template::parse("/a/{y}").unwrap();
    let any = HostPattern::Any;
    let get = MethodSet::of([Method::Get]);
    let get_post = MethodSet::of([Method::Get, Method::Post]);
    let put = MethodSet::of([Method::Put]);
    let key = |t, m, l| RouteKey { host: &any, template: t, listeners: l, methods: m };
    assert_eq!(b.insert(0, &key(&t1, get, 1)), Ok(()));
    assert_eq!(b.insert(1, &key(&t2, get_post, 1)), Err(0), "parameter names do not matter");
    assert_eq!(b.insert(2, &key(&t2, put, 1)), Ok(()), "disjoint methods do not tie");
    assert_eq!(b.insert(3, &key(&t2, get, 2)), Ok(()), "disjoint listeners do not tie");
    assert_eq!(
        b.insert(4, &key(&t2, MethodSet::ANY, 1)),
        Ok(()),
        "a method condition outranks none"
    );
}

#[test]
fn router_survives_a_serialisation_round_trip_and_validates() {
    let (r, _) = build(&[route(None, "/a/{x}"), route(Some("h.test"), "/b")]);
    let back: Router = postcard::from_bytes(&postcard::to_allocvec(&r).unwrap()).unwrap();
    assert!(back.validate(2).is_ok());
    assert!(back.validate(1).is_err(), "a route index past the end is refused");
    assert_eq!(find(&back, 0, "", Method::Get, "/a/1").map(|m| m.0), Some(0));
}

// ---- Property: the trie agrees with an obviously correct reference matcher ----

#[derive(Debug, Clone)]
struct GenRoute {
    host: Option<&'static str>,
    segments: Vec<Segment>,
    /// Regex constraints by segment index.
    constraints: Vec<(usize, &'static str)>,
    methods: Option<Vec<Method>>,
    listeners: u64,
    /// A condition on header `x-a`: exact `1`, present, or absent.
    header: Option<u8>,
}

fn header_condition(kind: u8) -> crate::condition::Condition {
    use crate::condition::{Condition, Rule, Source};
    let rule = match kind {
        0 => Rule::Exact("1".into()),
        1 => Rule::Present,
        _ => Rule::Absent,
    };
    Condition { source: Source::Header("x-a".into()), rule }
}

thread_local! {
    static X_A: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// The `x-a` header of the request the reference matcher is looking at.
fn header_value() -> Option<&'static str> {
    X_A.with(|v| v.get())
}

/// A request's only header, `x-a`, for the property test.
struct XA(Option<&'static str>);

impl crate::condition::RequestFields for XA {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        name == "x-a" && self.0.is_some_and(each)
    }
    fn query(&self) -> &str {
        ""
    }
}

/// Two overlapping constraints, so their fixed order (by regex text) is exercised.
const CONSTRAINTS: [&str; 2] = ["[a-c]", "[ab]"];

fn gen_segment() -> impl Strategy<Value = (Segment, Option<&'static str>)> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "c", ""]).prop_map(|s| (Segment::Literal(s.into()), None)),
        2 => Just((Segment::Param(String::new()), None)),
        1 => prop::sample::select(CONSTRAINTS.to_vec()).prop_map(|r| (Segment::Param(String::new()), Some(r))),
    ]
}

fn gen_route() -> impl Strategy<Value = GenRoute> {
    (
        prop::sample::select(vec![None, Some("a.test"), Some("*.test"), Some("*.a.test")]),
        prop::collection::vec(gen_segment(), 1..4),
        any::<bool>(),
        prop::option::of(prop::sample::subsequence(vec![Method::Get, Method::Post], 1..=2)),
        prop::sample::select(vec![1u64, 2, u64::MAX]),
        prop::option::of(0u8..3),
    )
        .prop_map(|(host, generated, catch_all, methods, listeners, header)| {
            let mut segments = Vec::new();
            let mut constraints = Vec::new();
            // Name params uniquely so the template is valid.
            for (i, (mut s, constraint)) in generated.into_iter().enumerate() {
                if let Segment::Param(n) = &mut s {
                    *n = format!("p{i}");
                }
                if let Some(r) = constraint {
                    constraints.push((i, r));
                }
                segments.push(s);
            }
            if catch_all {
                segments.push(Segment::CatchAll("rest".into()));
            }
            GenRoute { host, segments, constraints, methods, listeners, header }
        })
}

/// Precedence key of `route` for `path`, with its captures, or `None` if it does not match.
fn reference_match(
    route: &GenRoute,
    listener: usize,
    host: &str,
    method: Method,
    path: &str,
) -> Option<(Vec<u8>, Vec<String>)> {
    if route.listeners & (1 << listener) == 0 {
        return None;
    }
    if let Some(m) = &route.methods {
        if !m.contains(&method) {
            return None;
        }
    }
    let x_a = header_value();
    if let Some(kind) = route.header {
        let holds = match kind {
            0 => x_a == Some("1"),
            1 => x_a.is_some(),
            _ => x_a.is_none(),
        };
        if !holds {
            return None;
        }
    }
    let host = host.to_ascii_lowercase();
    let mut key = match route.host {
        None => vec![1, 0],
        Some(h) => match h.strip_prefix('*') {
            Some(suffix) if host.len() > suffix.len() && host.ends_with(suffix) => {
                vec![2, suffix.len() as u8]
            }
            Some(_) => return None,
            None if host == h => vec![3, 0],
            None => return None,
        },
    };
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let mut captures = Vec::new();
    let mut i = 0;
    // Ranks per position: end 20 > literal 10 > constraints (in regex-text
    // order: 8, 7) > plain parameter 2 > catch-all 1.
    for (index, seg) in route.segments.iter().enumerate() {
        let constraint = route.constraints.iter().find(|(k, _)| *k == index).map(|(_, r)| *r);
        match seg {
            Segment::CatchAll(_) => {
                captures.push(parts[i.min(parts.len())..].join("/"));
                key.push(1);
                i = parts.len();
                break;
            }
            _ if i >= parts.len() => return None,
            Segment::Literal(l) if l == parts[i] => key.push(10),
            Segment::Param(_) if !parts[i].is_empty() => {
                if let Some(r) = constraint {
                    if !Pattern::new(r).unwrap().is_match(parts[i]) {
                        return None;
                    }
                    let mut sorted = CONSTRAINTS;
                    sorted.sort_unstable();
                    key.push(8 - sorted.iter().position(|s| *s == r).unwrap() as u8);
                } else {
                    key.push(2);
                }
                captures.push(parts[i].to_owned());
            }
            _ => return None,
        }
        i += 1;
    }
    if !matches!(route.segments.last(), Some(Segment::CatchAll(_))) {
        if i != parts.len() {
            return None;
        }
        key.push(20);
    }
    key.push(u8::from(route.methods.is_some()) + u8::from(route.header.is_some()));
    Some((key, captures))
}

fn gen_request(
) -> impl Strategy<Value = ((usize, &'static str, Method, String), Option<&'static str>)> {
    (gen_request_line(), prop::sample::select(vec![None, Some("1"), Some("2")]))
}

fn gen_request_line() -> impl Strategy<Value = (usize, &'static str, Method, String)> {
    (
        0usize..2,
        prop::sample::select(vec!["", "a.test", "A.TEST", "b.a.test", "c.test"]),
        prop::sample::select(vec![Method::Get, Method::Post, Method::Put]),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "", "x"]), 0..5),
    )
        .prop_map(|(l, h, m, segs)| (l, h, m, format!("/{}", segs.join("/"))))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trie_agrees_with_reference(routes in prop::collection::vec(gen_route(), 1..12),
                                  requests in prop::collection::vec(gen_request(), 1..24)) {
        let mut builder = RouterBuilder::new();
        let mut accepted = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let constraints =
                r.constraints.iter().map(|(i, re)| (*i, Pattern::new(re).unwrap())).collect();
            let template =
                Template { segments: r.segments.clone(), constraints, case_insensitive: false };
            let host = HostPattern::parse(r.host);
            let methods = r.methods.clone().map_or(MethodSet::ANY, MethodSet::of);
            let key = RouteKey { host: &host, template: &template, listeners: r.listeners, methods };
            let conditions = r.header.map(header_condition).into_iter().collect();
            if builder.insert_with_conditions(i as u32, &key, conditions).is_ok() {
                accepted.push(i);
            }
        }
        let router = builder.build();

        for ((listener, host, method, path), x_a) in requests {
            X_A.with(|v| v.set(x_a));
            let mut best: Option<(Vec<u8>, usize, Vec<String>)> = None;
            for &i in &accepted {
                if let Some((key, caps)) = reference_match(&routes[i], listener, host, method, &path) {
                    match &best {
                        Some((k, j, _)) if *k == key => {
                            prop_assert!(false, "reference tie between {} and {} for {path}", j, i);
                        }
                        Some((k, _, _)) if *k > key => {}
                        _ => best = Some((key, i, caps)),
                    }
                }
            }
            let want = best.map(|(_, i, caps)| (i as u32, caps));
            let got = {
                let mut caps = Captures::new();
                let facts = RequestFacts { listener, host: host_name(host), method, path: &path };
                router.lookup_with(&facts, &XA(x_a), &mut caps).map(|r| {
                    let values = caps.ranges().iter().map(|&(s, e)| path[s as usize..e as usize].to_owned()).collect();
                    (r, values)
                })
            };
            prop_assert_eq!(got, want, "{} {} {:?} on listener {}", host, path, method, listener);
        }
    }
}

// ---- Header, query and cookie conditions ----

mod conditions {
    use super::*;
    use crate::condition::{Condition, Pattern, RequestFields, Rule, Source};

    struct Req(Vec<(&'static str, &'static str)>, &'static str);

    impl RequestFields for Req {
        fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
            self.0.iter().filter(|(n, _)| *n == name).any(|(_, v)| each(v))
        }
        fn query(&self) -> &str {
            self.1
        }
    }

    fn header(name: &str, rule: Rule) -> Condition {
        Condition { source: Source::Header(name.into()), rule }
    }

    type Spec = (&'static str, Option<Vec<Method>>, Vec<Condition>);

    fn build(routes: &[Spec]) -> Result<Router, (u32, u32)> {
        let mut b = RouterBuilder::new();
        for (i, (path, methods, conditions)) in routes.iter().enumerate() {
            let template = Template::parse(path).unwrap();
            let methods = methods.clone().map_or(MethodSet::ANY, MethodSet::of);
            let key =
                RouteKey { host: &HostPattern::Any, template: &template, listeners: 1, methods };
            b.insert_with_conditions(i as u32, &key, conditions.clone())
                .map_err(|o| (i as u32, o))?;
        }
        Ok(b.build())
    }

    fn find(r: &Router, method: Method, path: &str, req: &Req) -> Option<u32> {
        let facts = RequestFacts { listener: 0, host: "", method, path };
        r.lookup_with(&facts, req, &mut Captures::new())
    }

    #[test]
    fn more_conditions_win_and_failing_ones_fall_back() {
        let beta = header("x-beta", Rule::Present);
        let v2 = header("x-version", Rule::Exact("2".into()));
        let routes = [
            ("/api", None, vec![]),
            ("/api", None, vec![beta.clone()]),
            ("/api", None, vec![beta.clone(), v2.clone()]),
            ("/api", Some(vec![Method::Post]), vec![header("x-version", Rule::Exact("1".into()))]),
        ];
        // The outcome does not depend on the order routes are inserted in.
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let shuffled: Vec<_> = order.iter().map(|&i| routes[i].clone()).collect();
            let r = build(&shuffled).unwrap();
            let id = |want: usize| order.iter().position(|&i| i == want).map(|p| p as u32);
            let none = Req(vec![], "");
            let b = Req(vec![("x-beta", "1")], "");
            let bv = Req(vec![("x-beta", "1"), ("x-version", "2")], "");
            assert_eq!(find(&r, Method::Get, "/api", &none), id(0));
            assert_eq!(find(&r, Method::Get, "/api", &b), id(1));
            assert_eq!(find(&r, Method::Get, "/api", &bv), id(2));
            // Rank 2 both: the POST route and the two-header route; each request meets one.
            let v1 = Req(vec![("x-beta", "1"), ("x-version", "1")], "");
            assert_eq!(find(&r, Method::Post, "/api", &v1), id(3));
            assert_eq!(find(&r, Method::Post, "/api", &bv), id(2));
            assert_eq!(find(&r, Method::Post, "/api", &b), id(1));
        }
    }

    #[test]
    fn conditions_that_cannot_both_hold_do_not_tie() {
        let one = header("x-version", Rule::Exact("1".into()));
        let two = header("x-version", Rule::Exact("2".into()));
        let absent = header("x-version", Rule::Absent);
        let r =
            build(&[("/a", None, vec![one]), ("/a", None, vec![two]), ("/a", None, vec![absent])])
                .unwrap();
        assert_eq!(find(&r, Method::Get, "/a", &Req(vec![("x-version", "2")], "")), Some(1));
        assert_eq!(find(&r, Method::Get, "/a", &Req(vec![], "")), Some(2));
        assert_eq!(find(&r, Method::Get, "/a", &Req(vec![("x-version", "3")], "")), None);
    }

    #[test]
    fn conditions_that_can_both_hold_tie() {
        let p = header("x-a", Rule::Present);
        let q = Condition { source: Source::Query("debug".into()), rule: Rule::Present };
        assert_eq!(
            build(&[("/a", None, vec![p.clone()]), ("/a", None, vec![q])]).err(),
            Some((1, 0))
        );
        // A method condition and a header condition rank the same, and a GET with the header meets both.
        assert_eq!(
            build(&[("/a", Some(vec![Method::Get]), vec![]), ("/a", None, vec![p])]).err(),
            Some((1, 0))
        );
        let re = header("x-a", Rule::Regex(Pattern::new("[0-9]+").unwrap()));
        let prefix = header("x-a", Rule::Prefix("1".into()));
        assert_eq!(
            build(&[("/a", None, vec![re]), ("/a", None, vec![prefix])]).err(),
            Some((1, 0))
        );
    }

    #[test]
    fn query_conditions_route() {
        let q =
            Condition { source: Source::Query("format".into()), rule: Rule::Exact("csv".into()) };
        let r = build(&[("/export", None, vec![]), ("/export", None, vec![q])]).unwrap();
        assert_eq!(find(&r, Method::Get, "/export", &Req(vec![], "format=csv")), Some(1));
        assert_eq!(find(&r, Method::Get, "/export", &Req(vec![], "format=json")), Some(0));
    }
}

#[test]
fn constrained_parameters_rank_between_literals_and_plain_parameters() {
    let mut b = RouterBuilder::new();
    let routes = ["/v1/{id}", "/v1/{id:[0-9]+}", "/v1/me", "/v1/{slug:[a-z]+}", "/v1/{*rest}"];
    for (i, path) in routes.iter().enumerate() {
        let template = Template::parse(path).unwrap();
        let key = RouteKey {
            host: &HostPattern::Any,
            template: &template,
            listeners: u64::MAX,
            methods: MethodSet::ANY,
        };
        b.insert(i as u32, &key).unwrap();
    }
    let r = b.build();
    let get = |path| find(&r, 0, "", Method::Get, path);
    assert_eq!(get("/v1/me"), Some((2, vec![])));
    assert_eq!(get("/v1/42"), Some((1, vec!["42".into()])));
    assert_eq!(get("/v1/abc"), Some((3, vec!["abc".into()])));
    assert_eq!(get("/v1/a-1"), Some((0, vec!["a-1".into()])));
    assert_eq!(get("/v1/a/b"), Some((4, vec!["a/b".into()])));
}

#[test]
fn many_literal_children_are_found_by_hash_before_and_after_a_round_trip() {
    let mut b = RouterBuilder::new();
    let names: Vec<String> = (0..40).map(|i| format!("svc{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let template = Template::parse(&format!("/{name}/{{id}}")).unwrap();
        let key = RouteKey {
            host: &HostPattern::Any,
            template: &template,
            listeners: 1,
            methods: MethodSet::ANY,
        };
        b.insert(i as u32, &key).unwrap();
    }
    let built = b.build();
    let mut back: Router = postcard::from_bytes(&postcard::to_allocvec(&built).unwrap()).unwrap();
    for r in [&built, {
        back.prepare();
        &back
    }] {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                find(r, 0, "", Method::Get, &format!("/{name}/7")).map(|m| m.0),
                Some(i as u32)
            );
        }
        for miss in ["/svc40/7", "/svc/7", "/", "/svc1x/7", "/SVC1/7"] {
            assert_eq!(find(r, 0, "", Method::Get, miss), None, "{miss}");
        }
    }
}

#[test]
fn case_insensitive_literals_rank_below_exact_ones_and_still_tie() {
    let insert = |b: &mut RouterBuilder, i: u32, path: &str, ci: bool| {
        let mut template = Template::parse(path).unwrap();
        template.case_insensitive = ci;
        let key = RouteKey {
            host: &HostPattern::Any,
            template: &template,
            listeners: 1,
            methods: MethodSet::ANY,
        };
        b.insert(i, &key)
    };
    let mut b = RouterBuilder::new();
    insert(&mut b, 0, "/api/Users", true).unwrap();
    insert(&mut b, 1, "/api/users", false).unwrap();
    insert(&mut b, 2, "/api/{x}", false).unwrap();
    assert_eq!(insert(&mut b, 3, "/API/USERS", true), Err(0), "same folded path ties");
    let r = b.build();
    let get = |path| find(&r, 0, "", Method::Get, path).map(|m| m.0);
    assert_eq!(get("/api/users"), Some(1));
    assert_eq!(get("/API/uSeRs"), Some(0));
    assert_eq!(get("/api/other"), Some(2));
    assert_eq!(get("/Api/other"), None, "the first segment of route 2 is exact");
}

#[test]
fn segment_words_from_a_path_match_those_of_the_segment() {
    let paths = [
        "/",
        "/a",
        "/a/",
        "/abcdefgh",
        "/abcdefghi/x",
        "/abcdefghijklmnopq/r",
        "/x/abcdefgh/",
        "/caf%C3%A9/\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        "/v1/contacts/123/notes",
        "//a",
    ];
    for path in paths {
        let bytes = path.as_bytes();
        let mut at = 1;
        loop {
            let (end, words) = SegmentWords::split(bytes, at);
            let want = bytes[at..].iter().position(|&b| b == b'/').map_or(bytes.len(), |i| at + i);
            assert_eq!(end, want, "{path} at {at}");
            assert_eq!(words, SegmentWords::of(&bytes[at..end]), "{path} at {at}");
            if end == bytes.len() {
                break;
            }
            at = end + 1;
        }
    }
}

#[test]
fn hot_nodes_mirror_their_nodes_and_survive_a_round_trip() {
    // `Case` holds `'static` paths; a test can leak a few.
    let many: Vec<&'static str> = (0..20)
        .map(|i| &*Box::leak(format!("/long-service-number-{i:02}/x").into_boxed_str()))
        .collect();
    // Long literals that share their first and last eight bytes, enough
    // siblings for a hash index, and a node with a catch-all (cold).
    let mut paths = vec![
        "/shared-prefix-AAAA-shared-suffix/{id}",
        "/shared-prefix-BBBB-shared-suffix/{id}",
        "/shared-prefix-AAAA-shared-suffix",
        "/files/{*rest}",
        "/files/exact",
        "/a/",
        "/a/{x}/b",
    ];
    paths.extend(&many);
    let cases: Vec<Case> = paths.iter().map(|p| route(None, p)).collect();
    let (built, _) = build(&cases);
    let back: Router = postcard::from_bytes(&postcard::to_allocvec(&built).unwrap()).unwrap();
    assert_eq!(built.hot, back.hot);
    assert_eq!(built.slots, back.slots);
    assert_eq!(built.hot.len(), built.nodes.len());
    assert_eq!(built.nodes, back.nodes);
    assert_eq!(built.lits, back.lits);
    for (i, hot) in built.hot.iter().enumerate() {
        let node = built.spans(i as u32).unwrap();
        assert_eq!((hot.lit_start, hot.lit_len), (node.literals.start, node.literals.len));
        assert_eq!(hot.param, node.param.unwrap_or(Hot::NONE));
        let cold = node.catch_all.len != 0 || node.folded.len != 0;
        assert_eq!(hot.flags & Hot::COLD != 0, cold);
        assert_eq!(hot.shift != 0, node.literals.len as usize >= MIN_INDEXED);
    }
    for r in [&built, &back] {
        let get = |path: &str| find(r, 0, "", Method::Get, path);
        assert_eq!(get("/shared-prefix-AAAA-shared-suffix/7").unwrap().0, 0);
        assert_eq!(get("/shared-prefix-BBBB-shared-suffix/7").unwrap().0, 1);
        assert_eq!(get("/shared-prefix-AAAA-shared-suffix").unwrap().0, 2);
        assert_eq!(get("/shared-prefix-CCCC-shared-suffix/7"), None);
        assert_eq!(get("/files/exact").unwrap().0, 4);
        assert_eq!(get("/files/exact/more"), Some((3, vec!["exact/more".into()])));
        assert_eq!(get("/files/"), Some((3, vec!["".into()])));
        assert_eq!(get("/a/").unwrap().0, 5);
        assert_eq!(get("/a/q/b"), Some((6, vec!["q".into()])));
        assert_eq!(get("/a//b"), None, "a parameter needs a non-empty segment");
        assert_eq!(get("/a"), None);
        for (i, p) in many.iter().enumerate() {
            assert_eq!(get(p).unwrap().0, 7 + i as u32, "{p}");
            assert_eq!(get(&p.replace("/x", "/y")), None);
        }
        assert_eq!(get("/long-service-number-20/x"), None);
    }
}

#[test]
fn segment_words_near_the_end_of_longer_paths() {
    let paths = [
        "/abcdefgh/ab",
        "/0123456789/a/",
        "/ab/cdefghijkl",
        "/abcdefg/",
        "/a/b/c/d/e",
        "/x/abcdefghijklmnop",
    ];
    for path in paths {
        let bytes = path.as_bytes();
        for at in 1..=bytes.len() {
            let (end, words) = SegmentWords::split(bytes, at);
            let want = bytes[at..].iter().position(|&b| b == b'/').map_or(bytes.len(), |i| at + i);
            assert_eq!(end, want, "{path} at {at}");
            assert_eq!(words, SegmentWords::of(&bytes[at..end]), "{path} at {at}");
        }
    }
}

#[test]
fn ports_are_decimal_numbers_up_to_65535() {
    use crate::router::{host_port, parse_port, split_host_port};
    for (text, port) in [("80", Some(80)), ("080", Some(80)), ("0", Some(0)), ("000", Some(0))] {
        assert_eq!(parse_port(text), port, "{text}");
    }
    assert_eq!(parse_port("0000000000065535"), Some(65535));
    for text in ["", "65536", "99999999999999999999", "+80", "8 0", "-1", "0x50"] {
        assert_eq!(parse_port(text), None, "{text}");
    }
    for (host, port) in [
        ("a.test", Some(80)),
        ("a.test:", Some(80)),
        ("a.test:08443", Some(8443)),
        (" a.test:8443 ", Some(8443)),
        ("[::1]", Some(80)),
        ("[::1]:0443", Some(443)),
        ("a.test:65536", None),
        ("a.test:1:2", None),
        ("[::1", None),
        ("[::1]x", None),
    ] {
        assert_eq!(host_port(host), port, "{host}");
    }
    assert_eq!(split_host_port("a.test:08443"), ("a.test", Some(8443)));
    assert_eq!(split_host_port("a.test:+80"), ("a.test:+80", None));
}

#[test]
fn a_host_header_must_name_a_host() {
    use crate::router::check_host_header;
    for host in ["", " ", ":80", ":", "[]", "[]:80", "a.test:65536", "a b", "a@b"] {
        assert!(check_host_header(host).is_err(), "{host:?}");
    }
    for (host, kept) in [(" a.test ", "a.test"), ("a.test:", "a.test:"), ("[::1]:080", "[::1]:080")]
    {
        assert_eq!(check_host_header(host), Ok(kept), "{host:?}");
    }
}

/// The host functions as first written, with `str` searches: the byte-wise
/// ones that replaced them (they run on every request) must agree.
mod host_oracle {
    pub fn parse_port(digits: &str) -> Option<u16> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return Some(0);
        }
        if significant.len() > 5 {
            return None;
        }
        significant.parse().ok()
    }

    pub fn host_port(host: &str) -> Option<u16> {
        let host = host.trim_matches([' ', '\t']);
        let after_name = match host.strip_prefix('[') {
            Some(literal) => &literal[literal.find(']')? + 1..],
            None => host.find(':').map_or("", |colon| &host[colon..]),
        };
        match after_name.strip_prefix(':') {
            Some("") => Some(80),
            Some(port) => parse_port(port),
            None if after_name.is_empty() => Some(80),
            None => None,
        }
    }

    pub fn names_a_host(value: &str) -> bool {
        let host = value.trim_matches([' ', '\t']);
        let name = match host.strip_prefix('[') {
            Some(literal) => literal.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        !name.is_empty()
    }

    pub fn host_name(header: &str) -> &str {
        let header = header.trim_matches([' ', '\t']);
        let name = if header.starts_with('[') {
            header.find(']').map_or(header, |end| &header[..=end])
        } else {
            header.rsplit_once(':').map_or(header, |(name, _)| name)
        };
        name.strip_suffix('.').unwrap_or(name)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn host_parsing_agrees_with_the_str_searches(
        host in "[ \t]{0,2}\\[?[a-z0-9.:\\]\\[é]{0,12}(:[0-9+]{0,6})?[ \t]{0,2}",
        digits in "0{0,12}[0-9+ ]{0,8}",
    ) {
        prop_assert_eq!(crate::router::parse_port(&digits), host_oracle::parse_port(&digits));
        use crate::router::{check_host_header, host_name, host_port, parse_port};
        prop_assert_eq!(host_port(&host), host_oracle::host_port(&host));
        let port = host.rsplit(':').next().unwrap_or_default();
        prop_assert_eq!(parse_port(port), host_oracle::parse_port(port));
        prop_assert_eq!(host_name(&host), host_oracle::host_name(&host));
        let authority = host.trim_matches([' ', '\t']).bytes().all(|b| {
            b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
        });
        let expected = authority && host_oracle::names_a_host(&host)
            && host_oracle::host_port(&host).is_some();
        prop_assert_eq!(check_host_header(&host).is_ok(), expected);
    }
}
