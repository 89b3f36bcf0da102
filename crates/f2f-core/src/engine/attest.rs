//! The engine's side of hash attestations ([`crate::config::HashSource::Attested`]): signing
//! the segments we download from the CDN, checking and passing on peers' attestations, trusting
//! a hash once a quorum attests it, and spot-checking such segments against the CDN.

use bytes::Bytes;
use rand::Rng;

use super::quorum::Settled;
use super::{Engine, Output};
use crate::config::HashSource;
use crate::id::{PeerId, SegmentKey};
use crate::integrity::{Attestation, AttestationError, GROUP_BYTES, Outboard};
use crate::scheduler::FetchId;
use crate::segment::SegmentData;
use crate::telemetry::Event;
use crate::time::Instant;
use crate::wire::Message;

/// Newest held segments whose attestations a new data neighbour hears with our availability.
const ATTESTED_ON_LINK: usize = 3;

/// A chunk group of a segment taken from peers, fetched again from the CDN to compare.
#[derive(Debug)]
pub(super) struct SpotCheck {
    key: SegmentKey,
    /// The bytes the peers delivered there.
    expected: Bytes,
}

impl Engine {
    /// The quorum, when hashes come from attestations.
    pub(super) fn attestation_quorum(&self) -> Option<usize> {
        match self.config.hashes {
            HashSource::Attested { quorum, .. } => Some(quorum),
            HashSource::Signed => None,
        }
    }

    pub(super) fn on_attestation(&mut self, from: PeerId, att: Attestation, now: Instant) {
        let Some(quorum) = self.attestation_quorum() else {
            return;
        };
        let key = att.key;
        if key.swarm != self.swarm {
            return;
        }
        // Banned signers' word counts for nothing, whoever relays it.
        if att.signer_ids().any(|id| self.banned.contains(&id)) {
            return;
        }
        if !self.store.contains(&key) && !self.scheduler.is_wanted(&key) {
            // Only segments we fetch are worth a pairing; one we may fetch soon waits.
            if self.watch.may_list(&key) {
                self.quorum.defer(from, att);
            }
            return;
        }
        if !self.quorum.is_news(&att) {
            self.quorum.heard(from, &att);
            return;
        }
        let unix = self.unix_now();
        let checked = att.verify(
            self.identity.crypto.as_ref(),
            &mut self.verifier,
            &self.revocations,
            &self.swarm,
            unix,
        );
        self.stats.attestations_checked += 1;
        match checked {
            Ok(()) => {}
            // A signer whose certificate expired or was revoked since it signed: the relay
            // passed on what it had verified, so it is not to blame; the attestation is void.
            Err(AttestationError::Certificate { .. }) => return,
            Err(e) => return self.misbehaved(from, e.to_string(), now),
        }
        let max = self.config.limits.max_attesters;
        let crypto = self.identity.crypto.as_ref();
        let offered = self.quorum.offer(att.clone(), quorum, max, crypto);
        self.false_attestation(key, offered.equivocators);
        self.quorum.heard(from, &att);
        // Pass the grown set on, so that signers meet across the swarm.
        for peer in self.data_neighbours() {
            self.tell_attestations(&key, peer);
        }
        if let Some(Settled { hash, size }) = offered.settled {
            self.trust_hash(key, hash, size, now);
        }
    }

    /// We now want `key`: the attestations that arrived before are checked.
    pub(super) fn check_deferred(&mut self, key: &SegmentKey, now: Instant) {
        for (from, att) in self.quorum.take_deferred(key) {
            if self.peers.contains_key(&from) {
                self.on_attestation(from, att, now);
            }
        }
    }

    /// Sends `peer` the attestations of `key` it has not heard yet.
    pub(super) fn tell_attestations(&mut self, key: &SegmentKey, peer: PeerId) {
        let Some(quorum) = self.attestation_quorum() else {
            return;
        };
        for att in self.quorum.news_for(key, peer, quorum) {
            self.send(peer, Message::Attest(Box::new(att)));
        }
    }

    /// A new data neighbour hears the attestations of our newest segments.
    pub(super) fn tell_recent_attestations(&mut self, peer: PeerId) {
        let recent: Vec<SegmentKey> = self
            .store
            .keys()
            .rev()
            .take(ATTESTED_ON_LINK)
            .copied()
            .collect();
        for key in recent {
            self.tell_attestations(&key, peer);
        }
    }

    /// A segment completed with bytes from the CDN: its hash from those bytes is the truth.
    /// Whole from the CDN, we attest it; partly, a settled hash that disagrees is false. Returns
    /// the tree, for serving.
    pub(super) fn witness(&mut self, key: SegmentKey, data: &SegmentData, whole: bool) -> Outboard {
        let tree = self.hashing.outboard(data);
        let (hash, size) = (tree.hash(), tree.size());
        if whole {
            let own = Attestation::sign(
                self.identity.crypto.as_ref(),
                &self.identity.keypair,
                &self.identity.certificate,
                key,
                hash,
                size,
            );
            let max = self.config.limits.max_attesters;
            let liars = self.quorum.own(own, max, self.identity.crypto.as_ref());
            self.remember_hash(key, hash, size);
            self.false_attestation(key, liars);
        } else if self
            .quorum
            .settled(&key)
            .is_some_and(|(s, _)| s.hash != hash)
        {
            self.hashes.retain(|(k, _, _)| *k != key);
            let liars = self.quorum.refute(&key);
            self.false_attestation(key, liars);
        }
        tree
    }

    /// With the configured probability, fetches one chunk group of a segment the swarm
    /// delivered from the CDN, to compare with what the attesters vouched for.
    pub(super) fn maybe_spot_check(&mut self, key: SegmentKey, data: &SegmentData) {
        let HashSource::Attested { spot_check, .. } = self.config.hashes else {
            return;
        };
        if data.is_empty() || !self.rng.random_bool(spot_check) {
            return;
        }
        let groups = data.len().div_ceil(GROUP_BYTES);
        let offset = self.rng.random_range(0..groups) * GROUP_BYTES;
        let end = (offset + GROUP_BYTES).min(data.len());
        let expected = data.to_bytes().slice(offset as usize..end as usize);
        let fetch = self.scheduler.reserve_fetch();
        self.spot_checks.insert(fetch, SpotCheck { key, expected });
        self.stats.spot_checks += 1;
        self.out.push_back(Output::FetchCdn {
            fetch,
            key,
            offset,
            end: Some(end),
        });
    }

    /// The CDN's answer to a spot check. Returns `false` if `fetch` is not one.
    pub(super) fn on_spot_check(&mut self, fetch: FetchId, result: Option<&Bytes>) -> bool {
        let Some(check) = self.spot_checks.remove(&fetch) else {
            return false;
        };
        // A failed fetch proves nothing either way, nor does a body of another length (a CDN
        // that ignored the range, a cut connection): only different bytes where ours were.
        let refuted = result
            .is_some_and(|body| body.len() == check.expected.len() && *body != check.expected);
        if refuted {
            self.store.remove(&check.key);
            self.hashes.retain(|(k, _, _)| *k != check.key);
            let liars = self.quorum.refute(&check.key);
            self.false_attestation(check.key, liars);
        }
        true
    }

    /// `signers` attested a hash the CDN's bytes do not have: banned for the session.
    fn false_attestation(&mut self, key: SegmentKey, signers: Vec<PeerId>) {
        if signers.is_empty() {
            return;
        }
        self.stats.false_attesters += signers.len() as u64;
        self.out.push_back(Output::Event(Event::FalseAttestation {
            key,
            signers: signers.clone(),
        }));
        let now = self.now;
        for peer in signers {
            if peer == self.me || !self.banned.insert(peer) {
                continue;
            }
            if self.peers.contains_key(&peer) {
                self.misbehaved(peer, "attested a false segment hash".into(), now);
            }
        }
    }
}
