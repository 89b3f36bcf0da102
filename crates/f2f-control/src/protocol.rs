//! The tracker's WebSocket protocol: JSON text messages, binary values in hex.
//!
//! An agent opens one socket per swarm, sends [`ToTracker::Join`] with its public key and a
//! proof of possession, and gets [`FromTracker::Welcome`]: its certificate, the authority key
//! and a few members to contact. Afterwards the socket carries SDP offers and answers
//! ([`Signal`]) between members that are not connected yet. Once a node has neighbours it
//! relays signalling through them instead (`Message::Signal` in the core's wire protocol).

use bytes::Bytes;
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{Certificate, PublicKey, Signature};
use f2f_core::wire::{DecodeError, decode_certificate, encode_certificate};
use serde::{Deserialize, Serialize};

/// The most entry peers the tracker hands out at once.
pub const MAX_ENTRY_PEERS: usize = 8;
/// The longest SDP the tracker relays (a data-channel-only offer with a few candidates is
/// under 1 KiB).
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// The longest message either side accepts.
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;
/// How often an agent pings its signalling socket so the tracker keeps it (see
/// `tracker::MEMBER_TTL`).
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(20);
/// The longest contact URL a member may advertise.
pub const MAX_CONTACT_LEN: usize = 256;

/// A peer id in hex (32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HexPeer(#[serde(with = "hex::serde")] pub [u8; 32]);

impl From<PeerId> for HexPeer {
    fn from(p: PeerId) -> Self {
        Self(*p.as_bytes())
    }
}

impl From<HexPeer> for PeerId {
    fn from(p: HexPeer) -> Self {
        PeerId::from_bytes(p.0)
    }
}

/// Agent → tracker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToTracker {
    /// Join a swarm: certify this key for it and name a few members.
    Join {
        /// The swarm.
        #[serde(with = "hex::serde")]
        swarm: [u8; 32],
        /// The node's public key (compressed G1).
        #[serde(with = "hex::serde")]
        public_key: [u8; 48],
        /// The key's proof of possession (`prove_possession`).
        #[serde(with = "hex::serde")]
        possession: [u8; 96],
        /// Where the node lets members that come back while the tracker is away signal
        /// through it (a `ws://` URL speaking this protocol), if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
        /// The node's certificate (wire encoding, hex) when it joins through a member's
        /// contact: a member cannot certify, it only checks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
    },
    /// A few more members (the overlay ran dry).
    Peers,
    /// Pass a signal to a member.
    Signal {
        /// The member.
        to: HexPeer,
        /// What to pass.
        signal: Signal,
    },
}

/// Tracker → agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromTracker {
    /// The join succeeded.
    Welcome {
        /// The node's certificate, in the core's wire encoding.
        #[serde(with = "hex::serde")]
        certificate: Vec<u8>,
        /// The key every member's certificate is signed with.
        #[serde(with = "hex::serde")]
        authority: [u8; 48],
        /// Members to contact.
        peers: Vec<HexPeer>,
        /// Members' signalling contacts, remembered for when the tracker is away.
        #[serde(default)]
        contacts: Vec<Contact>,
    },
    /// More members.
    Peers {
        /// Members to contact.
        peers: Vec<HexPeer>,
        /// Their signalling contacts.
        #[serde(default)]
        contacts: Vec<Contact>,
    },
    /// A member's signal.
    Signal {
        /// The member.
        from: HexPeer,
        /// What it sent.
        signal: Signal,
    },
    /// A signal could not be passed: the member is not connected to the tracker.
    Unreachable {
        /// The member.
        peer: HexPeer,
    },
    /// A request was refused; the socket stays open unless the join failed.
    Error {
        /// Why.
        message: String,
    },
}

/// A member that relays signalling for returning members ([`ToTracker::Join::contact`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The member.
    pub peer: HexPeer,
    /// Its signalling socket (`ws://…`, at most [`MAX_CONTACT_LEN`] bytes).
    pub url: String,
}

impl Contact {
    /// Whether `url` is acceptable as a contact: a bounded `ws://` or `wss://` URL.
    pub fn valid_url(url: &str) -> bool {
        url.len() <= MAX_CONTACT_LEN && (url.starts_with("ws://") || url.starts_with("wss://"))
    }
}

/// Connection set-up between two members (no trickle: the SDP carries the host candidates).
///
/// Each side may name its own signalling contact ([`ToTracker::Join::contact`]): members
/// learn each other's contacts from the connections they make, not only from the tracker,
/// so that a member coming back while the control plane is away knows more than the few
/// members that had joined before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// An SDP offer.
    Offer {
        /// The SDP.
        sdp: String,
        /// The offerer's signalling contact, if it relays for returning members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
    },
    /// The SDP answer to an offer.
    Answer {
        /// The SDP.
        sdp: String,
        /// The answerer's signalling contact, if it relays for returning members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
    },
}

impl Signal {
    /// The SDP text.
    pub fn sdp(&self) -> &str {
        match self {
            Self::Offer { sdp, .. } | Self::Answer { sdp, .. } => sdp,
        }
    }

    /// The sender's contact, if it named an acceptable one ([`Contact::valid_url`]). Nothing
    /// vouches for it until the connection's handshake proves who the sender is.
    pub fn contact(&self) -> Option<&str> {
        match self {
            Self::Offer { contact, .. } | Self::Answer { contact, .. } => {
                contact.as_deref().filter(|url| Contact::valid_url(url))
            }
        }
    }
}

/// Why a protocol message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not a message of this protocol.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// An SDP longer than [`MAX_SDP_LEN`].
    #[error("SDP of {0} bytes exceeds the limit")]
    SdpTooLong(usize),
    /// The certificate bytes do not decode.
    #[error("certificate: {0}")]
    Certificate(#[from] DecodeError),
    /// A hex field holds something else.
    #[error("not hex")]
    NotHex,
}

/// Reads one message, within the size bounds.
///
/// # Errors
///
/// Oversized or malformed text.
pub fn parse<T: for<'de> Deserialize<'de> + HasSignal>(text: &str) -> Result<T, ProtocolError> {
    if text.len() > MAX_MESSAGE_LEN {
        return Err(ProtocolError::TooLong(text.len()));
    }
    let msg: T = serde_json::from_str(text)?;
    if let Some(signal) = msg.signal() {
        if signal.sdp().len() > MAX_SDP_LEN {
            return Err(ProtocolError::SdpTooLong(signal.sdp().len()));
        }
    }
    Ok(msg)
}

/// Messages that may carry a [`Signal`] (bounded by [`parse`]).
pub trait HasSignal {
    /// The signal carried, if any.
    fn signal(&self) -> Option<&Signal>;
}

impl HasSignal for ToTracker {
    fn signal(&self) -> Option<&Signal> {
        match self {
            Self::Signal { signal, .. } => Some(signal),
            _ => None,
        }
    }
}

impl HasSignal for FromTracker {
    fn signal(&self) -> Option<&Signal> {
        match self {
            Self::Signal { signal, .. } => Some(signal),
            _ => None,
        }
    }
}

/// The text of one message.
pub fn to_text<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).expect("protocol messages always serialise")
}

impl ToTracker {
    /// A join request, advertising `contact` if the node relays for returning members, and
    /// presenting `certificate` when it joins through a member.
    pub fn join(
        swarm: SwarmId,
        key: &PublicKey,
        possession: &Signature,
        contact: Option<String>,
        certificate: Option<&Certificate>,
    ) -> Self {
        Self::Join {
            swarm: *swarm.as_bytes(),
            public_key: *key.as_bytes(),
            possession: *possession.as_bytes(),
            contact,
            certificate: certificate.map(|c| hex::encode(encode_certificate(c))),
        }
    }
}

/// A certificate presented in a join.
///
/// # Errors
///
/// Not hex, or the bytes do not decode.
pub fn joined_certificate(hex_text: &str) -> Result<Certificate, ProtocolError> {
    let bytes = hex::decode(hex_text).map_err(|_| ProtocolError::NotHex)?;
    Ok(decode_certificate(Bytes::from(bytes))?)
}

/// A welcome's certificate and authority key.
///
/// # Errors
///
/// The certificate bytes do not decode.
pub fn welcome_identity(
    certificate: &[u8],
    authority: [u8; 48],
) -> Result<(Certificate, PublicKey), ProtocolError> {
    let cert = decode_certificate(Bytes::copy_from_slice(certificate))?;
    Ok((cert, PublicKey::from_bytes(authority)))
}

/// A welcome for a certificate.
pub fn welcome(
    certificate: &Certificate,
    authority: &PublicKey,
    peers: Vec<HexPeer>,
    contacts: Vec<Contact>,
) -> FromTracker {
    FromTracker::Welcome {
        certificate: encode_certificate(certificate).to_vec(),
        authority: *authority.as_bytes(),
        peers,
        contacts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bounds_hold() {
        let msg = ToTracker::Signal {
            to: HexPeer([7; 32]),
            signal: Signal::Offer {
                sdp: "v=0".into(),
                contact: Some("ws://127.0.0.1:9/v1/signal".into()),
            },
        };
        let text = to_text(&msg);
        assert!(text.contains("\"type\":\"signal\"") && text.contains("0707"));
        assert_eq!(parse::<ToTracker>(&text).unwrap(), msg);
        let huge = ToTracker::Signal {
            to: HexPeer([7; 32]),
            signal: Signal::Answer {
                sdp: "a".repeat(MAX_SDP_LEN + 1),
                contact: None,
            },
        };
        assert!(matches!(
            parse::<ToTracker>(&to_text(&huge)),
            Err(ProtocolError::SdpTooLong(_))
        ));
        assert!(matches!(
            parse::<ToTracker>(&"x".repeat(MAX_MESSAGE_LEN + 1)),
            Err(ProtocolError::TooLong(_))
        ));
        for bad in [
            "",
            "{}",
            "{\"type\":\"join\"}",
            "{\"type\":\"peers\",\"x\":[",
            "{\"type\":\"signal\",\"to\":\"zz\"}",
        ] {
            assert!(parse::<ToTracker>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signal_names_its_senders_contact_only_when_acceptable() {
        let named = |json: &str| {
            parse::<ToTracker>(json).map(|m| match m {
                ToTracker::Signal { signal, .. } => signal.contact().map(str::to_owned),
                _ => panic!("a signal"),
            })
        };
        let to = "07".repeat(32);
        let offer = format!(
            "{{\"type\":\"signal\",\"to\":\"{to}\",\"signal\":{{\"kind\":\"offer\",\"sdp\":\"v=0\""
        );
        assert_eq!(
            named(&format!("{offer}}}}}")).unwrap(),
            None,
            "older senders name none"
        );
        let with = |url: &str| named(&format!("{offer},\"contact\":\"{url}\"}}}}")).unwrap();
        assert_eq!(
            with("ws://127.0.0.1:9/v1/signal").as_deref(),
            Some("ws://127.0.0.1:9/v1/signal")
        );
        assert_eq!(with("http://127.0.0.1:9/v1/signal"), None);
        assert_eq!(with(&format!("ws://{}", "a".repeat(MAX_CONTACT_LEN))), None);
    }
}
