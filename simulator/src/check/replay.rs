//! `arrivals: { replay: FILE }`: reading the access log and resolving its
//! routes against the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_compiler::Diagnostic;

use super::{codes, known, Checker, MAX_REQUESTS};
use crate::scenario::Scenario;
use crate::workload::{Replay, RouteShare, Topology};

impl Checker<'_> {
    /// The replayed arrivals and the traffic mix they make, one share per
    /// route the log names; `None` (and findings) when the log is unusable.
    pub(super) fn replay(
        &mut self,
        s: &Scenario,
        file: &str,
        topology: &Topology,
    ) -> (Option<Replay>, Vec<RouteShare>) {
        let pointer = "/arrivals/replay";
        if !s.traffic.is_empty() {
            let message = "a replay takes its traffic mix from the access log";
            let finding = Diagnostic::error(codes::BAD_ARRIVALS, message)
                .with_help("remove `traffic`, or replay without it");
            self.push_at_key(finding, "/traffic");
        }
        let scale = s.arrivals.scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            let message = format!("replay scale {scale} is not positive");
            self.push(Diagnostic::error(codes::OUT_OF_RANGE, message), "/arrivals/scale");
            return (None, Vec::new());
        }

        let path = match &self.base {
            Some(base) => base.join(file),
            None => std::path::PathBuf::from(file),
        };
        let fail = |why: String| Diagnostic::error(codes::REPLAY_LOG, why);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                let help = "the path is relative to the scenario file";
                self.push(fail(format!("cannot read `{file}`: {e}")).with_help(help), pointer);
                return (None, Vec::new());
            }
        };
        let log = match crate::replay::read(&text, MAX_REQUESTS as usize) {
            Ok(log) => log,
            Err(why) => {
                let help = "replay reads the JSON lines of `sluice serve --access-log`, version 1";
                self.push(fail(format!("`{file}` {why}")).with_help(help), pointer);
                return (None, Vec::new());
            }
        };
        let Some(first) = log.requests.first().map(|r| r.at_ms) else {
            let message = format!("`{file}` holds no request that matched a route");
            self.push(fail(message), pointer);
            return (None, Vec::new());
        };

        // Routes become traffic shares and clients small numbers, both in
        // order of first appearance.
        let mut shares: BTreeMap<&str, u32> = BTreeMap::new();
        let mut traffic: Vec<RouteShare> = Vec::new();
        let mut clients: BTreeMap<&str, u32> = BTreeMap::new();
        let mut addresses = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        let (mut times, mut share_of, mut client_of) = (Vec::new(), Vec::new(), Vec::new());
        for r in &log.requests {
            let share = match shares.get(r.route.as_str()) {
                Some(&share) => share,
                None => {
                    let Some(route) = topology.route_index(&r.route) else {
                        if !unknown.contains(&r.route.as_str()) {
                            unknown.push(&r.route);
                        }
                        continue;
                    };
                    traffic.push(RouteShare::new(route, 0.0));
                    let share = (traffic.len() - 1) as u32;
                    shares.insert(&r.route, share);
                    share
                }
            };
            traffic[share as usize].weight += 1.0;
            let next = clients.len() as u32;
            client_of.push(*clients.entry(r.client.as_str()).or_insert_with(|| {
                addresses.push(r.address);
                next
            }));
            share_of.push(share);
            let since = (r.at_ms - first) as f64 * 1e6 / scale;
            times.push(since.round() as u64);
        }
        for route in unknown {
            let names = topology.routes.iter().map(|r| r.name.as_str());
            let message =
                format!("`{file}` has requests for route `{route}`, which the spec lacks");
            let help = known("routes", route, names);
            self.push(Diagnostic::error(codes::UNKNOWN_ROUTE, message).with_help(help), pointer);
        }
        let replay = Replay {
            times: Arc::from(times),
            shares: Arc::from(share_of),
            clients: Arc::from(client_of),
            addresses: Arc::from(addresses),
            distinct_clients: clients.len() as u32,
            scale,
        };
        (Some(replay), traffic)
    }
}
