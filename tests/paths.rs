//! Path tricks (fault kind K1): a request never reaches a pool by spelling
//! the path of another route in a way the gateway and the service read
//! differently. The guarded prefix has a pool of its own, so "never reaches
//! the guarded service" is checked on the upstream itself.
//!
//! Requests are written byte for byte on raw sockets, because HTTP client
//! libraries tidy paths before sending them.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Gateway, Upstream};

fn spec(public: &Upstream, admin: &Upstream, normalize: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
{normalize}pools:
  - {{ name: pub, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: adm, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - {{ name: public, match: {{ path: \"/public/{{*rest}}\" }}, to: pub }}
  - {{ name: admin, match: {{ path: \"/admin/{{*rest}}\" }}, to: adm }}
",
        public.address, admin.address
    )
}

/// Send `target` raw and return the status code.
fn raw_get(gateway: SocketAddr, target: &str) -> u16 {
    let mut stream = TcpStream::connect(gateway).expect("connect to the gateway");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head =
        format!("GET {target} HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

fn targets(upstream: &Upstream) -> Vec<String> {
    upstream.seen().into_iter().map(|s| s.target).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_matching_and_forwarded_resolved() {
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let gateway = Gateway::start(&spec(&public, &admin, ""));
    let addr = gateway.addr("public");

    for target in
        ["/public/../admin/users", "/public/%2e%2e/admin/users", "/public/%2E%2E/admin/users?x=1"]
    {
        let status = tokio::task::spawn_blocking({
            let target = target.to_owned();
            move || raw_get(addr, &target)
        })
        .await
        .unwrap();
        assert_eq!(status, 200, "{target}");
    }
    assert_eq!(targets(&admin), ["/admin/users", "/admin/users", "/admin/users?x=1"]);
    assert!(targets(&public).is_empty(), "the public pool saw {:?}", targets(&public));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_separators_are_refused_by_default_and_never_reach_a_pool() {
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let gateway = Gateway::start(&spec(&public, &admin, ""));
    let addr = gateway.addr("public");

    let cases = [
        ("/admin%2Fusers", 400),
        ("/admin%2fusers", 400),
        ("/admin%5Cusers", 400),
        ("/public/..%2Fadmin", 400),
        ("/public/..%5cadmin", 400),
        ("/public/%2e%2e%2fadmin", 400),
        ("/public/x%00", 400),
        ("/public/a%zz", 400),
        ("//admin/users", 200),
        ("/public//x", 200),
    ];
    for (target, want) in cases {
        let status = tokio::task::spawn_blocking(move || raw_get(addr, target)).await.unwrap();
        assert_eq!(status, want, "{target}");
    }
    assert_eq!(targets(&admin), ["/admin/users"]);
    assert_eq!(targets(&public), ["/public/x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_may_keep_or_decode_encoded_slashes() {
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let keep = "    normalize: { encoded_slash: keep }\n";
    let gateway = Gateway::start(&spec(&public, &admin, keep));
    let addr = gateway.addr("public");
    // Kept encoded, `%2F` is part of a segment: `/public/..%2Fadmin` stays under /public.
    let status =
        tokio::task::spawn_blocking(move || raw_get(addr, "/public/..%2fadmin")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(targets(&public), ["/public/..%2Fadmin"]);
    assert!(targets(&admin).is_empty());
    drop(gateway);

    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let decode = "    normalize: { encoded_slash: decode }\n";
    let gateway = Gateway::start(&spec(&public, &admin, decode));
    let addr = gateway.addr("public");
    // Decoded, it is a separator, and the dot segment then climbs out of /public.
    let status =
        tokio::task::spawn_blocking(move || raw_get(addr, "/public/..%2Fadmin/x")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(targets(&admin), ["/admin/x"]);
    assert!(targets(&public).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_in_the_request_target_is_refused() {
    // The Istio fault forwarded `%23s1` while matching without it; Sluice
    // refuses a target with a `#` before it reaches routing at all.
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let gateway = Gateway::start(&spec(&public, &admin, ""));
    let addr = gateway.addr("public");
    for target in ["/public/profile#../../admin", "/public/profile#s1", "/public/x?a=1#frag"] {
        let status = tokio::task::spawn_blocking(move || raw_get(addr, target)).await.unwrap();
        assert_eq!(status, 400, "{target}");
    }
    // An encoded `#` is data in a segment, and stays encoded.
    let status = tokio::task::spawn_blocking(move || raw_get(addr, "/public/a%23b")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(targets(&public), ["/public/a%23b"]);
    assert!(targets(&admin).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_segment_with_parameters_is_refused() {
    // A Tomcat-style backend reads `/public/..;/admin/x` as `/admin/x`, a
    // path the gateway's routes never saw: refused before routing.
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let gateway = Gateway::start(&spec(&public, &admin, ""));
    let addr = gateway.addr("public");
    for target in ["/public/..;/admin/x", "/public/%2e%2e;x=1/admin", "/public/.;/x"] {
        let status = tokio::task::spawn_blocking(move || raw_get(addr, target)).await.unwrap();
        assert_eq!(status, 400, "{target}");
    }
    let status = tokio::task::spawn_blocking(move || raw_get(addr, "/public/a;v=1")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(targets(&public), ["/public/a;v=1"]);
    assert!(targets(&admin).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_may_forward_the_path_as_the_client_sent_it() {
    let (public, admin) = (Upstream::start("pub").await, Upstream::start("adm").await);
    let spec = spec(&public, &admin, "").replace(
        "{ name: public, match: { path: \"/public/{*rest}\" }, to: pub }",
        "{ name: public, match: { path: \"/public/{*rest}\" }, to: pub, forward_path: original }",
    );
    assert!(spec.contains("forward_path: original"));
    let gateway = Gateway::start(&spec);
    let addr = gateway.addr("public");
    let status = tokio::task::spawn_blocking(move || raw_get(addr, "/public//%7euser/./x?q=1"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Routing used the normalised path; the upstream got the client's bytes.
    assert_eq!(targets(&public), ["/public//%7euser/./x?q=1"]);
    // A path that normalisation refuses is still refused.
    let status = tokio::task::spawn_blocking(move || raw_get(addr, "/public/a%2Fb")).await.unwrap();
    assert_eq!(status, 400);
}
