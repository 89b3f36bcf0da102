//! # f2f-control — the control plane
//!
//! The centralised half of Frog2Frog: operations are centralised, delivery is not. Today:
//! authorisation ([`session`]: a viewer's CDN token and node key become a peer certificate,
//! within per-viewer limits, recorded in SQLite ([`store`])), and the bootstrap tracker
//! ([`tracker`]): it admits certified nodes, hands them entry peers and relays their first SDP
//! exchanges over a WebSocket ([`protocol`]). A swarm needs it only to form: once members have
//! neighbours, they signal through the overlay. Remote configuration ([`config`], [`remote`]):
//! versions of the engine settings, signed with the operator key and pushed to agents.
//! Telemetry ([`telemetry`]): billing, verified receipts, health and debug events from agents,
//! drawn live by the operator dashboard ([`dashboard`]).

pub mod config;
pub mod dashboard;
pub mod protocol;
pub mod remote;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tracker;

pub use remote::Configs;
pub use session::{Issuer, IssuerConfig, SessionLimits, TokenValidator};
pub use store::Store;
pub use tracker::{Control, Tracker};
