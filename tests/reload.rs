//! Hot reload and shutdown (fault kind K13: B51 to B54), end to end.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::{client, raw, request, send, statuses, Gateway, Upstream};

/// A spec with listener `public`, pool `backend` on `fast`, pool `slow` on
/// `slow`, and the given routes (YAML list items).
fn spec(fast: SocketAddr, slow: SocketAddr, listeners: &str, routes: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
{listeners}pools:
  - name: backend
    endpoints: [{{ address: \"{fast}\" }}]
  - name: slow
    endpoints: [{{ address: \"{slow}\" }}]
routes:
  - name: slow
    match: {{ path: \"/slow/{{*rest}}\" }}
    to: slow
{routes}"
    )
}

fn route(name: &str, path: &str) -> String {
    format!("  - name: {name}\n    match: {{ path: \"{path}\" }}\n    to: backend\n")
}

async fn get(address: SocketAddr, path: &str) -> StatusCode {
    send(&client(), request("GET", address, "x.test", path)).await.status
}

/// T13.1 scaled down: 20 reloads between two specs that differ in one
/// unrelated route, under a loop of GET and POST requests on kept-alive and
/// on new connections, and long requests that span the reloads. No request
/// fails, no connection is refused, and the long requests complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_fail_no_request() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::with_delay("slow", Duration::from_millis(1200)).await;
    let stable = route("stable", "/v1/{*rest}");
    let spec_a = spec(fast.address, slow.address, "", &(stable.clone() + &route("extra-a", "/a")));
    let spec_b = spec(fast.address, slow.address, "", &(stable + &route("extra-b", "/b")));
    let gateway = Gateway::start_with(&spec_a, &["--access-log", "off"]);
    let address = gateway.addr("public");

    let done = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for kind in 0..3 {
        let (done, sent, failed) = (Arc::clone(&done), Arc::clone(&sent), Arc::clone(&failed));
        load.push(tokio::spawn(async move {
            let pooled = client::<Full<Bytes>>();
            while !done.load(Ordering::Relaxed) {
                let ok = match kind {
                    0 => get(address, "/v1/items").await == StatusCode::OK,
                    1 => {
                        let post = Request::post(format!("http://{address}/v1/items"))
                            .header("host", "x.test")
                            .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
                            .unwrap();
                        match pooled.request(post).await {
                            Ok(response) => {
                                let ok = response.status() == StatusCode::OK;
                                ok && response.into_body().collect().await.is_ok()
                            }
                            Err(_) => false,
                        }
                    }
                    // A new connection each time: none may be refused.
                    _ => {
                        let one =
                            b"GET /v1/new HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
                        statuses(&raw(address, one).await) == [200]
                    }
                };
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let long: Vec<_> = (0..3).map(|_| tokio::spawn(get(address, "/slow/report"))).collect();

    for n in 1..=20 {
        let next = if n % 2 == 1 { &spec_b } else { &spec_a };
        std::fs::write(gateway.spec_path(), next).unwrap();
        gateway.hangup();
        gateway.wait_log("plan reloaded", n);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // The last reload put spec A back.
    assert_eq!(get(address, "/a").await, StatusCode::OK);
    assert_eq!(get(address, "/b").await, StatusCode::NOT_FOUND);

    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    for task in long {
        assert_eq!(task.await.unwrap(), StatusCode::OK, "a long request failed across reloads");
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "the load loop sent only {sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed during reloads");
}

/// B51: a spec that does not compile leaves the old plan serving, and a
/// later good spec is still picked up. A reload also opens a new listener
/// and closes one the spec no longer has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_keeps_the_old_plan_and_a_later_fix_applies() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let first = spec(fast.address, slow.address, "", &route("old", "/old"));
    let gateway = Gateway::start_with(&first, &["--access-log", "off"]);
    let address = gateway.addr("public");

    std::fs::write(gateway.spec_path(), "version: 1\nlisteners: [\n").unwrap();
    gateway.hangup();
    gateway.wait_log("reload failed", 1);
    assert!(gateway.stderr().join("\n").contains("spec.yaml"), "the diagnostics name the file");
    assert_eq!(get(address, "/old").await, StatusCode::OK);

    let extra = "  - name: extra\n    bind: \"127.0.0.1:0\"\n";
    let routes = route("old", "/old") + &route("fresh", "/fresh");
    std::fs::write(gateway.spec_path(), spec(fast.address, slow.address, extra, &routes)).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    let line = gateway
        .stderr()
        .into_iter()
        .find(|l| l.starts_with("listening listener=extra "))
        .expect("the new listener is announced");
    let extra: SocketAddr = line.rsplit("addr=").next().unwrap().parse().unwrap();
    assert_eq!(get(extra, "/fresh").await, StatusCode::OK);

    // Dropping the listener closes its socket; `public` keeps its own.
    std::fs::write(gateway.spec_path(), spec(fast.address, slow.address, "", &routes)).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 2);
    assert!(TcpStream::connect(extra).await.is_err(), "the removed listener still accepts");
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
}

/// `--watch` reloads when the spec file is replaced, as editors do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_picks_up_an_edited_spec() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let gateway = Gateway::start_with(
        &spec(fast.address, slow.address, "", &route("old", "/old")),
        &["--access-log", "off", "--watch"],
    );
    let address = gateway.addr("public");
    assert_eq!(get(address, "/fresh").await, StatusCode::NOT_FOUND);

    // Write a new file and rename it over the old one.
    let edited = spec(fast.address, slow.address, "", &route("fresh", "/fresh"));
    let temporary = gateway.spec_path().with_extension("yaml.tmp");
    std::fs::write(&temporary, edited).unwrap();
    std::fs::rename(&temporary, gateway.spec_path()).unwrap();

    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);
}

/// `--watch` compares what a file change compiles to with the plan in
/// force from the start: a spec written again with the same bytes (as by
/// `touch` or a save without edits) reloads nothing, even as the first
/// change seen; a real edit after it reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_does_not_reload_a_spec_saved_unchanged_after_start() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let first = spec(fast.address, slow.address, "", &route("old", "/old"));
    let gateway = Gateway::start_with(&first, &["--access-log", "off", "--watch"]);
    let address = gateway.addr("public");

    std::fs::write(gateway.spec_path(), &first).unwrap();
    gateway.wait_log("the plan did not change", 1);
    assert_eq!(gateway.count_stderr("plan reloaded"), 0, "{}", gateway.stderr().join("\n"));

    let edited = spec(fast.address, slow.address, "", &route("fresh", "/fresh"));
    std::fs::write(gateway.spec_path(), edited).unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
}

/// `--watch` also reloads when a file the spec pulls in with `include:`
/// changes, not only the spec itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_picks_up_an_edited_included_file() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let teams = support::temp_dir();
    let team = teams.join("team.yaml");
    std::fs::write(&team, format!("routes:\n{}", route("old", "/old"))).unwrap();
    let main = spec(fast.address, slow.address, "", "").replacen(
        "version: 1\n",
        &format!("version: 1\ninclude: [\"{}\"]\n", team.display()),
        1,
    );
    let gateway = Gateway::start_with(&main, &["--access-log", "off", "--watch"]);
    let address = gateway.addr("public");
    assert_eq!(get(address, "/old").await, StatusCode::OK);

    // The watch learns the included files off the request path; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&team, format!("routes:\n{}", route("fresh", "/fresh"))).unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);
}

/// `--watch` reloads when a file starts to match an include pattern, in
/// the directory the pattern names or, for `**`, in one made below it
/// afterwards; a file that matches no pattern loads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_picks_up_a_file_that_starts_to_match_an_include() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let dir = support::temp_dir();
    let routes = |name: &str| format!("routes:\n{}", route(name, &format!("/{name}")));
    std::fs::create_dir_all(dir.join("teams")).unwrap();
    std::fs::create_dir_all(dir.join("deep/x")).unwrap();
    std::fs::write(dir.join("teams/a.yaml"), routes("a")).unwrap();
    std::fs::write(dir.join("deep/x/d.yaml"), routes("d")).unwrap();
    let main = spec(fast.address, slow.address, "", "").replacen(
        "version: 1\n",
        "version: 1\ninclude: [\"teams/*.yaml\", \"deep/**/*.yaml\"]\n",
        1,
    );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, main).unwrap();
    let gateway = Gateway::serve_file(dir.clone(), &path, 1, &["--access-log", "off", "--watch"]);
    let address = gateway.addr("public");
    assert_eq!(get(address, "/a").await, StatusCode::OK);
    assert_eq!(get(address, "/c").await, StatusCode::NOT_FOUND);
    // The watch learns the include patterns off the request path.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Names no pattern matches: the spec is not even loaded again.
    std::fs::write(dir.join("teams/notes.txt"), routes("n")).unwrap();
    std::fs::create_dir(dir.join("teams/sub")).unwrap();
    std::fs::write(dir.join("teams/sub/s.yaml"), routes("s")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = || gateway.stderr().join("\n");
    assert_eq!(gateway.count_stderr("plan reloaded"), 0, "{}", log());
    assert_eq!(gateway.count_stderr("the plan did not change"), 0, "{}", log());

    std::fs::write(dir.join("teams/c.yaml"), routes("c")).unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/c").await, StatusCode::OK);
    assert_eq!(get(address, "/a").await, StatusCode::OK);
    assert_eq!(get(address, "/s").await, StatusCode::NOT_FOUND);

    std::fs::create_dir_all(dir.join("deep/y/z")).unwrap();
    std::fs::write(dir.join("deep/y/z/e.yaml"), routes("e")).unwrap();
    gateway.wait_log("plan reloaded", 2);
    assert_eq!(get(address, "/e").await, StatusCode::OK);
    assert_eq!(gateway.count_stderr("reload failed"), 0, "{}", log());
}

/// A spec laid out as a Kubernetes ConfigMap volume lays out its files:
/// `spec.yaml` -> `..data/spec.yaml`, `..data` -> `v1`, the real file in
/// `v1/`. Served with `--watch` through the top link.
fn configmap_gateway(first: &str) -> (Gateway, std::path::PathBuf) {
    use std::os::unix::fs::symlink;

    let dir = support::temp_dir();
    std::fs::create_dir(dir.join("v1")).unwrap();
    std::fs::write(dir.join("v1/spec.yaml"), first).unwrap();
    symlink("v1", dir.join("..data")).unwrap();
    symlink("..data/spec.yaml", dir.join("spec.yaml")).unwrap();
    let path = dir.join("spec.yaml");
    let gateway = Gateway::serve_file(dir.clone(), &path, 1, &["--access-log", "off", "--watch"]);
    (gateway, dir)
}

/// `--watch` follows a ConfigMap update: a new version's directory is
/// written, and the `..data` link swapped to it by a rename. Removing the
/// old version afterwards reloads nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_configmap_style_link_swap() {
    use std::os::unix::fs::symlink;

    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let (gateway, dir) =
        configmap_gateway(&spec(fast.address, slow.address, "", &route("old", "/old")));
    let address = gateway.addr("public");
    assert_eq!(get(address, "/old").await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;

    std::fs::create_dir(dir.join("v2")).unwrap();
    let fresh = spec(fast.address, slow.address, "", &route("fresh", "/fresh"));
    std::fs::write(dir.join("v2/spec.yaml"), fresh).unwrap();
    symlink("v2", dir.join("..data.tmp")).unwrap();
    std::fs::rename(dir.join("..data.tmp"), dir.join("..data")).unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);

    std::fs::remove_dir_all(dir.join("v1")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(gateway.count_stderr("plan reloaded"), 1, "{}", gateway.stderr().join("\n"));
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
}

/// `--watch` follows a ConfigMap-style swap inside a directory an include
/// glob searches: `teams/t8.yaml` -> `..data/t8.yaml`, `..data` -> `..v1`,
/// swapped to `..v2` by a rename. The links are files the spec read, so
/// the swap reloads although the glob matches the same names as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_configmap_style_swap_in_a_searched_directory() {
    use std::os::unix::fs::symlink;

    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let dir = support::temp_dir();
    let teams = dir.join("teams");
    let routes = |name: &str| format!("routes:\n{}", route(name, &format!("/{name}")));
    std::fs::create_dir_all(teams.join("..v1")).unwrap();
    std::fs::write(teams.join("..v1/t8.yaml"), routes("old")).unwrap();
    symlink("..v1", teams.join("..data")).unwrap();
    symlink("..data/t8.yaml", teams.join("t8.yaml")).unwrap();
    let main = spec(fast.address, slow.address, "", "").replacen(
        "version: 1\n",
        "version: 1\ninclude: [\"teams/*.yaml\"]\n",
        1,
    );
    let path = dir.join("main.yaml");
    std::fs::write(&path, main).unwrap();
    let gateway = Gateway::serve_file(dir.clone(), &path, 1, &["--access-log", "off", "--watch"]);
    let address = gateway.addr("public");
    assert_eq!(get(address, "/old").await, StatusCode::OK);
    // The watch learns the included files off the request path.
    tokio::time::sleep(Duration::from_millis(300)).await;

    std::fs::create_dir(teams.join("..v2")).unwrap();
    std::fs::write(teams.join("..v2/t8.yaml"), routes("fresh")).unwrap();
    symlink("..v2", teams.join("..tmp")).unwrap();
    std::fs::rename(teams.join("..tmp"), teams.join("..data")).unwrap();
    gateway.wait_log_within("plan reloaded", 1, Duration::from_secs(3));
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);
    assert_eq!(gateway.count_stderr("reload failed"), 0, "{}", gateway.stderr().join("\n"));
}

/// `--watch` follows the file a chain of links ends at when it is written
/// in place, before and after the links move to another version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_the_file_behind_links_written_in_place() {
    use std::os::unix::fs::symlink;

    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let (gateway, dir) =
        configmap_gateway(&spec(fast.address, slow.address, "", &route("old", "/old")));
    let address = gateway.addr("public");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let edited = spec(fast.address, slow.address, "", &route("edited", "/edited"));
    std::fs::write(dir.join("v1/spec.yaml"), edited).unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(get(address, "/edited").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);

    // The links move to v2; then v2's file is written in place.
    std::fs::create_dir(dir.join("v2")).unwrap();
    let moved = spec(fast.address, slow.address, "", &route("moved", "/moved"));
    std::fs::write(dir.join("v2/spec.yaml"), moved).unwrap();
    symlink("v2", dir.join("..data.tmp")).unwrap();
    std::fs::rename(dir.join("..data.tmp"), dir.join("..data")).unwrap();
    gateway.wait_log("plan reloaded", 2);
    assert_eq!(get(address, "/moved").await, StatusCode::OK);
    let again = spec(fast.address, slow.address, "", &route("again", "/again"));
    std::fs::write(dir.join("v2/spec.yaml"), again).unwrap();
    gateway.wait_log("plan reloaded", 3);
    assert_eq!(get(address, "/again").await, StatusCode::OK);
    assert_eq!(get(address, "/moved").await, StatusCode::NOT_FOUND);
    // v1 is no longer what the path leads to: writing it changes nothing.
    std::fs::write(dir.join("v1/spec.yaml"), "version: 1\n").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(gateway.count_stderr("plan reloaded"), 3);
    assert_eq!(gateway.count_stderr("reload failed"), 0);
}

/// A spec with listener `public` -> route `r1` -> pool `p1` and, when
/// `second` is set, listener `l2` on `l2` -> route `r2` -> pool `p2`.
fn two_listener_spec(p1: SocketAddr, p2: SocketAddr, l2: SocketAddr, second: bool) -> String {
    let mut spec = String::from("version: 1\nlisteners:\n");
    spec += "  - name: public\n    bind: \"127.0.0.1:0\"\n";
    if second {
        spec += &format!("  - name: l2\n    bind: \"{l2}\"\n");
    }
    spec += &format!("pools:\n  - name: p1\n    endpoints: [{{ address: \"{p1}\" }}]\n");
    if second {
        spec += &format!("  - name: p2\n    endpoints: [{{ address: \"{p2}\" }}]\n");
    }
    spec += "routes:\n  - name: r1\n    listeners: [public]\n    match: { path: \"/{*rest}\" }\n    to: p1\n";
    if second {
        spec +=
            "  - name: r2\n    listeners: [l2]\n    match: { path: \"/{*rest}\" }\n    to: p2\n";
    }
    spec
}

/// Read one response from `stream`: its head and body (by
/// `Content-Length`), or `None` when the connection ends first.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, String)> {
    let read = async {
        loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..at + 4]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= at + 4 + length {
                    let body =
                        String::from_utf8_lossy(&buffer[at + 4..at + 4 + length]).into_owned();
                    buffer.drain(..at + 4 + length);
                    return Some((head, body));
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("no answer within 5 s")
}

/// Whether the gateway closes `stream` within `limit` (with nothing more sent).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    matches!(tokio::time::timeout(limit, stream.read(&mut chunk)).await, Ok(Ok(0) | Err(_)))
}

/// A reload that removes a listener closes the connections it accepted once
/// their requests in flight are answered, instead of serving the old plan
/// on them for ever: a request in flight at the reload is answered (with
/// `Connection: close`) and the connection then closes; an idle one closes
/// at once; an HTTP/2 one gets GOAWAY and closes. A kept-alive connection
/// on a listener the reload keeps goes on serving, on the new plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_a_removed_listener_close_after_their_request() {
    let p1 = Upstream::start("one").await;
    let p2 = Upstream::with_delay("two", Duration::from_millis(400)).await;
    let l2 = support::free_port();
    let spec = two_listener_spec(p1.address, p2.address, l2, true);
    let gateway = Gateway::start_with(&spec, &["--access-log", "off", "--watch"]);
    let public = gateway.addr("public");
    assert_eq!(gateway.addr("l2"), l2);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x.test\r\n\r\n").into_bytes();

    let (mut busy, mut idle, mut kept) = (
        TcpStream::connect(l2).await.unwrap(),
        TcpStream::connect(l2).await.unwrap(),
        TcpStream::connect(public).await.unwrap(),
    );
    let (mut busy_read, mut idle_read, mut kept_read) = (Vec::new(), Vec::new(), Vec::new());
    for (stream, read, body) in [
        (&mut busy, &mut busy_read, "two"),
        (&mut idle, &mut idle_read, "two"),
        (&mut kept, &mut kept_read, "one"),
    ] {
        stream.write_all(&get("/first")).await.unwrap();
        let (head, got) = read_response(stream, read).await.expect("an answer before the reload");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(got, body);
    }

    // An HTTP/2 connection on `l2` too, answered once.
    let mut h2 = TcpStream::connect(l2).await.unwrap();
    let flags = support::h2raw::END_HEADERS | support::h2raw::END_STREAM;
    let opening = [
        support::h2raw::preface(&[]),
        support::h2raw::frame(support::h2raw::HEADERS, flags, 1, &support::h2raw::get("/h2")),
    ];
    h2.write_all(&opening.concat()).await.unwrap();
    loop {
        let frame = support::h2raw::next(&mut h2, Duration::from_secs(5)).await.expect("an answer");
        if frame.stream == 1 && frame.flags & support::h2raw::END_STREAM != 0 {
            break;
        }
    }

    // A request in flight on `busy` while the reload removes `l2`.
    busy.write_all(&get("/in-flight")).await.unwrap();
    p2.wait_for(4).await;
    std::fs::write(gateway.spec_path(), two_listener_spec(p1.address, p2.address, l2, false))
        .unwrap();
    gateway.wait_log("plan reloaded", 1);
    assert!(TcpStream::connect(l2).await.is_err(), "the removed listener still accepts");

    let (head, body) =
        read_response(&mut busy, &mut busy_read).await.expect("the request in flight is answered");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "two");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(
        closed_within(&mut busy, Duration::from_secs(2)).await,
        "the busy connection stays open"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)).await,
        "the idle connection stays open"
    );
    // Nothing more reaches p2 through the closed connections.
    let _ = idle.write_all(&get("/late")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p2.seen().len(), 4);

    // The HTTP/2 connection is told to go away (its PINGs answered), then closed.
    let (mut goaway, started) = (false, Instant::now());
    while let Some(frame) = support::h2raw::next(&mut h2, Duration::from_secs(3)).await {
        match frame.kind {
            support::h2raw::GOAWAY => goaway = true,
            support::h2raw::PING if frame.flags & support::h2raw::ACK == 0 => {
                let _ = h2.write_all(&support::h2raw::ping_ack(&frame.payload)).await;
            }
            _ => {}
        }
    }
    assert!(goaway, "no GOAWAY on the removed listener's HTTP/2 connection");
    assert!(started.elapsed() < Duration::from_secs(3), "the HTTP/2 connection stays open");

    // The kept listener's connection serves on.
    kept.write_all(&get("/after")).await.unwrap();
    let (head, body) =
        read_response(&mut kept, &mut kept_read).await.expect("the kept connection answers");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "one");
}

/// Requests on `/v1/...` in a loop until `done`, on a kept-alive connection
/// and on new ones; how many were sent and how many failed.
fn steady_traffic(
    address: SocketAddr,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let pooled = client::<Full<Bytes>>();
        let (mut sent, mut failed) = (0, 0);
        while !done.load(Ordering::Relaxed) {
            let kept = send(&pooled, request("GET", address, "x.test", "/v1/kept")).await;
            let once = b"GET /v1/new HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
            let fresh = statuses(&raw(address, once).await);
            sent += 2;
            failed += usize::from(kept.status != StatusCode::OK) + usize::from(fresh != [200]);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sent, failed)
    })
}

/// `--watch` on a spec written in place (truncated and written again, the
/// same inode), as `echo > spec.yaml` or an editor without atomic saves
/// writes it. A complete but invalid save is logged with its diagnostics
/// and changes nothing. A save written in two parts, with a pause between
/// them while the writer holds the file open, is never served half-written
/// (the first part alone is a valid spec with one route fewer), only whole
/// once the writer closes it. A later replacement by rename, and an
/// in-place write to the new file after it, are followed too. Requests on
/// a stable route never fail throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_spec_written_in_place_and_never_serves_half_of_it() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    let fast = Upstream::start("fast").await;
    let slow = Upstream::start("slow").await;
    let with_routes = |routes: &[(&str, &str)]| {
        let routes: String = routes.iter().map(|(name, path)| route(name, path)).collect();
        spec(fast.address, slow.address, "", &(route("stable", "/v1/{*rest}") + &routes))
    };
    let gateway =
        Gateway::start_with(&with_routes(&[("old", "/old")]), &["--access-log", "off", "--watch"]);
    let address = gateway.addr("public");
    let path = gateway.spec_path();
    let inode = std::fs::metadata(&path).unwrap().ino();
    let done = Arc::new(AtomicBool::new(false));
    let traffic = steady_traffic(address, Arc::clone(&done));

    // A complete save of a spec that does not compile.
    let invalid = with_routes(&[("old", "/old"), ("broken", "/broken")]).replacen(
        "    to: backend\n",
        "    to: nowhere\n",
        2,
    );
    let line = 1 + invalid.lines().position(|l| l.contains("to: nowhere")).unwrap();
    std::fs::write(&path, &invalid).unwrap();
    gateway.wait_log("reload failed", 1);
    let log = gateway.stderr().join("\n");
    assert!(log.contains(&format!("spec.yaml:{line}:")), "the diagnostics name the line:\n{log}");
    assert!(log.contains("nowhere"), "the diagnostics name the pool:\n{log}");
    assert_eq!(get(address, "/old").await, StatusCode::OK, "the old plan keeps serving");

    // The next save in two parts: the first is a whole spec on its own.
    let whole = with_routes(&[("fresh", "/fresh"), ("later", "/later")]);
    let cut = whole.find("  - name: later\n").unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    file.write_all(&whole.as_bytes()[..cut]).unwrap();
    file.flush().unwrap();
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_millis(800) {
        assert_eq!(get(address, "/old").await, StatusCode::OK, "half a spec was served");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    file.write_all(&whole.as_bytes()[cut..]).unwrap();
    drop(file);
    gateway.wait_log("plan reloaded", 1);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "written in place");
    assert_eq!(get(address, "/later").await, StatusCode::OK);
    assert_eq!(get(address, "/fresh").await, StatusCode::OK);
    assert_eq!(get(address, "/old").await, StatusCode::NOT_FOUND);

    // Replaced by rename (a new inode), then written in place again.
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, with_routes(&[("renamed", "/renamed")])).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    gateway.wait_log("plan reloaded", 2);
    assert_eq!(get(address, "/renamed").await, StatusCode::OK);
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode, "replaced by rename");
    std::fs::write(&path, with_routes(&[("again", "/again")])).unwrap();
    gateway.wait_log("plan reloaded", 3);
    assert_eq!(get(address, "/again").await, StatusCode::OK);
    assert_eq!(get(address, "/renamed").await, StatusCode::NOT_FOUND);

    // One failure, three reloads: no half-written state was ever loaded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gateway.stderr().join("\n");
    assert_eq!(gateway.count_stderr("reload failed"), 1, "{log}");
    assert_eq!(gateway.count_stderr("plan reloaded"), 3, "{log}");
    done.store(true, Ordering::Relaxed);
    let (sent, failed) = traffic.await.unwrap();
    assert!(sent > 20, "the traffic loop sent only {sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed while the spec was rewritten");
}

/// B54 (T13.3 scaled down): SIGTERM with a request in flight and an idle
/// WebSocket open: the request completes, new connections are refused, and
/// the process exits soon after the drain timeout rather than waiting on
/// the tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_an_idle_websocket_ends_at_the_drain_timeout() {
    let websocket = echo_websocket().await;
    let slow = Upstream::with_delay("slow", Duration::from_millis(600)).await;
    let mut gateway = Gateway::start_with(
        &spec(websocket, slow.address, "", &route("ws", "/ws")),
        &["--access-log", "off", "--drain-timeout", "2"],
    );
    let address = gateway.addr("public");

    let mut tunnel = TcpStream::connect(address).await.unwrap();
    tunnel.write_all(WEBSOCKET.as_bytes()).await.unwrap();
    let mut reply = [0u8; 12];
    tunnel.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"HTTP/1.1 101");
    let in_flight = tokio::spawn(get(address, "/slow/report"));
    tokio::time::sleep(Duration::from_millis(150)).await;

    let signalled = Instant::now();
    gateway.terminate();
    assert_eq!(in_flight.await.unwrap(), StatusCode::OK, "the request in flight completes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(address).await.is_err(), "new connections are refused");
    let status = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(6)));
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(5), "exit took {took:?} after SIGTERM");
    // The tunnel had the drain's grace, and no more.
    assert!(gateway.count_stderr("drain cut short") == 1, "{}", gateway.stderr().join("\n"));
}

/// An upstream that switches any request to a tunnel and echoes what it
/// is sent.
async fn echo_websocket() -> SocketAddr {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                skip_head(&mut stream).await;
                let switch = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                              Upgrade: websocket\r\n\r\n";
                let _ = stream.write_all(switch.as_bytes()).await;
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

const WEBSOCKET: &str =
    "GET /ws HTTP/1.1\r\nHost: x.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";

/// B52: a WebSocket tunnel outlives reloads, even ones that move its pool
/// to another endpoint and then remove its route, while new upgrades follow
/// the new plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_outlives_reloads() {
    let websocket = echo_websocket().await;
    let slow = Upstream::start("slow").await;
    let gateway = Gateway::start_with(
        &spec(websocket, slow.address, "", &route("ws", "/ws")),
        &["--access-log", "off"],
    );
    let address = gateway.addr("public");
    let mut tunnel = TcpStream::connect(address).await.unwrap();
    tunnel.write_all(WEBSOCKET.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    tunnel.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 101");
    // The rest of the 101's head.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tunnel.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }

    async fn echoes(tunnel: &mut TcpStream, text: &[u8]) {
        tunnel.write_all(text).await.unwrap();
        let mut echoed = vec![0u8; text.len()];
        let read = tokio::time::timeout(Duration::from_secs(2), tunnel.read_exact(&mut echoed));
        read.await.expect("the tunnel must still echo").unwrap();
        assert_eq!(echoed, text);
    }
    echoes(&mut tunnel, b"before").await;
    // The tunnel's pool moves to another endpoint, then its route goes.
    let moved = spec(slow.address, slow.address, "", &route("ws", "/ws"));
    let without_ws = spec(slow.address, slow.address, "", "");
    for (n, next) in [moved, without_ws].iter().enumerate() {
        std::fs::write(gateway.spec_path(), next).unwrap();
        gateway.hangup();
        gateway.wait_log("plan reloaded", n + 1);
        echoes(&mut tunnel, format!("after reload {n}").as_bytes()).await;
    }
    // The last plan has no `/ws` route: a new upgrade is not tunnelled.
    let mut late = TcpStream::connect(address).await.unwrap();
    late.write_all(WEBSOCKET.as_bytes()).await.unwrap();
    late.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 404");
}

/// The drain reports how many client connections it waits for: each
/// connection once, busy or idle, on whichever worker serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_counts_each_open_connection_once() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::with_delay("slow", Duration::from_millis(600)).await;
    let mut gateway =
        Gateway::start_with(&spec(fast.address, slow.address, "", ""), &["--workers", "3"]);
    let address = gateway.addr("public");

    // One idle kept-alive connection and three with a request in flight.
    let idle = client();
    assert_eq!(send(&idle, request("GET", address, "x.test", "/slow/warm")).await.status, 200);
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(async move {
                send(&client(), request("GET", address, "x.test", &format!("/slow/{i}"))).await
            })
        })
        .collect();
    slow.wait_for(4).await;
    gateway.terminate();
    gateway.wait_log("draining connections", 1);
    for reply in in_flight {
        assert_eq!(reply.await.unwrap().status, StatusCode::OK);
    }
    assert!(gateway.wait(Duration::from_secs(5)).success());
    let log = gateway.stderr().join("\n");
    assert!(log.contains("draining connections connections=4"), "{log}");
    drop(idle);
}

/// B54 at the bound: a request still running when the drain timeout passes
/// is cut there. Its client sees the connection end, not a hang and not a
/// made-up success, and the process exits soon after the bound; with the
/// smallest timeouts the CLI takes, 0 (no grace at all) and 1 second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_drain_timeout_is_cut_at_the_bound() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::with_delay("slow", Duration::from_secs(30)).await;
    for (seconds, requests) in [(0u64, 1), (1, 2)] {
        let mut gateway = Gateway::start_with(
            &spec(fast.address, slow.address, "", ""),
            &["--access-log", "off", "--drain-timeout", &seconds.to_string()],
        );
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        stream.write_all(b"GET /slow/forever HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
        slow.wait_for(requests).await;

        let signalled = Instant::now();
        gateway.terminate();
        let bound = Duration::from_secs(seconds + 3);
        let (text, _) = support::until_closed(&mut stream, bound).await;
        assert!(!statuses(&text).contains(&200), "drain {seconds}s: {text}");
        let status = tokio::task::block_in_place(|| gateway.wait(bound));
        assert!(status.success(), "drain {seconds}s: {status:?}");
        let took = signalled.elapsed();
        assert!(took < bound, "drain {seconds}s: exit took {took:?} after SIGTERM");
        let log = gateway.stderr().join("\n");
        assert_eq!(gateway.count_stderr("drain cut short"), 1, "drain {seconds}s:\n{log}");
        assert_eq!(gateway.count_stderr("panicked"), 0, "drain {seconds}s:\n{log}");
    }
}

/// A request the drain timeout cuts is the gateway's doing, and the access
/// log says so: one still waiting for its response head is logged 503 (not
/// 499, which blames a client that left) and one whose body was still
/// streaming keeps its status; each with a `reason` naming the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_by_the_drain_is_logged_as_the_gateways_doing() {
    // An upstream that sends a head and half of its body, then nothing.
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let streaming = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                skip_head(&mut stream).await;
                let half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
                let _ = stream.write_all(half).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let slow = Upstream::with_delay("slow", Duration::from_secs(30)).await;
    let mut gateway = Gateway::start_with(
        &spec(streaming, slow.address, "", &route("stream", "/stream")),
        &["--access-log", "stdout", "--drain-timeout", "1"],
    );
    let address = gateway.addr("public");
    let mut waiting = TcpStream::connect(address).await.unwrap();
    waiting.write_all(b"GET /slow/forever HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut streamed = TcpStream::connect(address).await.unwrap();
    streamed.write_all(b"GET /stream HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    streamed.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    slow.wait_for(1).await;

    gateway.terminate();
    assert!(tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(5))).success());
    let lines = gateway.stdout();
    let record = |path: &str| -> serde_json::Value {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        serde_json::from_str(line.unwrap_or_else(|| panic!("{path} logged: {lines:?}"))).unwrap()
    };
    for (path, status) in [("/slow/forever", 503), ("/stream", 200)] {
        let line = record(path);
        assert_eq!(line["status"], status, "{path}: {line}");
        let reason = line["reason"].as_str().unwrap_or("");
        assert!(reason.contains("drain timeout of 1s"), "{path}: {line}");
    }
}

/// A reload keeps the retry budget of every route whose budget did not
/// change: a budget spent in a brown-out stays spent across a reload (an
/// operator's edit, or a DNS answer that changed) instead of starting
/// afresh with its whole reserve, a burst of retries into the failing
/// pool each time. A route whose budget changed starts a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_a_spent_retry_budget() {
    let failing = support::ScriptedUpstream::start(None, |_| {
        support::Answer::Send(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    })
    .await;
    let spec = |budget: &str, extra_route: &str| {
        format!(
            "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: p
    endpoints: [{{ address: \"{}\" }}]
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: p
    retries: {{ attempts: 2, on: [503] }}
    retry_budget: {{ {budget} }}
{extra_route}",
            failing.address
        )
    };
    let budget = "percent: 0, min_per_second: 1, window: 5s";
    let gateway = Gateway::start_with(&spec(budget, ""), &["--access-log", "off"]);
    let address = gateway.addr("public");
    let http = client();
    let burst = |n: usize| {
        let http = http.clone();
        async move {
            for i in 0..n {
                let reply = send(&http, request("GET", address, "x.test", &format!("/{i}"))).await;
                assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
            }
        }
    };
    // The reserve, 1 a second over 5 s, takes 5 retries; then none.
    burst(10).await;
    assert_eq!(failing.requests().len(), 15);

    // Another route, the same budget on this one: still spent.
    let other = "  - name: other\n    match: { path: \"/other\" }\n    to: p\n";
    std::fs::write(gateway.spec_path(), spec(budget, other)).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    burst(10).await;
    assert_eq!(failing.requests().len(), 25, "the reload gave the spent budget a new reserve");

    // A changed budget starts afresh.
    let larger = "percent: 0, min_per_second: 2, window: 5s";
    std::fs::write(gateway.spec_path(), spec(larger, other)).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 2);
    burst(20).await;
    assert_eq!(failing.requests().len(), 55);
}

/// A reload that changes only how often or how patiently a pool's health
/// check probes (its interval, timeout or thresholds) keeps what the check
/// knows: an endpoint found unhealthy stays out of rotation, instead of
/// getting traffic again until the new check finds it out once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_retimes_the_health_check_keeps_an_unhealthy_endpoint_out() {
    let good = Upstream::start("good").await;
    let bad = support::ScriptedUpstream::start(None, |_| {
        support::Answer::Send(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    })
    .await;
    let spec = |check: &str| {
        format!(
            "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: p
    health_check: {{ path: /health, {check} }}
    endpoints: [{{ address: \"{}\" }}, {{ address: \"{}\" }}]
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: p
",
            good.address, bad.address
        )
    };
    let gateway = Gateway::start_with(
        &spec("interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1"),
        &["--access-log", "off"],
    );
    gateway.wait_log("to=\"unhealthy\"", 1);
    let retimed = "interval: 30s, timeout: 5s, healthy_threshold: 3, unhealthy_threshold: 2";
    std::fs::write(gateway.spec_path(), spec(retimed)).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    let http = client();
    for i in 0..10 {
        let reply =
            send(&http, request("GET", gateway.addr("public"), "x.test", &format!("/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i} went to the unhealthy endpoint");
    }
}

/// B53: SIGHUP during a drain, with a new spec that adds a listener, neither
/// brings back accepting (on the old listener or the new one) nor crashes:
/// the request in flight completes and the drain ends as drains do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_the_drain_does_not_accept_again() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::with_delay("slow", Duration::from_millis(1500)).await;
    let mut gateway = Gateway::start_with(
        &spec(fast.address, slow.address, "", ""),
        &["--access-log", "off", "--drain-timeout", "10"],
    );
    let address = gateway.addr("public");
    let in_flight = tokio::spawn(get(address, "/slow/report"));
    slow.wait_for(1).await;

    let signalled = Instant::now();
    gateway.terminate();
    gateway.wait_log("draining connections", 1);
    let late = support::free_port();
    let listener = format!("  - name: late\n    bind: \"{late}\"\n");
    std::fs::write(gateway.spec_path(), spec(fast.address, slow.address, &listener, "")).unwrap();
    gateway.hangup();
    // The new spec was compiled and handed on.
    gateway.wait_log("reloading", 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(address).await.is_err(), "the old listener accepts again");
    assert!(TcpStream::connect(late).await.is_err(), "the new listener accepts");

    assert_eq!(in_flight.await.unwrap(), StatusCode::OK, "the request in flight completes");
    let status = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(5)));
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "exit took {:?}", signalled.elapsed());
    let log = gateway.stderr().join("\n");
    assert_eq!(gateway.count_stderr("drained; exiting"), 1, "{log}");
    assert_eq!(gateway.count_stderr("panicked"), 0, "{log}");
}

/// What `/proc` says about a process: open descriptors, resident memory
/// in KiB, and threads.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    fds: usize,
    rss_kib: u64,
    threads: u64,
}

fn footprint(pid: u32) -> Footprint {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd").count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).expect("a status field");
        line[name.len()..].trim().trim_end_matches(" kB").parse().expect("a number")
    };
    Footprint { fds, rss_kib: field("VmRSS:"), threads: field("Threads:") }
}

/// The least of a few samples a little apart, so that a health probe or a
/// connection caught mid-flight does not count as growth.
async fn settled_footprint(pid: u32) -> Footprint {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut least = footprint(pid);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let now = footprint(pid);
        least = Footprint {
            fds: least.fds.min(now.fds),
            rss_kib: least.rss_kib.min(now.rss_kib),
            threads: least.threads.min(now.threads),
        };
    }
    least
}

/// An HTTP/2 (h2c) upstream that answers every request `200` at once.
async fn h2_upstream() -> SocketAddr {
    let answer = |_| async { hyper::Response::new(Full::new(Bytes::from_static(b"h2"))) };
    support::h2c::serve(answer).await.0
}

/// The pools a churn plan sends to.
struct ChurnPools<'a> {
    /// Pool `web` (HTTP/1.1), with active health checks on `health`.
    web: &'a [SocketAddr],
    health: &'a str,
    /// Pool `named`: `localhost:PORT`, looked up every 100 ms.
    named: u16,
    /// Pool `h2`, spoken to in HTTP/2.
    h2: SocketAddr,
}

/// One of the two plans the churn test alternates between: the pools of
/// `pools` (`web` with outlier detection too), a route to each, `padding`
/// more routes that each carry a 2 KiB header value (so that a plan left
/// behind by each reload would show in the memory figures, about 250 KiB
/// each), and with `extra` a second listener.
fn churn_spec(pools: &ChurnPools, extra: bool, padding: usize) -> String {
    let ChurnPools { web, health, named, h2 } = pools;
    let endpoints: String = web.iter().map(|a| format!("      - address: \"{a}\"\n")).collect();
    let extra = if extra { "  - name: extra\n    bind: \"127.0.0.1:0\"\n" } else { "" };
    let filler = "p".repeat(2048);
    let padding: String = (0..padding)
        .map(|i| {
            format!(
                "  - name: pad-{i}\n    match: {{ path: \"/pad/{i}\", \
                 headers: [{{ name: x-pad, exact: \"{i}{filler}\" }}] }}\n    to: web\n"
            )
        })
        .collect();
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
{extra}pools:
  - name: web
    balance: least_request
    endpoints:
{endpoints}    health_check: {{ path: \"{health}\", interval: 100ms, jitter: 20ms, timeout: 80ms,
                    healthy_threshold: 1, unhealthy_threshold: 2 }}
    outlier_detection: {{ consecutive_failures: 5, base_ejection: 1s }}
  - name: named
    resolve_interval: 100ms
    endpoints:
      - address: \"localhost:{named}\"
  - name: h2
    protocol: http2
    endpoints:
      - address: \"{h2}\"
routes:
  - name: web
    match: {{ path: \"/web/{{*rest}}\" }}
    to: web
  - name: named
    match: {{ path: \"/named/{{*rest}}\" }}
    to: named
  - name: h2
    match: {{ path: \"/h2/{{*rest}}\" }}
    to: h2
{padding}"
    )
}

/// B53: many reloads release what each plan held. 160 SIGHUP reloads
/// alternate between two plans that change every pool (the endpoints of an
/// HTTP/1.1 pool and its health check's path, the port a DNS name stands
/// for, the endpoint of an HTTP/2 pool) and add or drop a listener, with an
/// invalid spec every tenth time and requests on kept-alive and on new
/// connections between reloads, so that each plan opens upstream
/// connections, health probes, lookups and a listener that the next one
/// must release. The process's open file descriptors, threads and resident
/// memory after 160 reloads are those after the first 30, within a margin
/// for noise (idle connections come and go): a descriptor, a task with its
/// socket, or a plan kept per reload would exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reloads_leak_no_descriptors_threads_or_memory() {
    const WARM_UP: usize = 30;
    const RELOADS: usize = 160;
    const PADDING: usize = 100;
    let upstreams = [
        Upstream::start("one").await,
        Upstream::start("two").await,
        Upstream::start("three").await,
    ];
    let [one, two, three] = [0, 1, 2].map(|i| upstreams[i].address);
    let (h2_a, h2_b) = (h2_upstream().await, h2_upstream().await);
    let pools_a =
        ChurnPools { web: &[one, two], health: "/healthz", named: three.port(), h2: h2_a };
    let pools_b = ChurnPools { web: &[two, three], health: "/ready", named: one.port(), h2: h2_b };
    let spec_a = churn_spec(&pools_a, false, PADDING);
    let spec_b = churn_spec(&pools_b, true, PADDING);
    let gateway = Gateway::start_with(&spec_a, &["--access-log", "off"]);
    let address = gateway.addr("public");
    let pid = gateway.pid();
    let kept_alive = client::<Full<Bytes>>();
    let pinning = client::<Full<Bytes>>();

    let mut loaded = 0;
    let mut failed = 0;
    let mut before = None;
    for n in 1..=RELOADS {
        // Traffic on the plan in force: every pool, on a kept-alive
        // connection and on new ones. The DNS name stands for `three`
        // under spec A and `one` under spec B.
        for path in ["/web/a", "/named/b", "/h2/c"] {
            let reply = send(&kept_alive, request("GET", address, "x.test", path)).await;
            assert_eq!(reply.status, StatusCode::OK, "{path} before reload {n}: {}", reply.body);
            if path == "/named/b" {
                let named = if n % 2 == 1 { "three" } else { "one" };
                assert_eq!(reply.body, named, "the plan in force before reload {n}");
            }
        }
        let once = b"GET /web/new HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
        assert_eq!(statuses(&raw(address, once).await), [200], "before reload {n}");

        if n % 10 == 5 {
            std::fs::write(gateway.spec_path(), "version: 1\npools: [\n").unwrap();
            gateway.hangup();
            failed += 1;
            gateway.wait_log("reload failed", failed);
        }
        let next = if n % 2 == 1 { &spec_b } else { &spec_a };
        std::fs::write(gateway.spec_path(), next).unwrap();
        gateway.hangup();
        loaded += 1;
        gateway.wait_log("plan reloaded", loaded);
        if n == WARM_UP {
            before = Some(settled_footprint(pid).await);
        }
        if n == RELOADS - 1 {
            // A kept-alive connection accepted under this plan (spec B)
            // holds it after the next reload: its health checks must
            // stop all the same.
            let reply = send(&pinning, request("GET", address, "x.test", "/web/pin")).await;
            assert_eq!(reply.status, StatusCode::OK);
        }
    }
    let before = before.expect("measured after the warm-up");

    // The last reload put spec A back: no `extra` listener, pools as first.
    assert_eq!(gateway.count_stderr("listening listener=extra"), RELOADS / 2);
    for path in ["/web/a", "/named/b", "/h2/c"] {
        let reply = send(&kept_alive, request("GET", address, "x.test", path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} after the reloads");
    }
    // Only spec A's health checks still run: spec B's (on `/ready`) all
    // stopped, even those of the plan a connection still holds. (A probe
    // sent just before the last reload has had time to arrive.)
    let probes = |path: &str| -> usize {
        upstreams.iter().map(|u| u.seen().iter().filter(|s| s.target == path).count()).sum()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ready, healthz) = (probes("/ready"), probes("/healthz"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(probes("/ready"), ready, "health checks of replaced plans still run");
    assert!(probes("/healthz") > healthz, "the health checks in force do not run");

    // With the held plan let go, what is left open is what the plan in
    // force and the kept-alive client use, as after the warm-up.
    drop(pinning);
    let after = settled_footprint(pid).await;
    eprintln!("after {WARM_UP} reloads: {before:?}; after {RELOADS}: {after:?}");
    assert!(
        after.fds <= before.fds + 10,
        "open descriptors grew from {} to {} over {} reloads",
        before.fds,
        after.fds,
        RELOADS - WARM_UP
    );
    assert!(
        after.threads <= before.threads + 2,
        "threads grew from {} to {}",
        before.threads,
        after.threads
    );
    assert!(
        after.rss_kib <= before.rss_kib + 8 * 1024,
        "resident memory grew from {} KiB to {} KiB over {} reloads",
        before.rss_kib,
        after.rss_kib,
        RELOADS - WARM_UP
    );
}

/// Read past a request head on `stream`, a byte at a time up to its blank
/// line (or the end of the stream).
async fn skip_head(stream: &mut tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
}
