//! Endpoints named by DNS: looked up when a plan loads and again every
//! pool's `resolve_interval`.
//!
//! The plan the compiler produced (the *source*) keeps each name and port.
//! The gateway never serves it directly: [`Resolver::load`] looks up every
//! name and expands the source into a *served* plan in which every endpoint
//! is an IP address. A name that resolves to several addresses becomes
//! several endpoints, one per address, each with the weight the spec gave
//! the name (as Envoy's strict DNS clusters do), in address order right
//! where the name stood; so health checks, outlier detection and the
//! balancer see each address on its own, and a dead address is ejected
//! without taking its siblings with it. On `consistent_hash` each address is
//! placed on the ring by the hash of its own `IP:PORT`, so a name that gains
//! or loses an address moves only that address's share of the keys.
//!
//! A lookup that fails, times out or returns nothing keeps the addresses of
//! the last one that worked, and is logged at warn; a name that has never
//! resolved contributes no endpoint (its pool answers 503 when it has no
//! other). When a periodic lookup changes a name's addresses, the change is
//! logged at info and the new served plan goes through the ordinary reload,
//! so pools whose addresses did not change keep their state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_compiler::plan::{EndpointAddress, EndpointPlan, PoolPlan};
use sluice_compiler::Plan;
use tokio::time::Instant;

/// How long one lookup may take before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A DNS name and port as the spec wrote them.
type Name = (String, u16);

/// The last good addresses of every name, and when each pool looks again.
#[derive(Default)]
pub(crate) struct Resolver {
    known: HashMap<Name, Vec<SocketAddr>>,
    /// Indexed like the source plan's pools: when its names are next due,
    /// `None` for a pool that names no host.
    due: Vec<Option<Instant>>,
}

impl Resolver {
    /// Look up every name of `source` and return the plan to serve. Without
    /// names this is `source` itself.
    pub(crate) async fn load(&mut self, source: &Arc<Plan>) -> Arc<Plan> {
        let now = Instant::now();
        self.due = source
            .pools
            .iter()
            .map(|pool| has_names(pool).then(|| now + pool.resolve_interval))
            .collect();
        if self.due.iter().all(Option::is_none) {
            self.known.clear();
            return Arc::clone(source);
        }
        let names: Vec<(&str, Name)> = source
            .pools
            .iter()
            .flat_map(|pool| pool_names(pool).map(move |name| (pool.name.as_str(), name)))
            .collect();
        for (pool, name) in names {
            let looked_up = lookup(&name).await;
            self.learn(pool, name, looked_up);
        }
        // Forget names the source no longer has.
        let wanted: Vec<Name> = source.pools.iter().flat_map(pool_names).collect();
        self.known.retain(|name, _| wanted.contains(name));
        Arc::new(expand(source, &self.known))
    }

    /// When the next pool is due for a lookup; `None` when no pool names a host.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }

    /// Look up the names of every pool that is due. Returns the new plan to
    /// serve when some name's addresses changed.
    pub(crate) async fn refresh(&mut self, source: &Plan) -> Option<Plan> {
        let now = Instant::now();
        let mut changed = false;
        for (index, pool) in source.pools.iter().enumerate() {
            let Some(Some(due)) = self.due.get(index) else { continue };
            if *due > now {
                continue;
            }
            for name in pool_names(pool) {
                let looked_up = lookup(&name).await;
                changed |= self.learn(&pool.name, name, looked_up);
            }
            self.due[index] = Some(Instant::now() + pool.resolve_interval);
        }
        changed.then(|| expand(source, &self.known))
    }

    /// Take in one lookup's result; whether the name's addresses changed.
    fn learn(
        &mut self,
        pool: &str,
        name: Name,
        looked_up: std::io::Result<Vec<SocketAddr>>,
    ) -> bool {
        let (host, port) = (&name.0, name.1);
        match looked_up {
            Ok(addresses) => {
                let before = self.known.get(&name);
                if before == Some(&addresses) {
                    return false;
                }
                tracing::info!(
                    pool,
                    name = %format_args!("{host}:{port}"),
                    from = ?before.map(Vec::as_slice).unwrap_or_default(),
                    to = ?addresses,
                    "endpoint name resolved to new addresses"
                );
                self.known.insert(name, addresses);
                true
            }
            Err(error) => {
                let kept = self.known.get(&name).map_or(0, Vec::len);
                tracing::warn!(
                    pool,
                    name = %format_args!("{host}:{port}"),
                    %error,
                    kept,
                    "endpoint name lookup failed; keeping the last good addresses"
                );
                false
            }
        }
    }
}

fn has_names(pool: &PoolPlan) -> bool {
    pool.endpoints.iter().any(|e| e.address.ip().is_none())
}

fn pool_names(pool: &PoolPlan) -> impl Iterator<Item = Name> + '_ {
    pool.endpoints.iter().filter_map(|e| match &e.address {
        EndpointAddress::Name { host, port } => Some((host.clone(), *port)),
        EndpointAddress::Ip(_) => None,
    })
}

/// The addresses of `name`, sorted and without repeats, so that a server
/// that rotates its answers does not look like a change.
async fn lookup(name: &Name) -> std::io::Result<Vec<SocketAddr>> {
    let (host, port) = (name.0.as_str(), name.1);
    let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "lookup timed out"))??;
    let mut addresses: Vec<SocketAddr> = found.collect();
    addresses.sort_unstable();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no address"));
    }
    Ok(addresses)
}

/// `source` with every named endpoint replaced by one endpoint per known
/// address (none for a name not yet resolved).
fn expand(source: &Plan, known: &HashMap<Name, Vec<SocketAddr>>) -> Plan {
    let mut served = source.clone();
    for pool in &mut served.pools {
        if !has_names(pool) {
            continue;
        }
        let keys = std::mem::take(&mut pool.balance_settings.endpoint_keys);
        let mut endpoints = Vec::with_capacity(pool.endpoints.len());
        let mut endpoint_keys = Vec::with_capacity(pool.endpoints.len());
        for (i, endpoint) in pool.endpoints.iter().enumerate() {
            match &endpoint.address {
                EndpointAddress::Ip(_) => {
                    endpoints.push(endpoint.clone());
                    let by_text =
                        || sluice_traffic::key_hash(endpoint.address.to_string().as_bytes());
                    endpoint_keys.push(keys.get(i).copied().unwrap_or_else(by_text));
                }
                EndpointAddress::Name { host, port } => {
                    let addresses = known.get(&(host.clone(), *port));
                    for address in addresses.into_iter().flatten() {
                        endpoints.push(EndpointPlan {
                            address: EndpointAddress::Ip(*address),
                            weight: endpoint.weight,
                        });
                        endpoint_keys
                            .push(sluice_traffic::key_hash(address.to_string().as_bytes()));
                    }
                }
            }
        }
        pool.endpoints = endpoints;
        pool.balance_settings.endpoint_keys = endpoint_keys;
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Arc<Plan> {
        let spec = "version: 1\n\
            listeners: [{ name: l, bind: 127.0.0.1:0 }]\n\
            pools:\n  - name: p\n    balance: consistent_hash\n    hash_on: { header: x-key }\n    \
            endpoints:\n      - { address: 127.0.0.1:9001, weight: 3 }\n      \
            - { address: orders.internal:8080, weight: 2 }\n\
            routes: [{ name: r, match: { path: \"/{*rest}\" }, to: p }]\n";
        let source = sluice_compiler::SourceFile::from_bytes("spec.yaml", spec.as_bytes().to_vec());
        Arc::new(sluice_compiler::check(source).plan.expect("the test spec is valid"))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test addresses are valid")
    }

    #[test]
    fn a_name_becomes_one_endpoint_per_address() {
        let source = source();
        let mut known = HashMap::new();
        known.insert(
            ("orders.internal".to_owned(), 8080),
            vec![addr("10.0.0.1:8080"), addr("10.0.0.2:8080")],
        );
        let served = expand(&source, &known);
        let pool = &served.pools[0];
        let listed: Vec<(String, u32)> =
            pool.endpoints.iter().map(|e| (e.address.to_string(), e.weight)).collect();
        assert_eq!(
            listed,
            [
                ("127.0.0.1:9001".into(), 3),
                ("10.0.0.1:8080".into(), 2),
                ("10.0.0.2:8080".into(), 2)
            ]
        );
        assert_eq!(pool.balance_settings.endpoint_keys.len(), 3);
        assert_eq!(
            pool.balance_settings.endpoint_keys[0],
            source.pools[0].balance_settings.endpoint_keys[0]
        );
        assert_eq!(
            pool.balance_settings.endpoint_keys[2],
            sluice_traffic::key_hash(b"10.0.0.2:8080")
        );
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_good_addresses() {
        let source = source();
        let mut resolver = Resolver::default();
        let name = ("orders.internal".to_owned(), 8080);
        assert!(resolver.learn("p", name.clone(), Ok(vec![addr("10.0.0.1:8080")])));
        let failed = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"));
        assert!(!resolver.learn("p", name.clone(), failed));
        assert!(!resolver.learn("p", name.clone(), Ok(vec![addr("10.0.0.1:8080")])));
        let served = expand(&source, &resolver.known);
        assert_eq!(served.pools[0].endpoints.len(), 2);
        assert!(resolver.learn("p", name, Ok(vec![addr("10.0.0.3:8080")])));
    }

    #[test]
    fn a_name_never_resolved_gives_no_endpoint_and_no_panic() {
        let source = source();
        let served = expand(&source, &HashMap::new());
        assert_eq!(served.pools[0].endpoints.len(), 1);

        let settings = sluice_traffic::BalanceSettings::default();
        let empty =
            sluice_traffic::Balancer::with_settings(served.pools[0].algorithm(), &[], &settings);
        let pick =
            sluice_traffic::Pick { now: sluice_traffic::Nanos::ZERO, hash: Some(7), avoid: &[] };
        assert_eq!(empty.pick_with(&mut rand::rng(), &pick), None);
    }
}
