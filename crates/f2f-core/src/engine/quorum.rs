//! Which segment hashes the swarm's attestations establish (see
//! [`crate::integrity::Attestation`]), and which attesters each neighbour has heard of.
//!
//! Per segment, a few candidate hashes collect verified attestations. Attestations of one hash
//! whose signer sets do not overlap join into one larger set; a hash is settled once the set
//! reaches the quorum, or when our own CDN download shows it. Until then every candidate is
//! passed on as it grows, so the few first fetchers' signatures meet across the swarm within a
//! few hops; a candidate that only colluders sign never reaches the quorum.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::id::{PeerId, SegmentKey};
use crate::identity::{Certificate, Crypto};
use crate::integrity::{Attestation, SegmentHash};

/// Different hashes tracked per segment: more is only ever an attack.
const CANDIDATES: usize = 4;
/// Verified attestations kept per candidate to join from.
const PARTS: usize = 8;
/// Segments remembered: the live window and a little behind it.
const MEMORY: usize = 24;

#[derive(Debug)]
struct Candidate {
    hash: SegmentHash,
    size: u64,
    parts: Vec<Attestation>,
    /// The largest set of distinct signers the parts join into.
    best: Attestation,
    /// Signers each neighbour has from us or sent us.
    told: FxHashMap<PeerId, usize>,
}

impl Candidate {
    fn signers(&self) -> FxHashSet<PeerId> {
        self.parts
            .iter()
            .flat_map(Attestation::signer_ids)
            .collect()
    }

    /// Greedy: the largest parts first, each one whose signers are all new.
    fn rejoin(&mut self, crypto: &dyn Crypto) {
        self.parts
            .sort_by_key(|p| std::cmp::Reverse(p.signers.len()));
        self.parts.truncate(PARTS);
        let mut seen = FxHashSet::default();
        let mut chosen = Vec::new();
        for part in &self.parts {
            let ids: Vec<PeerId> = part.signer_ids().collect();
            if ids.iter().all(|id| !seen.contains(id)) {
                seen.extend(ids);
                chosen.push(part);
            }
        }
        // Verified parts hold well-formed signatures: joining cannot fail; if it did, the
        // largest part alone stands.
        self.best = Attestation::join(crypto, &chosen).unwrap_or_else(|_| chosen[0].clone());
    }
}

#[derive(Debug, Default)]
struct Claims {
    candidates: Vec<Candidate>,
    /// The candidate known to be right: a quorum attests it, or we downloaded it.
    settled: Option<usize>,
}

/// A hash the quorum settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) hash: SegmentHash,
    pub(crate) size: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Quorum {
    segments: BTreeMap<SegmentKey, Claims>,
    /// Attestations of segments we do not want yet (a neighbour's copy usually arrives before
    /// our playlist lists it), checked only once we do.
    deferred: BTreeMap<SegmentKey, Vec<(PeerId, Attestation)>>,
}

impl Quorum {
    /// Keeps an attestation of a segment we do not want yet, unverified.
    pub(crate) fn defer(&mut self, from: PeerId, att: Attestation) {
        if !self.deferred.contains_key(&att.key) && self.deferred.len() >= MEMORY {
            self.deferred.pop_first();
        }
        let waiting = self.deferred.entry(att.key).or_default();
        if waiting.len() < PARTS {
            waiting.push((from, att));
        }
    }

    /// The attestations deferred for `key`, now that we want it.
    pub(crate) fn take_deferred(&mut self, key: &SegmentKey) -> Vec<(PeerId, Attestation)> {
        self.deferred.remove(key).unwrap_or_default()
    }

    /// Whether a received attestation could change anything here, and so is worth verifying:
    /// its segment is unsettled and it names a signer this hash lacks (or a new hash, while
    /// there is room for one).
    pub(crate) fn is_news(&self, att: &Attestation) -> bool {
        let Some(claims) = self.segments.get(&att.key) else {
            return true;
        };
        if claims.settled.is_some() {
            return false;
        }
        match claims.candidates.iter().find(|c| c.hash == att.hash) {
            Some(c) => {
                let known = c.signers();
                att.signer_ids().any(|id| !known.contains(&id))
            }
            None => claims.candidates.len() < CANDIDATES,
        }
    }

    /// Notes that `from` knows the signers of `att` (it sent it to us).
    pub(crate) fn heard(&mut self, from: PeerId, att: &Attestation) {
        let Some(c) = self
            .segments
            .get_mut(&att.key)
            .and_then(|cl| cl.candidates.iter_mut().find(|c| c.hash == att.hash))
        else {
            return;
        };
        let n = c.told.entry(from).or_default();
        *n = (*n).max(att.signers.len());
    }

    /// Adds a verified attestation; returns the hash if this settles the segment (`quorum`
    /// distinct signers).
    pub(crate) fn offer(
        &mut self,
        att: Attestation,
        quorum: usize,
        crypto: &dyn Crypto,
    ) -> Option<Settled> {
        let key = att.key;
        let claims = self.claims(key);
        if claims.settled.is_some() {
            return None;
        }
        let i = match claims.candidates.iter().position(|c| c.hash == att.hash) {
            Some(i) => {
                claims.candidates[i].parts.push(att);
                claims.candidates[i].rejoin(crypto);
                i
            }
            None if claims.candidates.len() < CANDIDATES => {
                claims.candidates.push(Candidate {
                    hash: att.hash,
                    size: att.size,
                    parts: vec![att.clone()],
                    best: att,
                    told: FxHashMap::default(),
                });
                claims.candidates.len() - 1
            }
            None => return None,
        };
        if claims.candidates[i].best.signers.len() < quorum {
            return None;
        }
        // Settled: the other hashes and the parts the best set was joined from are done with.
        let mut c = claims.candidates.swap_remove(i);
        c.parts = vec![c.best.clone()];
        let settled = Settled {
            hash: c.hash,
            size: c.size,
        };
        claims.candidates = vec![c];
        claims.settled = Some(0);
        Some(settled)
    }

    /// Our own CDN download of the segment hashes to `own`'s hash, which we sign: that hash is
    /// settled. Returns the signers of any other hash (attested falsely).
    pub(crate) fn own(&mut self, own: Attestation, crypto: &dyn Crypto) -> Vec<PeerId> {
        let claims = self.claims(own.key);
        let (same, other): (Vec<Candidate>, Vec<Candidate>) =
            std::mem::take(&mut claims.candidates)
                .into_iter()
                .partition(|c| c.hash == own.hash);
        let mut c = same.into_iter().next().unwrap_or_else(|| Candidate {
            hash: own.hash,
            size: own.size,
            parts: Vec::new(),
            best: own.clone(),
            told: FxHashMap::default(),
        });
        // Others' signatures of the same hash cannot include ours: we sign only here.
        c.parts.push(own);
        c.rejoin(crypto);
        c.parts = vec![c.best.clone()];
        claims.candidates = vec![c];
        claims.settled = Some(0);
        other.iter().flat_map(Candidate::signers).collect()
    }

    /// A CDN spot check found `key`'s bytes differ from its settled hash: forgets the hash and
    /// returns everyone who attested it.
    pub(crate) fn refute(&mut self, key: &SegmentKey) -> Vec<PeerId> {
        let Some(claims) = self.segments.get_mut(key) else {
            return Vec::new();
        };
        let Some(i) = claims.settled.take() else {
            return Vec::new();
        };
        claims.candidates.remove(i).signers().into_iter().collect()
    }

    /// The settled hash of `key`, with who attested it.
    pub(crate) fn settled(&self, key: &SegmentKey) -> Option<(Settled, &[Certificate])> {
        let claims = self.segments.get(key)?;
        let c = &claims.candidates[claims.settled?];
        let settled = Settled {
            hash: c.hash,
            size: c.size,
        };
        Some((settled, &c.best.signers))
    }

    /// What `peer` should hear about `key` that it does not know yet: the settled hash's
    /// signers (up to the quorum), or while unsettled every candidate's. Marks them told.
    pub(crate) fn news_for(
        &mut self,
        key: &SegmentKey,
        peer: PeerId,
        quorum: usize,
    ) -> Vec<Attestation> {
        let Some(claims) = self.segments.get_mut(key) else {
            return Vec::new();
        };
        let settled = claims.settled;
        let mut out = Vec::new();
        for (i, c) in claims.candidates.iter_mut().enumerate() {
            if settled.is_some_and(|s| s != i) {
                continue;
            }
            let told = c.told.entry(peer).or_default();
            if *told < quorum && c.best.signers.len() > *told {
                *told = c.best.signers.len();
                out.push(c.best.clone());
            }
        }
        out
    }

    fn claims(&mut self, key: SegmentKey) -> &mut Claims {
        if !self.segments.contains_key(&key) && self.segments.len() >= MEMORY {
            // Oldest position first (see `SegmentKey`'s order).
            self.segments.pop_first();
        }
        self.segments.entry(key).or_default()
    }
}
