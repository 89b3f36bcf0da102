//! # f2f-agent — the tokio driver of Frog2Frog
//!
//! Where the sans-IO engine of `f2f-core` meets real sockets. Today: the peer transport, WebRTC
//! data channels through `str0m` ([`transport`]). The HTTP proxy, the loader API and the
//! agent's event loop come next (issue #4).

pub mod transport;
