//! Scripted peers and faults: a node whose frames the test writes, a crash, a stalled sender.

use f2f_core::engine::Output;
use f2f_core::wire::{self, Frame, Handshake, Message, PROTOCOL_VERSION};

use super::link::pair;
use super::{Ix, Net, swarm};

impl Net {
    /// Adds a node without an engine, whose frames the test writes.
    pub(crate) fn add_scripted(&mut self) -> Ix {
        self.add_node()
    }

    /// Adds a scripted node connected to `to`, handshaken and asking for a data link (the
    /// caller runs the clock for the answer).
    pub(crate) fn linked_scripted(&mut self, to: Ix) -> Ix {
        let x = self.add_scripted();
        self.connect(x, to);
        self.run_for(f2f_core::time::Duration::from_millis(100));
        self.hello(x, to);
        self.send(x, to, &Message::LinkRequest);
        x
    }

    /// Opens a connection as if `a`'s engine had asked for it.
    pub(crate) fn connect(&mut self, a: Ix, b: Ix) {
        self.execute(a, Output::Connect(self.id(b)));
    }

    /// Sends scripted `from`'s honest handshake to `to`.
    pub(crate) fn hello(&mut self, from: Ix, to: Ix) {
        let hello = Handshake {
            version: PROTOCOL_VERSION,
            swarm: swarm(),
            peer: self.id(from),
            upload_kbps: 0,
        };
        self.send(from, to, &Message::Handshake(hello));
    }

    pub(crate) fn send(&mut self, from: Ix, to: Ix, msg: &Message) {
        self.send_frame(from, to, wire::encode(msg));
    }

    pub(crate) fn send_frame(&mut self, from: Ix, to: Ix, frame: Frame) {
        let to = self.id(to);
        self.execute(from, Output::Transmit { to, frame });
    }

    /// Kills a node: the others see its connections close one latency later.
    pub(crate) fn crash(&mut self, ix: Ix) {
        (self.nodes[ix].engine, self.nodes[ix].gone) = (None, true);
        for j in 0..self.nodes.len() {
            if self.conns.contains_key(&pair(ix, j)) {
                self.execute(ix, Output::Disconnect(self.id(j)));
            }
        }
    }

    /// From now on, frames from `from` to `to` are lost: the sender stalls, the connection stays.
    pub(crate) fn mute(&mut self, from: Ix, to: Ix) {
        self.muted.insert((from, to));
    }
}
