//! The live state of one pool: its balancer, circuit breaker, outlier
//! detector and active health checks, driven with the wall clock.
//!
//! A [`PoolState`] is everything about a pool that must outlive a single
//! request and, when a reload leaves the pool unchanged, a single plan: the
//! reload carries the `Arc<PoolState>` over as a whole (see
//! [`PoolState::carries_over`]), so requests in flight on the old plan end
//! their counts on the same balancer, and health and ejections are kept.
//! When a reload (or a DNS lookup) changes the pool, the new state takes
//! over, for each endpoint address the pool kept, its health check state
//! (when the check did not change), its outlier record and its balancer's
//! latency estimate; see [`PoolState::start`].
//!
//! An endpoint is eligible for the balancer while its active checks say it
//! is healthy and outlier detection has not ejected it; both sources write
//! their own flag and [`PoolState::refresh`] combines them. Each health
//! change is logged at info with the endpoint and the old and new state.
//! The health probe tasks and the outlier timer hold only a weak handle, and
//! are aborted when the state is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_compiler::plan::PoolPlan;
use sluice_compiler::spec::Protocol;
use sluice_traffic::circuit::OwnedPermit;
use sluice_traffic::{
    Balancer, CircuitBreaker, Health, HealthCheck, HealthSettings, Limit, Nanos, Outcome,
    OutlierDetector, OutlierEvent, Rejection,
};
use tokio::task::AbortHandle;

use crate::http2::MAX_HEAD_LIST;

/// The wall clock as the traffic state machines read it: time since the
/// first reading in this process.
pub(crate) fn now() -> Nanos {
    at(Instant::now())
}

/// A reading of the clock as the traffic state machines read it (see
/// [`now`]), for a caller that has one already.
pub(crate) fn at(instant: Instant) -> Nanos {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    Nanos::from_duration(instant.saturating_duration_since(*EPOCH.get_or_init(Instant::now)))
}

/// Longest sleep of the outlier timer, so a fresh ejection is returned
/// within this much of its end even when no request comes by.
const OUTLIER_TICK: Duration = Duration::from_millis(50);

/// The state of one pool. See the module doc.
pub(crate) struct PoolState {
    pub(crate) balancer: Arc<Balancer>,
    pub(crate) breaker: Arc<CircuitBreaker>,
    /// Locked briefly, once per finished try, never across an await.
    outlier: Option<Mutex<OutlierDetector>>,
    /// Per endpoint: whether active checks pass (always, without checks).
    healthy: Vec<AtomicBool>,
    /// Per endpoint: the active check's runs, kept here so that a changed
    /// pool can take them over (empty without checks).
    checks: Vec<Mutex<HealthCheck>>,
    /// Per endpoint: when its next probe is due ([`Nanos`]; `u64::MAX`
    /// until its prober has scheduled one), so that a changed pool's new
    /// prober keeps the schedule of each endpoint whose check it takes over.
    next_probe: Vec<AtomicU64>,
    /// Per endpoint: whether outlier detection ejected it.
    ejected: Vec<AtomicBool>,
    addresses: Vec<sluice_compiler::plan::EndpointAddress>,
    pool: String,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl PoolState {
    /// The state of a new pool, with its health checks and outlier timer
    /// started. Call from within a tokio runtime.
    ///
    /// `previous` is the state and plan of the pool this one replaces, when
    /// a reload changed it: each endpoint whose address the old pool had
    /// starts from that endpoint's health check state (if the check sends
    /// the same probe and counts the same statuses as a pass, whatever its
    /// interval, timeout and thresholds), outlier record and latency estimate, so
    /// an endpoint known to be down stays out of rotation across the reload.
    pub(crate) fn start(
        plan: &PoolPlan,
        previous: Option<(&PoolState, &PoolPlan)>,
    ) -> Arc<PoolState> {
        let weights: Vec<u32> = plan.endpoints.iter().map(|e| e.weight).collect();
        let n = weights.len();
        let kept = previous.map(|(_, old)| kept_endpoints(old, plan)).unwrap_or_default();
        let balancer = Balancer::with_settings(plan.algorithm(), &weights, &plan.balance_settings);
        let mut outlier = plan.outlier_detection.map(|s| OutlierDetector::new(s, n));
        let mut checks: Vec<HealthCheck> = match &plan.health_check {
            Some(check) => vec![HealthCheck::new(&check.settings); n],
            None => Vec::new(),
        };
        let at = now();
        // Per endpoint: when its first probe is due, when a reload carried
        // its check's schedule over (see below); else soon.
        let mut first_probes: Vec<Option<Nanos>> = vec![None; checks.len()];
        // Carried ejections the new pool's cap has no room for.
        let mut returned = Vec::new();
        if let Some((old, old_plan)) = previous {
            balancer.carry_from(&old.balancer, &kept);
            if let (Some(detector), Some(old_detector)) = (&mut outlier, &old.outlier) {
                returned = detector.carry_from(&lock(old_detector), &kept, at);
            }
            // A check that asks another question (another request, or other
            // statuses as a pass) starts its runs over; one that only probes
            // at another pace or patience keeps what it found, and when its
            // next probe is due (but no later than the new pace has it).
            if same_health_question(old_plan, plan) {
                let latest = plan
                    .health_check
                    .as_ref()
                    .map(|check| at.after(check.settings.interval).after(check.settings.jitter));
                for (k, from) in kept.iter().enumerate() {
                    let Some(j) = *from else { continue };
                    let (Some(old_check), Some(check), Some(first)) =
                        (old.checks.get(j), checks.get_mut(k), first_probes.get_mut(k))
                    else {
                        continue;
                    };
                    *check = *lock(old_check);
                    let due = old.next_probe.get(j).map(|n| n.load(Ordering::Acquire));
                    *first = due
                        .filter(|&due| due != u64::MAX)
                        .map(|due| Nanos(due).min(latest.unwrap_or(Nanos(due))));
                }
            }
            let carried = kept.iter().flatten().count();
            tracing::info!(pool = %plan.name, endpoints = n, kept = carried, "pool changed; state of kept endpoints carried over");
        }
        let healthy: Vec<bool> =
            (0..n).map(|i| checks.get(i).is_none_or(HealthCheck::is_healthy)).collect();
        let ejected: Vec<bool> =
            (0..n).map(|i| outlier.as_ref().is_some_and(|d| d.is_ejected(i))).collect();
        let state = Arc::new(PoolState {
            balancer: Arc::new(balancer),
            breaker: Arc::new(CircuitBreaker::new(plan.circuit_breaker)),
            outlier: outlier.map(Mutex::new),
            healthy: healthy.into_iter().map(AtomicBool::new).collect(),
            checks: checks.into_iter().map(Mutex::new).collect(),
            next_probe: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            ejected: ejected.into_iter().map(AtomicBool::new).collect(),
            addresses: plan.endpoints.iter().map(|e| e.address.clone()).collect(),
            pool: plan.name.clone(),
            tasks: Mutex::new(Vec::new()),
        });
        for endpoint in 0..n {
            state.refresh(endpoint, at);
        }
        state.apply(&returned, at);

        let mut tasks = Vec::new();
        // `check` refuses a path no probe can be sent with; a plan compiled
        // by an older version may still have one.
        let checked = plan.health_check.as_ref().and_then(|check| match check.target() {
            Ok(target) => Some((check, target)),
            Err(error) => {
                tracing::error!(pool = %plan.name, path = %check.path, %error, "health check path is not a valid request target; the pool's endpoints are not probed");
                None
            }
        });
        if let Some((check, target)) = checked {
            let client = probe_client(check.settings.timeout, plan.protocol);
            for endpoint in 0..n {
                let address = &plan.endpoints[endpoint].address;
                let uri = Uri::builder()
                    .scheme("http")
                    .authority(address.to_string())
                    .path_and_query(target.clone())
                    .build();
                let uri = match uri {
                    Ok(uri) => uri,
                    Err(error) => {
                        tracing::error!(pool = %plan.name, endpoint = %address, %error, "no health check URI for the endpoint; it is not probed");
                        continue;
                    }
                };
                // An endpoint new to the checker is probed soon, and that
                // probe decides its state (see `sluice_traffic::health`).
                let first = first_probes
                    .get(endpoint)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| check.settings.first_probe(at, &mut rand::rng()));
                if let Some(due) = state.next_probe.get(endpoint) {
                    due.store(first.0, Ordering::Release);
                }
                let probe = probe_loop(
                    Arc::downgrade(&state),
                    endpoint,
                    uri,
                    check.settings.clone(),
                    client.clone(),
                    first,
                );
                tasks.push(tokio::spawn(probe).abort_handle());
            }
        }
        if state.outlier.is_some() {
            tasks.push(tokio::spawn(outlier_timer(Arc::downgrade(&state))).abort_handle());
        }
        *lock(&state.tasks) = tasks;
        state
    }

    /// Whether the state of `old` may serve `new` after a reload: the same
    /// endpoints and weights in the same order, and the same policies.
    pub(crate) fn carries_over(old: &PoolPlan, new: &PoolPlan) -> bool {
        let same_endpoints = old.endpoints.len() == new.endpoints.len()
            && old
                .endpoints
                .iter()
                .zip(&new.endpoints)
                .all(|(a, b)| a.address == b.address && a.weight == b.weight);
        same_endpoints
            && same_health_check(old, new)
            && old.algorithm() == new.algorithm()
            && old.balance_settings == new.balance_settings
            && old.outlier_detection == new.outlier_detection
            && old.circuit_breaker == new.circuit_breaker
    }

    /// Take a slot of the pool's in-flight requests.
    pub(crate) fn admit(&self) -> Result<OwnedPermit, Rejection> {
        self.breaker.try_acquire_owned(Limit::Requests)
    }

    /// Learn from one finished try: its latency for `peak_ewma`, its
    /// outcome for outlier detection.
    pub(crate) fn record(&self, endpoint: usize, latency: Duration, outcome: Outcome, at: Nanos) {
        self.balancer.observe(endpoint, latency, outcome, at);
        let Some(outlier) = &self.outlier else { return };
        let events = lock(outlier).observe(endpoint, outcome, at);
        self.apply(&events, at);
    }

    fn apply(&self, events: &[OutlierEvent], at: Nanos) {
        for event in events {
            match *event {
                OutlierEvent::Ejected { endpoint, until, times, .. } => {
                    tracing::info!(
                        pool = %self.pool,
                        endpoint = %self.addresses[endpoint],
                        ejection = ?until.since(at),
                        times,
                        "endpoint ejected after consecutive failures"
                    );
                    self.ejected[endpoint].store(true, Ordering::Release);
                    self.refresh(endpoint, at);
                }
                OutlierEvent::Returned { endpoint } => {
                    tracing::info!(pool = %self.pool, endpoint = %self.addresses[endpoint], "ejected endpoint returned");
                    self.ejected[endpoint].store(false, Ordering::Release);
                    self.refresh(endpoint, at);
                }
                OutlierEvent::Spared { endpoint, .. } => tracing::warn!(
                    pool = %self.pool,
                    endpoint = %self.addresses[endpoint],
                    "endpoint keeps failing but the pool already has as many ejected as max_ejection_percent allows"
                ),
            }
        }
    }

    /// Tell the balancer whether `endpoint` may receive traffic.
    fn refresh(&self, endpoint: usize, at: Nanos) {
        let eligible = self.healthy[endpoint].load(Ordering::Acquire)
            && !self.ejected[endpoint].load(Ordering::Acquire);
        self.balancer.set_eligible(endpoint, eligible, at);
    }
}

impl PoolState {
    /// Stop the health probes and the outlier timer: a reload replaced
    /// this state. Connections accepted under the old plan may keep it
    /// alive for as long as they stay open, and without this each reload
    /// would add a prober per endpoint. What requests still running on the
    /// old plan see of health stays as it was.
    pub(crate) fn retire(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Drop for PoolState {
    fn drop(&mut self) {
        self.retire();
    }
}

/// Whether two pools check their endpoints' health the same way (or
/// neither checks): the same request, with the same settings, in the same
/// protocol.
fn same_health_check(old: &PoolPlan, new: &PoolPlan) -> bool {
    match (&old.health_check, &new.health_check) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.path == b.path && a.settings == b.settings && old.protocol == new.protocol
        }
        _ => false,
    }
}

/// Whether two pools' health checks find out the same thing (or neither
/// checks): the same request in the same protocol, passing on the same
/// statuses. Their interval, jitter, timeout and thresholds may differ: those
/// say how soon a check finds a change, not what an endpoint's state is.
fn same_health_question(old: &PoolPlan, new: &PoolPlan) -> bool {
    match (&old.health_check, &new.health_check) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.path == b.path
                && a.settings.expected_statuses == b.settings.expected_statuses
                && old.protocol == new.protocol
        }
        _ => false,
    }
}

/// For each endpoint of `new`, the index of the endpoint of `old` with the
/// same address, each old endpoint matched at most once (a pool may list
/// an address twice).
fn kept_endpoints(old: &PoolPlan, new: &PoolPlan) -> Vec<Option<usize>> {
    let mut taken = vec![false; old.endpoints.len()];
    new.endpoints
        .iter()
        .map(|endpoint| {
            let j = (0..old.endpoints.len())
                .find(|&j| !taken[j] && old.endpoints[j].address == endpoint.address)?;
            taken[j] = true;
            Some(j)
        })
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

/// A client that speaks the pool's `protocol` (HTTP/2 with prior
/// knowledge for an `http2` pool, whose endpoints may speak nothing else)
/// and opens a new connection for every probe, closed once the probe is
/// answered.
///
/// A probe does not use an HTTP/2 pool's shared connection: it must see
/// whether the endpoint accepts connections now, which a connection opened
/// long ago does not tell (a process that stopped listening can still
/// serve the streams of one it accepted), and a probe on its own connection
/// neither holds the shared one open past its `idle_timeout` nor counts
/// against the circuit breaker's limits meant for requests.
///
/// An HTTP/2 response head is held to the header list the gateway's other
/// upstream clients take ([`MAX_HEAD_LIST`]), not to hyper's 16 KiB, so an
/// endpoint is not judged down for a head its requests' answers may carry.
fn probe_client(timeout: Duration, protocol: Protocol) -> ProbeClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .http2_only(protocol == Protocol::Http2)
        .http2_max_header_list_size(MAX_HEAD_LIST)
        .build(http)
}

/// Probe one endpoint, first at `first`, until the pool state is gone.
async fn probe_loop(
    state: Weak<PoolState>,
    endpoint: usize,
    uri: Uri,
    settings: HealthSettings,
    client: ProbeClient,
    first: Nanos,
) {
    tokio::time::sleep(first.since(now())).await;
    loop {
        let outcome = probe(&client, &uri, settings.timeout).await;
        let Some(state) = state.upgrade() else { return };
        let at = now();
        let Some(check) = state.checks.get(endpoint) else { return };
        let event = lock(check).record(&settings, outcome, at);
        if let Some(event) = event {
            tracing::info!(
                pool = %state.pool,
                endpoint = %state.addresses[endpoint],
                from = health_name(event.from),
                to = health_name(event.to),
                consecutive = event.consecutive,
                last = ?event.last,
                "endpoint health changed"
            );
            state.healthy[endpoint].store(event.to == Health::Healthy, Ordering::Release);
            state.refresh(endpoint, at);
        }
        let next = settings.next_probe(at, &mut rand::rng());
        if let Some(due) = state.next_probe.get(endpoint) {
            due.store(next.0, Ordering::Release);
        }
        drop(state);
        tokio::time::sleep(next.since(at)).await;
    }
}

async fn probe(client: &ProbeClient, uri: &Uri, timeout: Duration) -> Outcome {
    let request = hyper::Request::get(uri.clone())
        .header(hyper::header::USER_AGENT, "sluice-health-check")
        .body(Empty::new());
    let Ok(request) = request else { return Outcome::ConnectFailure };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Outcome::Timeout,
        Ok(Ok(response)) => Outcome::Response(response.status().as_u16()),
        Ok(Err(error)) if error.is_connect() => Outcome::ConnectFailure,
        Ok(Err(_)) => Outcome::Reset,
    }
}

fn health_name(health: Health) -> &'static str {
    match health {
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// End ejections on time even when no request reports to the detector.
async fn outlier_timer(state: Weak<PoolState>) {
    loop {
        let wait = {
            let Some(state) = state.upgrade() else { return };
            let Some(outlier) = &state.outlier else { return };
            let at = now();
            let (events, next) = {
                let mut detector = lock(outlier);
                (detector.poll(at), detector.next_return())
            };
            state.apply(&events, at);
            next.map_or(OUTLIER_TICK, |n| n.since(at).min(OUTLIER_TICK))
        };
        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log output, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// A plan compiled by a version that let such a path through: no
    /// probe can be sent with it, and the pool's endpoints are not probed,
    /// which the log says, naming the pool.
    #[tokio::test]
    async fn a_health_check_path_no_probe_can_use_is_logged() {
        let spec = "version: 1
listeners: [{ name: l, bind: \"127.0.0.1:0\" }]
pools:
  - name: checked
    endpoints: [{ address: \"127.0.0.1:9\" }]
    health_check: { path: /healthz, interval: 1s }
routes: [{ name: r, match: { path: /x }, to: checked }]
";
        let source = sluice_compiler::SourceFile::new("t.yaml", spec);
        let mut plan = sluice_compiler::check(source).plan.expect("a valid spec");
        let pool = &mut plan.pools[0];
        if let Some(check) = pool.health_check.as_mut() {
            check.path = "/healthz now".into();
        }
        let captured = Captured::default();
        let subscriber =
            tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
        let state = tracing::subscriber::with_default(subscriber, || PoolState::start(pool, None));
        assert!(lock(&state.tasks).is_empty(), "a probe was started");
        let log = String::from_utf8_lossy(&lock(&captured.0)).into_owned();
        assert!(log.contains("ERROR"), "{log}");
        assert!(log.contains("pool=checked"), "{log}");
        assert!(log.contains("not probed"), "{log}");
    }
}
