//! Per-request decisions, shared by `sluice serve` and `sluice simulate`.
//!
//! Everything here is a state machine that takes its settings, the facts of
//! a request, and (where it needs them) a random source and a clock reading
//! from the caller. Nothing here reads the wall clock, owns a random
//! generator, or does I/O, so the simulator can drive the exact code the
//! proxy runs, in virtual time and with seeded randomness.
//!
//! - [`balance::Balancer`]: picks an endpoint of a pool.

pub mod balance;
mod random;

pub use balance::{Algorithm, Balancer};
