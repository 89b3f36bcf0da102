//! A record of every message the agent sends to peers, for protocol analysis: peer traffic is
//! DTLS-encrypted, so a packet capture shows nothing of it (this plays the part of a TLS key
//! log). Each record is the frame's length (`u32`, big-endian) and the frame as the core's
//! wire codec encoded it; `f2f_core::wire::decode` reads it back.
//!
//! Writes are synchronous and flushed one by one, so a killed agent loses nothing: a debugging
//! aid, not for production traffic.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The capture file, shared by the agent's nodes.
#[derive(Clone, Debug)]
pub(crate) struct Capture(Arc<Mutex<BufWriter<File>>>);

impl Capture {
    /// Creates (truncates) the file at `path`.
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self(Arc::new(Mutex::new(BufWriter::new(file)))))
    }

    /// Appends one frame; a failed write is logged and the capture goes on.
    pub(crate) fn record(&self, frame: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX).to_be_bytes();
        let written = (out.write_all(&len))
            .and_then(|()| out.write_all(frame))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            tracing::warn!("peer message capture: {e}");
        }
    }
}
