//! Which segment hashes the swarm's attestations establish (see
//! [`crate::integrity::Attestation`]), and which attesters each neighbour has heard of.
//!
//! Per segment, a few candidate statements (hash and size) collect verified attestations.
//! Attestations of one statement whose signer sets do not overlap join into one larger set; a
//! statement is settled once the set reaches the quorum, or when our own CDN download shows
//! it. Until then every candidate is passed on as it grows, so the few first fetchers'
//! signatures meet across the swarm within a few hops; a candidate that only colluders sign
//! never reaches the quorum. A signer found behind two statements for one segment is lying
//! (an honest node attests only its own download, once): its parts are dropped and the engine
//! bans it.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::id::{PeerId, SegmentKey};
use crate::identity::{Certificate, Crypto, Signature};
use crate::integrity::{Attestation, SegmentHash};

/// Different statements tracked per segment: more is only ever an attack.
const CANDIDATES: usize = 4;
/// Verified attestations kept per candidate to join from.
const PARTS: usize = 8;
/// Aggregate signatures remembered per candidate, so a part sent again costs no pairing.
const SEEN: usize = 64;
/// Segments remembered: the live window and a little behind it.
const MEMORY: usize = 24;

#[derive(Debug)]
struct Candidate {
    hash: SegmentHash,
    size: u64,
    parts: Vec<Attestation>,
    /// The largest set of distinct signers the parts join into.
    best: Attestation,
    /// Aggregates already verified for this statement.
    seen: FxHashSet<Signature>,
    /// Signers each neighbour has from us or sent us.
    told: FxHashMap<PeerId, usize>,
}

impl Candidate {
    fn new(att: Attestation) -> Self {
        Self {
            hash: att.hash,
            size: att.size,
            seen: [att.signature].into_iter().collect(),
            parts: vec![att.clone()],
            best: att,
            told: FxHashMap::default(),
        }
    }

    fn states(&self, att: &Attestation) -> bool {
        self.hash == att.hash && self.size == att.size
    }

    fn signers(&self) -> FxHashSet<PeerId> {
        self.parts
            .iter()
            .flat_map(Attestation::signer_ids)
            .collect()
    }

    /// Greedy: the largest parts first, each one whose signers are all new, up to `max`
    /// signers (what one message may carry). Parts in the best set are always kept; others
    /// while there is room.
    fn rejoin(&mut self, crypto: &dyn Crypto, max: usize) {
        self.parts
            .sort_by_key(|p| std::cmp::Reverse(p.signers.len()));
        let mut seen = FxHashSet::default();
        let (mut chosen, mut rest) = (Vec::new(), Vec::new());
        for part in self.parts.drain(..) {
            let ids: Vec<PeerId> = part.signer_ids().collect();
            let fits = seen.len() + ids.len() <= max;
            if fits && ids.iter().all(|id| !seen.contains(id)) {
                seen.extend(ids);
                chosen.push(part);
            } else {
                rest.push(part);
            }
        }
        let refs: Vec<&Attestation> = chosen.iter().collect();
        // Verified parts hold well-formed signatures: joining cannot fail; if it did, the
        // largest part alone stands.
        if let Some(first) = refs.first() {
            self.best = Attestation::join(crypto, &refs).unwrap_or_else(|_| (*first).clone());
        }
        rest.truncate(PARTS.saturating_sub(chosen.len()));
        self.parts = chosen;
        self.parts.extend(rest);
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

/// What a verified attestation did.
#[derive(Debug, Default)]
pub(crate) struct Offered {
    /// The segment's statement is now settled.
    pub(crate) settled: Option<Settled>,
    /// Signers also found behind another statement for the segment.
    pub(crate) equivocators: Vec<PeerId>,
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
            // The furthest ahead goes first: junk keys far in the future cannot push out the
            // segments about to be listed.
            if self
                .deferred
                .last_key_value()
                .is_some_and(|(k, _)| *k < att.key)
            {
                return;
            }
            self.deferred.pop_last();
        }
        let waiting = self.deferred.entry(att.key).or_default();
        let from_sender = waiting.iter().filter(|(p, _)| *p == from).count();
        // A few per sender: one peer cannot crowd out the others'.
        if waiting.len() < PARTS && from_sender < 2 {
            waiting.push((from, att));
        }
    }

    /// The attestations deferred for `key`, now that we want it.
    pub(crate) fn take_deferred(&mut self, key: &SegmentKey) -> Vec<(PeerId, Attestation)> {
        self.deferred.remove(key).unwrap_or_default()
    }

    /// Whether a received attestation could change anything here, and so is worth verifying:
    /// its segment is unsettled, it was not verified before, and it names a signer its
    /// statement's best set lacks (or states something new).
    pub(crate) fn is_news(&self, att: &Attestation) -> bool {
        let Some(claims) = self.segments.get(&att.key) else {
            return true;
        };
        if claims.settled.is_some() {
            return false;
        }
        match claims.candidates.iter().find(|c| c.states(att)) {
            Some(c) => {
                let best: FxHashSet<PeerId> = c.best.signer_ids().collect();
                !c.seen.contains(&att.signature) && att.signer_ids().any(|id| !best.contains(&id))
            }
            None => true,
        }
    }

    /// Notes that `from` knows the signers of `att` (it sent it to us).
    pub(crate) fn heard(&mut self, from: PeerId, att: &Attestation) {
        let Some(c) = self
            .segments
            .get_mut(&att.key)
            .and_then(|cl| cl.candidates.iter_mut().find(|c| c.states(att)))
        else {
            return;
        };
        let n = c.told.entry(from).or_default();
        *n = (*n).max(att.signers.len());
    }

    /// Adds a verified attestation: reports whether this settles the segment (`quorum`
    /// distinct signers) and who signed two statements for it. Sets are joined up to `max`
    /// signers.
    pub(crate) fn offer(
        &mut self,
        att: Attestation,
        quorum: usize,
        max: usize,
        crypto: &dyn Crypto,
    ) -> Offered {
        let key = att.key;
        let claims = self.claims(key);
        if claims.settled.is_some() {
            return Offered::default();
        }
        let signers: FxHashSet<PeerId> = att.signer_ids().collect();
        let equivocators: Vec<PeerId> = (claims.candidates.iter())
            .filter(|c| !c.states(&att))
            .flat_map(|c| c.signers())
            .filter(|id| signers.contains(id))
            .collect();
        if !equivocators.is_empty() {
            // Neither statement of a liar counts: drop its parts everywhere.
            let liars: FxHashSet<PeerId> = equivocators.iter().copied().collect();
            for c in &mut claims.candidates {
                c.parts
                    .retain(|p| p.signer_ids().all(|id| !liars.contains(&id)));
            }
            claims.candidates.retain(|c| !c.parts.is_empty());
            for c in &mut claims.candidates {
                c.rejoin(crypto, max);
            }
            return Offered {
                settled: None,
                equivocators,
            };
        }
        let i = match claims.candidates.iter().position(|c| c.states(&att)) {
            Some(i) => {
                let c = &mut claims.candidates[i];
                if c.seen.len() < SEEN {
                    c.seen.insert(att.signature);
                }
                c.parts.push(att);
                c.rejoin(crypto, max);
                i
            }
            None => {
                if claims.candidates.len() >= CANDIDATES {
                    // Full: the weakest statement makes way for one at least as strong.
                    let weakest = (claims.candidates.iter().enumerate())
                        .min_by_key(|(_, c)| c.best.signers.len())
                        .map(|(i, c)| (i, c.best.signers.len()));
                    match weakest {
                        Some((w, n)) if att.signers.len() >= n => {
                            claims.candidates.swap_remove(w);
                        }
                        _ => return Offered::default(),
                    }
                }
                claims.candidates.push(Candidate::new(att));
                claims.candidates.len() - 1
            }
        };
        if claims.candidates[i].best.signers.len() < quorum {
            return Offered::default();
        }
        // Settled: the other statements and the parts the best set was joined from are done.
        let mut c = claims.candidates.swap_remove(i);
        c.parts = vec![c.best.clone()];
        let settled = Settled {
            hash: c.hash,
            size: c.size,
        };
        claims.candidates = vec![c];
        claims.settled = Some(0);
        Offered {
            settled: Some(settled),
            equivocators: Vec::new(),
        }
    }

    /// Our own CDN download of the segment hashes to `own`'s hash, which we sign: that
    /// statement is settled. Returns the signers of any other statement (attested falsely).
    pub(crate) fn own(&mut self, own: Attestation, max: usize, crypto: &dyn Crypto) -> Vec<PeerId> {
        let claims = self.claims(own.key);
        let (same, other): (Vec<Candidate>, Vec<Candidate>) =
            std::mem::take(&mut claims.candidates)
                .into_iter()
                .partition(|c| c.states(&own));
        let mut c = match same.into_iter().next() {
            Some(mut c) => {
                // Others' signatures of the same statement cannot include ours: we sign only
                // here.
                c.parts.push(own);
                c
            }
            None => Candidate::new(own),
        };
        c.rejoin(crypto, max);
        c.parts = vec![c.best.clone()];
        claims.candidates = vec![c];
        claims.settled = Some(0);
        other.iter().flat_map(Candidate::signers).collect()
    }

    /// A CDN spot check found `key`'s bytes differ from its settled statement: forgets it and
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

    /// The settled statement of `key`, with who attested it.
    pub(crate) fn settled(&self, key: &SegmentKey) -> Option<(Settled, &[Certificate])> {
        let claims = self.segments.get(key)?;
        let c = &claims.candidates[claims.settled?];
        let settled = Settled {
            hash: c.hash,
            size: c.size,
        };
        Some((settled, &c.best.signers))
    }

    /// What `peer` should hear about `key` that it does not know yet: the settled statement's
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
