//! The generated 10,000-route spec that the `check` bench and the
//! `plan_load` example share.

/// 10,000 routes over 20 hosts: per host 50 resources, each with a
/// collection (GET, POST), an item (GET, PUT, DELETE), a sub-collection and
/// a catch-all for its files, over two listeners and 20 pools.
pub fn generated_spec() -> String {
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
