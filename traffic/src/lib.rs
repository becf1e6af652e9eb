//! Per-request decisions, shared by `sluice serve` and `sluice simulate`.
//!
//! Everything here is a state machine that takes its settings (plain
//! structs the caller lowers from the plan), the facts of a request, and
//! (where it needs them) a random source and a clock reading from the
//! caller. Nothing here reads the wall clock, owns a random generator, or
//! does I/O, so the simulator can drive the exact code the proxy runs, in
//! virtual time and with seeded randomness.
//!
//! - [`Balancer`] picks an endpoint of a pool, skipping the ones health
//!   checks and outlier detection took out.
//! - [`HealthCheck`] turns active probe results into healthy and unhealthy.
//! - [`OutlierDetector`] ejects endpoints that fail real requests.
//! - [`CircuitBreaker`] caps a pool's connections, pending and in-flight
//!   requests.
//! - [`Deadline`] splits a request's time between its tries, and
//!   [`retry::decide`] says whether a failed try is retried, after which
//!   backoff, within the [`RetryBudget`].
//!
//! - [`split::choose`] picks the side of a weighted split between pools.
//!
//! Time is a [`Nanos`] reading since an epoch the caller chooses; how a try
//! ended is an [`Outcome`]. Shared state ([`Balancer`], [`CircuitBreaker`],
//! [`RetryBudget`]) takes `&self` and is safe to use from many threads; the
//! per-endpoint and per-pool machines ([`HealthCheck`], [`OutlierDetector`])
//! take `&mut self` and leave locking to the caller.

pub mod balance;
pub mod circuit;
pub mod deadline;
mod hash;
pub mod health;
mod outcome;
pub mod outlier;
mod random;
pub mod retry;
pub mod split;
mod time;

pub use balance::{Algorithm, BalanceSettings, Balancer, PeakEwma, Pick, SlowStart};
pub use circuit::{CircuitBreaker, CircuitLimits, Limit, Rejection};
pub use deadline::{Deadline, DeadlineSettings, TryBudget};
pub use hash::key_hash;
pub use health::{Health, HealthCheck, HealthEvent, HealthSettings};
pub use outcome::Outcome;
pub use outlier::{OutlierDetector, OutlierEvent, OutlierSettings};
pub use retry::{BudgetSettings, RetryBudget, RetryDecision, RetrySettings, TryFacts};
pub use time::Nanos;
