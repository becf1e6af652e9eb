//! Sample traffic for `sluice demo`: one small batch of requests per route,
//! built from the route's own conditions, sent to the gateway over a socket.
//!
//! A sample takes the route's first method (`GET` when it accepts any), a host
//! its host pattern matches, and its path template with numbers for
//! parameters (numbers rarely collide with literal segments of other routes)
//! and `demo` for a catch-all. The route a sample actually reaches is looked up
//! in the plan, since a more specific route may claim it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_compiler::template::{Segment, Template};
use sluice_compiler::{Captures, Plan};

use crate::stub::Echo;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The route the sample was built from.
    pub source_route: usize,
    /// The route the plan sends it to (usually `source_route`), if any.
    pub route: Option<usize>,
    pub listener: usize,
    pub method: Method,
    pub host: String,
    /// Path and query.
    pub path: String,
}

/// What came back for a sample.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    /// The stub's description of the request, when a stub answered.
    pub echo: Option<Echo>,
    /// The gateway's error code, when the gateway answered itself.
    pub error: Option<String>,
}

/// `per_endpoint` requests for each endpoint of each route's pool, at least
/// two per route.
pub fn samples(plan: &Plan, per_endpoint: usize) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut captures = Captures::new();
    let mut id = 0u32;
    for (index, route) in plan.routes.iter().enumerate() {
        let Some(listener) = (0..plan.listeners.len()).find(|&l| route.listeners >> l & 1 == 1)
        else {
            continue;
        };
        let method = route
            .methods
            .first()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(Method::GET);
        let host = route.host.example();
        let template = Template::parse(&route.path).ok();
        let count = (plan.pools[route.pool].endpoints.len() * per_endpoint).max(2);

        for _ in 0..count {
            id += 1;
            let path = match &template {
                Some(template) => example_path(template, id),
                None => route.path.to_string(),
            };
            let found = plan.lookup_parts(
                listener,
                &host,
                method.as_str().as_bytes(),
                &path,
                &mut captures,
            );
            samples.push(Sample {
                source_route: index,
                route: found.map(|r| r as usize),
                listener,
                method: method.clone(),
                host: host.clone(),
                path,
            });
        }
    }
    samples
}

fn example_path(template: &Template, id: u32) -> String {
    let mut path = String::new();
    for segment in &template.segments {
        path.push('/');
        match segment {
            Segment::Literal(text) => path.push_str(text),
            Segment::Param(_) => path.push_str(&id.to_string()),
            Segment::CatchAll(_) => path.push_str("demo"),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// The address to send to for a listener bound at `bound`: an unspecified
/// address (`0.0.0.0`, `::`) is reached over loopback.
pub fn connect_address(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

/// An HTTP client for sending samples.
pub struct SampleClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for SampleClient {
    fn default() -> Self {
        SampleClient { client: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl SampleClient {
    /// Send `sample` to the gateway listening at `gateway`.
    pub async fn send(&self, gateway: SocketAddr, sample: &Sample) -> Result<Outcome, String> {
        let uri: Uri = format!("http://{gateway}{}", sample.path)
            .parse()
            .map_err(|e| format!("cannot build a request for {}: {e}", sample.path))?;
        let has_body = matches!(sample.method, Method::POST | Method::PUT | Method::PATCH);
        let body = if has_body { Bytes::from_static(b"{\"demo\":true}") } else { Bytes::new() };
        let mut request = Request::builder()
            .method(sample.method.clone())
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| format!("cannot build a request: {e}"))?;
        let host = HeaderValue::from_str(&sample.host)
            .map_err(|_| format!("host {} is not a valid header value", sample.host))?;
        request.headers_mut().insert(HOST, host);
        if has_body {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }

        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("gateway at {gateway} did not answer: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("gateway at {gateway} broke off its response: {e}"))?
            .to_bytes();
        let echo = serde_json::from_slice::<Echo>(&body).ok();
        let error = match echo {
            Some(_) => None,
            None => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned)),
        };
        Ok(Outcome { status, echo, error })
    }
}
