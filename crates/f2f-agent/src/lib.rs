//! # f2f-agent — the Linux agent
//!
//! The tokio driver of Frog2Frog's sans-IO engine: WebRTC peer transport ([`transport`],
//! through `str0m`), the tracker client ([`signalling`]), CDN requests ([`cdn`]), one event
//! loop per swarm ([`node`]) that feeds the engine and carries out what it asks, the segment
//! loader API ([`Agent::load_segment`], [`loader`]) and the HTTP proxy ([`proxy`]) that any
//! unmodified player can use.

mod agent;
pub mod capture;
pub mod cdn;
pub mod control;
pub mod keyfile;
pub mod loader;
mod metrics;
pub mod node;
pub mod proxy;
mod rejoin;
mod relay;
mod remote;
pub mod rewrite;
pub mod signalling;
pub mod telemetry;
pub mod transport;

pub use agent::{
    Agent, AgentConfig, AgentError, AgentStats, DeliveryRecord, Manifest, ManifestKind,
};
