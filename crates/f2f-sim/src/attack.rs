//! Attackers. Every node runs the real engine; an attacker's *transport* tampers with what its
//! engine sends, or its certificate is forged. Roles are drawn from the seed apart from the
//! world's random sequence, so the honest run of the same scenario differs only in them.

use bytes::Bytes;
use f2f_core::id::SegmentKey;
use f2f_core::wire::{self, AbsentReason, Frame, Limits, Message};

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

/// What an attacker's transport sends for `frame` (`None`: nothing). `window` is the live
/// window a liar claims to hold. Returns the frame and whether it carries corrupted bytes.
pub(crate) fn tamper(role: Role, frame: Frame, window: &[SegmentKey]) -> Option<(Frame, bool)> {
    match role {
        Role::Honest | Role::Forged => Some((frame, false)),
        Role::Corrupt => {
            if frame.body().is_empty() {
                return Some((frame, false));
            }
            // A piece: its payload is the body. One flipped bit in the middle of it.
            let mut body = frame.body().to_vec();
            let mid = body.len() / 2;
            body[mid] ^= 0x01;
            Some((
                Frame::from_parts(frame.head().clone(), Bytes::from(body)),
                true,
            ))
        }
        Role::Liar => match wire::decode(&frame, &Limits::default()) {
            Ok(Message::Absent {
                reason: AbsentReason::NotHeld,
                ..
            }) => None,
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
                Some((wire::encode(&have), false))
            }
            _ => Some((frame, false)),
        },
    }
}
