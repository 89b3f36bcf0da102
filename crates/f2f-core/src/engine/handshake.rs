//! The engine's side of [`crate::identity`]: opening connections with a certificate and a
//! nonce, checking the peer's, proving our key on the session, renewing our certificate and
//! applying revocations.

use rand::Rng;

use super::Engine;
use super::peer::{Conn, Opening, Peer, Proving};
use crate::id::PeerId;
use crate::identity::{
    Applied, Certificate, CertificateError, ChannelBinding, Domain, HandshakeError, TranscriptSide,
    UnixTime, transcript,
};
use crate::identity::{RevocationList, Signature};
use crate::membership::NetGroup;
use crate::telemetry::Event;
use crate::time::Instant;
use crate::wire::{Handshake, Message, PROTOCOL_VERSION};

use super::Output;

impl Engine {
    /// Wall-clock time now, from the time the driver gave at creation.
    pub(super) fn unix_now(&self) -> UnixTime {
        let (at, unix) = self.wall;
        UnixTime(unix.0 + self.now.saturating_duration_since(at).as_secs())
    }

    pub(super) fn on_connected(
        &mut self,
        peer: PeerId,
        binding: ChannelBinding,
        group: NetGroup,
        now: Instant,
    ) {
        if peer == self.me || self.banned.contains(&peer) {
            self.out.push_back(Output::Disconnect(peer));
            return;
        }
        self.membership.set_group(peer, group);
        self.drain_membership();
        self.stats.connections += 1;
        let nonce: [u8; 32] = self.rng.random();
        let p = self
            .peers
            .entry(peer)
            .or_insert_with(|| Peer::new(Conn::Connecting, now));
        p.conn = Conn::Open(Box::new(Opening { binding, nonce }));
        p.last_used = now;
        let hello = Message::Handshake(Box::new(Handshake {
            version: PROTOCOL_VERSION,
            swarm: self.swarm,
            certificate: self.identity.certificate.clone(),
            nonce,
            upload_kbps: self.uplink.kbps(now),
        }));
        self.transmit(peer, &hello);
    }

    /// The peer's opening: its certificate must admit it to our swarm as the peer the transport
    /// connected us to. Then we prove our key and send what waited for the connection.
    pub(super) fn on_hello(&mut self, from: PeerId, h: Handshake, now: Instant) {
        if let Err(e) = self.check_hello(from, &h) {
            return self.misbehaved(from, e.to_string(), now);
        }
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        let Conn::Open(opening) = &p.conn else {
            return;
        };
        let Opening { binding, nonce } = **opening;
        let msg = transcript(
            &self.swarm,
            TranscriptSide {
                key: &self.identity.keypair.public(),
                fingerprint: &binding.local,
                nonce: &nonce,
            },
            TranscriptSide {
                key: &h.certificate.public_key,
                fingerprint: &binding.remote,
                nonce: &h.nonce,
            },
        );
        let signature =
            (self.identity.crypto).sign(&self.identity.keypair, Domain::Handshake, &msg);
        p.conn = Conn::Proving(Box::new(Proving {
            binding,
            nonce,
            key: h.certificate.public_key,
            their_nonce: h.nonce,
        }));
        p.upload_bps = f64::from(h.upload_kbps) * 1000.0;
        p.certificate = Some(Box::new(h.certificate));
        let queued = std::mem::take(&mut p.queued);
        self.transmit(from, &Message::Proof { signature });
        if let Some(list) = self.revocations.current().cloned() {
            self.transmit(from, &Message::Revocations(Box::new(list)));
        }
        for msg in queued {
            self.transmit(from, &msg);
        }
    }

    fn check_hello(&mut self, from: PeerId, h: &Handshake) -> Result<(), HandshakeError> {
        if h.version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version(h.version));
        }
        if h.swarm != self.swarm {
            return Err(HandshakeError::WrongSwarm);
        }
        if h.certificate.public_key.peer_id() != from {
            return Err(HandshakeError::NotThePeer);
        }
        let now = self.unix_now();
        self.verifier.check(
            self.identity.crypto.as_ref(),
            &h.certificate,
            &self.swarm,
            now,
            &self.revocations,
        )?;
        Ok(())
    }

    /// The peer's signature over this session's transcript: after it, the connection is its.
    pub(super) fn on_proof(&mut self, from: PeerId, signature: Signature, now: Instant) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        let Conn::Proving(proving) = &p.conn else {
            return;
        };
        let Proving {
            binding,
            nonce,
            key,
            their_nonce,
        } = **proving;
        let msg = transcript(
            &self.swarm,
            TranscriptSide {
                key: &key,
                fingerprint: &binding.remote,
                nonce: &their_nonce,
            },
            TranscriptSide {
                key: &self.identity.keypair.public(),
                fingerprint: &binding.local,
                nonce: &nonce,
            },
        );
        let verified = (self.identity.crypto).verify(&key, Domain::Handshake, &msg, &signature);
        match verified {
            Ok(()) => p.conn = Conn::Ready,
            Err(e) => self.misbehaved(from, HandshakeError::Proof(e).to_string(), now),
        }
    }

    /// A revocation list from the driver (`from` = `None`) or a neighbour: if the authority
    /// signed it and it is newer, peers it revokes are dropped and neighbours hear of it.
    pub(super) fn on_revocations(
        &mut self,
        from: Option<PeerId>,
        list: &RevocationList,
        now: Instant,
    ) {
        let applied = self.revocations.apply(
            self.identity.crypto.as_ref(),
            self.verifier.authority(),
            list,
        );
        match applied {
            Ok(Applied::Stale) => {}
            Ok(Applied::Newer) => {
                let revoked: Vec<PeerId> = (self.peers.iter())
                    .filter(|(_, p)| {
                        (p.certificate.as_ref()).is_some_and(|c| self.revocations.revokes(c))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for peer in revoked {
                    self.stats.peers_revoked += 1;
                    self.out
                        .push_back(Output::Event(Event::PeerRevoked { peer }));
                    self.out.push_back(Output::Disconnect(peer));
                    self.on_peer_gone(peer, false, now);
                }
                let ready: Vec<PeerId> = (self.peers.iter())
                    .filter(|(id, p)| p.conn == Conn::Ready && Some(**id) != from)
                    .map(|(id, _)| *id)
                    .collect();
                for peer in ready {
                    self.transmit(peer, &Message::Revocations(Box::new(list.clone())));
                }
            }
            Err(e) => match from {
                Some(peer) => self.misbehaved(peer, format!("revocation list: {e}"), now),
                None => self.out.push_back(Output::Event(Event::RevocationsRefused {
                    error: e.to_string(),
                })),
            },
        }
    }

    /// A renewed certificate from the driver.
    pub(super) fn on_certificate(&mut self, cert: Certificate) -> Result<(), CertificateError> {
        if cert.public_key != self.identity.keypair.public() {
            return Err(CertificateError::WrongKey);
        }
        if !cert.scope.covers(&self.swarm) {
            return Err(CertificateError::WrongSwarm);
        }
        if cert.not_after <= self.identity.certificate.not_after {
            // An older or equal certificate changes nothing (a late duplicate from the driver).
            return Ok(());
        }
        self.identity.certificate = cert;
        self.renewal_asked = false;
        Ok(())
    }

    /// Asks the driver for a new certificate once ours nears expiry (once per certificate).
    pub(super) fn check_renewal(&mut self) {
        let expires = self.identity.certificate.not_after;
        let renew_at = expires
            .0
            .saturating_sub(self.config.identity.renew_before.as_secs());
        if !self.renewal_asked && self.unix_now().0 >= renew_at {
            self.renewal_asked = true;
            self.out.push_back(Output::RenewCertificate { expires });
        }
    }
}
