//! Scripted peers and faults: a node whose frames the test writes, a crash, a stalled sender.

use f2f_core::engine::Output;
use f2f_core::identity::{Certificate, Crypto, Domain, TranscriptSide, transcript};
use f2f_core::wire::{self, Frame, Handshake, Message, PROTOCOL_VERSION};

use super::link::pair;
use super::{Ix, Net, crypto, fingerprint, swarm};

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

    /// Sends scripted `from`'s honest handshake to `to`: its certificate, then its proof.
    pub(crate) fn hello(&mut self, from: Ix, to: Ix) {
        let cert = self.certs[from].clone();
        self.send(from, to, &self.handshake(from, to, cert));
        let proof = self.proof(from, to);
        self.send(from, to, &proof);
    }

    /// `from`'s opening to `to` on their current connection, presenting `certificate`.
    pub(crate) fn handshake(&self, from: Ix, to: Ix, certificate: Certificate) -> Message {
        Message::Handshake(Box::new(Handshake {
            version: PROTOCOL_VERSION,
            swarm: swarm(),
            certificate,
            nonce: self.nonce(from, to),
            upload_kbps: 0,
        }))
    }

    /// `from`'s nonce on its current connection to `to`.
    fn nonce(&self, from: Ix, to: Ix) -> [u8; 32] {
        let conn = self.conn_id(from, to).expect("connected");
        *blake3::hash(&[from as u64, conn].map(u64::to_le_bytes).concat()).as_bytes()
    }

    /// `from`'s honest proof for its current connection to engine `to`, whose handshake must
    /// have arrived.
    pub(crate) fn proof(&self, from: Ix, to: Ix) -> Message {
        let their_nonce = (self.log.iter().rev())
            .find_map(|(f, t, m)| match m {
                Message::Handshake(h) if (*f, *t) == (to, from) => Some(h.nonce),
                _ => None,
            })
            .expect("the engine's handshake arrived");
        let conn = self.conn_id(from, to).expect("connected");
        let (mine, theirs) = (fingerprint(from, to, conn), fingerprint(to, from, conn));
        let nonce = self.nonce(from, to);
        let msg = transcript(
            &swarm(),
            TranscriptSide {
                key: &self.keys[from].public(),
                fingerprint: &mine,
                nonce: &nonce,
            },
            TranscriptSide {
                key: &self.keys[to].public(),
                fingerprint: &theirs,
                nonce: &their_nonce,
            },
        );
        let signature = crypto().sign(&self.keys[from], Domain::Handshake, &msg);
        Message::Proof { signature }
    }

    /// Closes scripted `from`'s connection to `to`.
    pub(crate) fn disconnect(&mut self, from: Ix, to: Ix) {
        self.execute(from, Output::Disconnect(self.id(to)));
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
