//! Attackers. Every node runs the real engine; an attacker's *transport* tampers with what its
//! engine sends, or its certificate is forged. Roles are drawn from the seed apart from the
//! world's random sequence, so the honest run of the same scenario differs only in them.

use std::sync::Arc;

use bytes::Bytes;
use f2f_core::id::SegmentKey;
use f2f_core::identity::{Certificate, Crypto, Keypair};
use f2f_core::integrity::{Attestation, SegmentHash};
use f2f_core::wire::{self, AbsentReason, Frame, Limits, Message};
use rustc_hash::FxHashMap;

use crate::scenario::SecuritySpec;

/// What a node does to the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Honest,
    /// Flips a bit in every piece it uploads.
    Corrupt,
    /// Claims every segment of the live window in its announcements, and answers requests for
    /// what it lacks with silence instead of `Absent`.
    Liar,
    /// Holds a certificate signed by a key the swarm does not trust.
    Forged,
    /// One of a group of `quorum − 1` certified viewers that attest, together, a false hash
    /// of every segment any of them announces, and corrupt what they upload.
    Colluder {
        /// The group.
        group: u32,
    },
}

/// Node `i`'s role under `spec`: corrupting, lying and forged shares of the audience.
pub(crate) fn role(seed: u64, i: u32, spec: &SecuritySpec) -> Role {
    let mut h = blake3::Hasher::new_derive_key("frog2frog sim attacker roles");
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    let draw = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 of 32"));
    let u = draw as f64 / 2f64.powi(64);
    let corrupt = spec.corrupt_fraction;
    let liar = corrupt + spec.liar_fraction;
    let forged = liar + spec.forged_fraction;
    if u < corrupt {
        Role::Corrupt
    } else if u < liar {
        Role::Liar
    } else if u < forged {
        Role::Forged
    } else {
        Role::Honest
    }
}

/// The colluding groups' keys, and the false attestations they made.
pub(crate) struct Collusion {
    crypto: Arc<dyn Crypto>,
    groups: Vec<Vec<(Keypair, Certificate)>>,
    forged: FxHashMap<(u32, SegmentKey), Frame>,
}

impl Collusion {
    pub(crate) fn new(crypto: Arc<dyn Crypto>) -> Self {
        Self {
            crypto,
            groups: Vec::new(),
            forged: FxHashMap::default(),
        }
    }

    /// Adds a member to `group`.
    pub(crate) fn enlist(&mut self, group: u32, keypair: Keypair, certificate: Certificate) {
        let g = group as usize;
        if self.groups.len() <= g {
            self.groups.resize_with(g + 1, Vec::new);
        }
        self.groups[g].push((keypair, certificate));
    }

    /// `group`'s joint attestation that `key` (really `size` bytes) hashes to something else.
    fn forge(&mut self, group: u32, key: SegmentKey, size: u64) -> Frame {
        let (crypto, members) = (&self.crypto, &self.groups[group as usize]);
        self.forged
            .entry((group, key))
            .or_insert_with(|| {
                let mut h = blake3::Hasher::new_derive_key("frog2frog sim forged hash");
                h.update(&group.to_le_bytes());
                h.update(&key.to_bytes());
                let hash = SegmentHash(*h.finalize().as_bytes());
                let parts: Vec<Attestation> = members
                    .iter()
                    .map(|(kp, cert)| Attestation::sign(crypto.as_ref(), kp, cert, key, hash, size))
                    .collect();
                let refs: Vec<&Attestation> = parts.iter().collect();
                let att = Attestation::join(crypto.as_ref(), &refs).expect("fresh signatures");
                wire::encode(&Message::Attest(Box::new(att)))
            })
            .clone()
    }
}

/// One flipped bit in the middle of a piece's payload (the frame's body); other frames pass.
fn corrupt(frame: Frame) -> (Frame, bool) {
    if frame.body().is_empty() {
        return (frame, false);
    }
    let mut body = frame.body().to_vec();
    let mid = body.len() / 2;
    body[mid] ^= 0x01;
    (
        Frame::from_parts(frame.head().clone(), Bytes::from(body)),
        true,
    )
}

/// What an attacker's transport sends for `frame`, each with whether it carries corrupted
/// bytes. `window` is the live window a liar claims to hold; `size` gives a segment's length
/// (colluders attest the true length with a false hash).
pub(crate) fn tamper(
    role: Role,
    frame: Frame,
    window: &[SegmentKey],
    collusion: &mut Collusion,
    size: impl Fn(&SegmentKey) -> u64,
) -> Vec<(Frame, bool)> {
    match role {
        Role::Honest | Role::Forged => vec![(frame, false)],
        Role::Corrupt => vec![corrupt(frame)],
        Role::Colluder { group } => match wire::decode(&frame, &Limits::default()) {
            // The engine's own, true attestations never leave.
            Ok(Message::Attest(_)) => Vec::new(),
            Ok(Message::Have { keys, .. }) => {
                let mut out: Vec<(Frame, bool)> = keys
                    .iter()
                    .map(|k| (collusion.forge(group, *k, size(k)), false))
                    .collect();
                out.push((frame, false));
                out
            }
            _ => vec![corrupt(frame)],
        },
        Role::Liar => match wire::decode(&frame, &Limits::default()) {
            Ok(Message::Absent {
                reason: AbsentReason::NotHeld,
                ..
            }) => Vec::new(),
            Ok(Message::Have {
                load,
                upload_kbps,
                partial,
                mut keys,
            }) => {
                for key in window {
                    if !keys.contains(key) {
                        keys.push(*key);
                    }
                }
                let have = Message::Have {
                    load,
                    upload_kbps,
                    partial,
                    keys,
                };
                vec![(wire::encode(&have), false)]
            }
            _ => vec![(frame, false)],
        },
    }
}
