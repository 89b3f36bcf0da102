//! The transport between nodes: connections, uplink queues and send-buffer reports.
//!
//! A connection is set up in one round trip and delivers in order. A frame leaves the sender's
//! uplink (first in, first out across all its connections, at `up_bps`), then arrives one latency
//! later. `Drained` follows the sender's queue for that connection falling back to
//! `upload.low_water` after it rose above it, and only then. A closed connection still delivers
//! what the closer had sent; the other side hears `Disconnected` after the last of it.

use std::collections::VecDeque;

use f2f_core::engine::Input;
use f2f_core::id::PeerId;
use f2f_core::identity::ChannelBinding;
use f2f_core::membership::NetGroup;
use f2f_core::time::Duration;
use f2f_core::wire::{self, Frame, Limits};

use super::{Ix, Net, fingerprint};

#[derive(Debug, Default)]
pub(super) struct Conn {
    id: u64,
    open: bool,
    /// The side that closed it; its frames in flight still arrive.
    closer: Option<Ix>,
    /// Per direction (`[low → high index, high → low]`), `(departure from the sender's uplink,
    /// bytes)` of the frames still queued, oldest first.
    queues: [VecDeque<(Duration, u64)>; 2],
}

impl Conn {
    /// Bytes `from` has queued at `now`, and when they will have fallen to `low`.
    fn backlog(&mut self, from: Ix, to: Ix, now: Duration, low: u64) -> (u64, Duration) {
        let queue = &mut self.queues[usize::from(from > to)];
        queue.retain(|(t, _)| *t > now);
        let mut behind = 0;
        let mut low_at = now;
        for &(t, len) in queue.iter().rev() {
            behind += len;
            if behind > low && low_at == now {
                low_at = t;
            }
        }
        (behind, low_at)
    }
}

/// Connections are kept under the node pair, lower index first.
pub(super) fn pair(a: Ix, b: Ix) -> (Ix, Ix) {
    (a.min(b), a.max(b))
}

impl Net {
    /// `Output::Connect`: both sides hear `Connected` one round trip later.
    pub(super) fn dial(&mut self, ix: Ix, peer: PeerId) {
        self.nodes[ix].connects.push(peer);
        let rtt = 2 * self.latency;
        let Some(j) = self.ix(peer).filter(|&j| j != ix && !self.nodes[j].gone) else {
            let failed = move |net: &mut Net| net.input(ix, Input::ConnectFailed(peer));
            return self.at_time(self.now + rtt, failed);
        };
        let (id, wait) = match self.conns.get(&pair(ix, j)) {
            Some(c) if c.closer.is_none() && !c.open => return, // on its way
            Some(c) if c.closer.is_none() => (c.id, Duration::ZERO),
            _ => {
                self.seq += 1;
                let conn = Conn {
                    id: self.seq,
                    ..Conn::default()
                };
                self.conns.insert(pair(ix, j), conn);
                (self.seq, rtt)
            }
        };
        self.at_time(self.now + wait, move |net| net.opened(ix, j, id));
    }

    /// `Output::Disconnect`: what `ix` sent still arrives, then `peer` hears `Disconnected`.
    pub(super) fn hang_up(&mut self, ix: Ix, peer: PeerId) {
        self.nodes[ix].disconnects.push(peer);
        let Some(j) = self.ix(peer) else { return };
        let Some(c) = self.live(ix, j) else { return };
        c.closer = Some(ix);
        let id = c.id;
        let flushed = self.nodes[ix].up_free.max(self.now) + self.latency;
        self.at_time(flushed, move |net| net.closed(ix, j, id));
    }

    /// `Output::Transmit`: queued on the sender's uplink, then one latency on the way.
    pub(super) fn transmit(&mut self, ix: Ix, to: PeerId, frame: Frame) {
        let (now, low, latency) = (self.now, self.config.upload.low_water, self.latency);
        let Some(j) = self.ix(to) else { return };
        let Some(c) = self.conns.get_mut(&pair(ix, j)) else {
            return;
        };
        if !c.open || c.closer.is_some() {
            return;
        }
        let node = &mut self.nodes[ix];
        let len = frame.len() as u64;
        let serialise = Duration::from_secs_f64(len as f64 * 8.0 / node.up_bps);
        node.up_free = node.up_free.max(now) + serialise;
        let (before, _) = c.backlog(ix, j, now, low);
        c.queues[usize::from(ix > j)].push_back((node.up_free, len));
        let (_, low_at) = c.backlog(ix, j, now, low);
        let (id, arrival) = (c.id, node.up_free + latency);
        self.at_time(arrival, move |net| net.arrived(ix, j, id, frame));
        if before <= low && before + len > low {
            // The buffer rose above `low_water`: the transport reports when it is back.
            self.at_time(low_at, move |net| net.drained(ix, j, id));
        }
    }

    /// Whether `a` and `b` hold an open connection neither closed.
    pub(crate) fn is_connected(&self, a: Ix, b: Ix) -> bool {
        let conn = self.conns.get(&pair(a, b));
        conn.is_some_and(|c| c.open && c.closer.is_none())
    }

    /// The id of the connection between `a` and `b` that nobody closed yet.
    pub(crate) fn conn_id(&self, a: Ix, b: Ix) -> Option<u64> {
        let conn = self.conns.get(&pair(a, b));
        conn.filter(|c| c.closer.is_none()).map(|c| c.id)
    }

    /// Connection `id` between `a` and `b`, if it still exists.
    fn conn(&mut self, a: Ix, b: Ix, id: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&pair(a, b)).filter(|c| c.id == id)
    }

    /// The connection between `a` and `b` that nobody closed yet.
    fn live(&mut self, a: Ix, b: Ix) -> Option<&mut Conn> {
        self.conns
            .get_mut(&pair(a, b))
            .filter(|c| c.closer.is_none())
    }

    fn opened(&mut self, a: Ix, b: Ix, id: u64) {
        let Some(c) = self.conn(a, b, id) else { return };
        c.open = true;
        for (me, other) in [(a, b), (b, a)] {
            let binding = ChannelBinding {
                local: fingerprint(me, other, id),
                remote: fingerprint(other, me, id),
            };
            let (peer, group) = (self.id(other), NetGroup::of(self.addrs[other]));
            self.input(
                me,
                Input::Connected {
                    peer,
                    binding,
                    group,
                },
            );
        }
    }

    fn arrived(&mut self, from: Ix, to: Ix, id: u64, frame: Frame) {
        let muted = self.muted.contains(&(from, to));
        let Some(c) = self.conn(from, to, id) else {
            return;
        };
        if muted || c.closer.is_some_and(|x| x != from) {
            return;
        }
        if let Ok(msg) = wire::decode(&frame, &Limits::default()) {
            self.log.push((from, to, msg));
        }
        let from = self.id(from);
        self.input(to, Input::Receive { from, frame });
    }

    fn closed(&mut self, from: Ix, to: Ix, id: u64) {
        if self.conn(from, to, id).is_some() {
            self.conns.remove(&pair(from, to));
            self.input(to, Input::Disconnected(self.id(from)));
        }
    }

    fn drained(&mut self, from: Ix, to: Ix, id: u64) {
        let (now, low, peer) = (self.now, self.config.upload.low_water, self.id(to));
        let Some(c) = self.conn(from, to, id) else {
            return;
        };
        let (buffered, low_at) = c.backlog(from, to, now, low);
        if buffered > low {
            // More was sent meanwhile: the buffer is not low yet.
            return self.at_time(low_at, move |net| net.drained(from, to, id));
        }
        self.input(from, Input::Drained { peer, buffered });
    }
}
