//! # f2f-core — the Frog2Frog protocol engine
//!
//! This crate does no I/O: no sockets, no files, no threads, no clock and no OS randomness.
//! It is a state machine, driven like `quinn-proto` or `str0m`.

pub mod config;
pub mod content;
pub mod engine;
pub mod id;
pub mod membership;
pub mod scheduler;
pub mod segment;
pub mod swarm_size;
pub mod telemetry;
pub mod time;
pub mod wire;

mod store;
mod uplink;
mod upload;
