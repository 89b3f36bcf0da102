//! # f2f-core — the Frog2Frog protocol engine
//!
//! One node's part in a live-stream swarm, as a pure state machine: swarm and segment identity,
//! the wire codec, gossip membership, the download scheduler, uploads and telemetry counters.
//!
//! ## What this crate does not do
//!
//! No I/O of any kind: no sockets, no files, no threads, no clock, no OS randomness. It is driven
//! like `quinn-proto` or `str0m`: a driver (the simulator today; the Linux agent, the browser
//! runtime and the mobile bindings later) moves bytes and time, and the [`engine::Engine`] says
//! what to do next. That is what lets the same code run in tokio, in a browser, and ten thousand
//! times over in a deterministic simulator. It builds for `wasm32-unknown-unknown`.
//!
//! ## Drive loop
//!
//! Feed [`engine::Input`]s with [`engine::Engine::handle_input`], call
//! [`engine::Engine::handle_timeout`] when [`engine::Engine::poll_timeout`] says, and after each
//! call drain [`engine::Engine::poll_output`] until it returns `None`. See the example on
//! [`engine`].
//!
//! ## Time and randomness
//!
//! Every input carries `now` ([`time::Instant`], `web_time` in the browser). Random choices come
//! from a ChaCha RNG seeded by [`config::Config::seed`] mixed with the node's id, so a run is
//! reproducible from its inputs.
//!
//! ## Panics, errors and hostile input
//!
//! Nothing a peer sends can panic the engine or make it allocate beyond
//! [`wire::Limits`]: undecodable or out-of-protocol input disconnects that peer and is reported
//! as [`telemetry::Event::PeerMisbehaved`], and the engine carries on. `handle_input` returns an
//! error only when the *driver* breaks the contract (an invalid config, input after leaving).
//! `expect` is used only for internal invariants, each with the reason it holds.

pub mod config;
pub mod content;
pub mod coord;
pub mod engine;
pub mod id;
pub mod identity;
pub mod integrity;
pub mod membership;
pub mod receipt;
pub mod scheduler;
pub mod segment;
pub mod swap;
pub mod swarm_size;
pub mod telemetry;
pub mod time;
pub mod wire;

mod store;
mod uplink;
mod upload;
