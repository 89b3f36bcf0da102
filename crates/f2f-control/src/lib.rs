//! # f2f-control — the control plane
//!
//! The centralised half of Frog2Frog: operations are centralised, delivery is not. Today it is
//! the bootstrap tracker ([`tracker`]): it certifies joining nodes, hands them entry peers and
//! relays their first SDP exchanges over a WebSocket ([`protocol`]). A swarm needs it only to
//! form: once members have neighbours, they signal through the overlay.

pub mod protocol;
pub mod tracker;

pub use tracker::{Control, Tracker};
