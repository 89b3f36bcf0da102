//! Encoding and decoding of [`Message`]s to and from [`Frame`]s.
//!
//! Field encodings, all big-endian:
//!
//! | field                    | bytes                                                         |
//! |--------------------------|---------------------------------------------------------------|
//! | `u8`, `u32`, `u64`       | fixed width                                                   |
//! | `bool`                   | one byte, `0` or `1`; anything else is an error               |
//! | `PeerId`, `SwarmId`      | 32                                                            |
//! | `SegmentKey`             | swarm (32), rendition, position tag, position, variant: 57    |
//! | `SegmentPosition` tag    | `u8`: `0` = `Sequence`, `1` = `Time`                          |
//! | `AbsentReason`           | `u8`: `0` = `NotHeld`, `1` = `Busy`                           |
//! | list                     | `u16` count, then the items                                   |
//! | byte string              | `u32` length, then the bytes                                  |
//! | `PublicKey`, `Signature` | 48, 96 (compressed BLS12-381 points; checked when verified)   |
//! | `Certificate`            | [`Certificate::signed_bytes`] (105), then the signature: 201  |
//! | `SessionId`              | 16                                                            |
//! | `SegmentHash`            | 32 (BLAKE3)                                                   |
//!
//! Each message's fields follow in declaration order; a [`Message::Piece`]'s payload is last, so
//! [`encode`] can leave it in a separate buffer. The encoding is canonical: a frame that decodes
//! re-encodes to the same bytes.

use bytes::buf::Chain;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::frame::Frame;
use super::message::{AbsentReason, Handshake, Listed, Message, PROTOCOL_VERSION, RequestId};
use crate::coord::{Coord, Position};
use crate::id::{PeerId, RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};
use crate::identity::{
    Certificate, PUBLIC_KEY_LEN, PublicKey, RevocationList, Scope, SessionId, Signature, UnixTime,
};
use crate::integrity::{Attestation, SegmentHash};
use crate::receipt::Delivery;
use crate::swap::{SwapId, SwapMessage};

/// Bounds on what [`decode`] and [`frame_len`] accept, so that a peer cannot make us buffer or
/// allocate more than we chose to.
///
/// Every count and length read from the wire is checked against these before anything is
/// allocated. A sender must keep within the receiver's limits (in particular, chunk segments into
/// pieces of at most [`max_piece_len`](Self::max_piece_len) bytes); frames beyond them are
/// rejected, not truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole frame, header included, in bytes.
    ///
    /// Default: 1 MiB + 64 bytes, well above a full [`max_piece_len`](Self::max_piece_len) piece
    /// (payload + 95 bytes of header and fields) and the largest list messages (a full `Have` is
    /// 29 KiB). A byte-stream transport buffers at most this much per connection. Keep it at least
    /// `max_piece_len + 95`.
    pub max_frame_len: usize,
    /// Largest [`Message::Piece`] payload, in bytes. Default: 256 KiB.
    pub max_piece_len: usize,
    /// Most items in a list field (`Shuffle.peers`, `ShuffleReply.peers`, `Have.keys`,
    /// `SizeSketch.mins`). Default: 512.
    pub max_list_len: usize,
    /// Longest [`Message::Bitmap`] `bits` field, in bytes (8 segments per byte); it also bounds
    /// `variants`, which has one entry per set bit. Default: 256 (2,048 segments).
    pub max_bitmap_bytes: usize,
    /// Most sessions, and most keys, in a [`Message::Revocations`] list. Default: 4,096.
    pub max_revocations: usize,
    /// Most signers in a [`Message::Attest`] (each carries a 201-byte certificate). Default: 16.
    pub max_attesters: usize,
    /// Longest [`Message::Signal`] payload, in bytes. Default: 16 KiB (an SDP offer is 1–2 KiB).
    pub max_signal_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_len: (1 << 20) + 64,
            max_piece_len: 256 << 10,
            max_list_len: 512,
            max_bitmap_bytes: 256,
            max_revocations: 4096,
            max_attesters: 16,
            max_signal_len: 16 << 10,
        }
    }
}

/// Why [`decode`] or [`frame_len`] rejected a frame.
///
/// Every variant is a peer sending something this build cannot accept; each kind of mistake has
/// its own variant so that telemetry and bans can tell them apart. Field names are given as
/// `Message.field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame ends before `field` does.
    #[error("truncated {field}: needs {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read (`header` for the frame header).
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the frame.
        remaining: usize,
    },
    /// The header's version byte is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {found} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version byte received.
        found: u8,
    },
    /// The header's kind byte names no message of this version.
    #[error("unknown message kind {kind:#04x}")]
    UnknownKind {
        /// The kind byte received.
        kind: u8,
    },
    /// The header's body length disagrees with the bytes the frame holds after the header.
    #[error("header declares a {declared}-byte body, the frame holds {actual}")]
    LengthMismatch {
        /// Body length in the header.
        declared: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// The message's fields end before the body does.
    #[error("{extra} trailing bytes after a {kind} message")]
    TrailingBytes {
        /// The message kind.
        kind: &'static str,
        /// Bytes left over.
        extra: usize,
    },
    /// The header declares a frame longer than [`Limits::max_frame_len`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// Declared frame length, header included (`u64`: it can exceed a 32-bit `usize`).
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A list's count exceeds [`Limits::max_list_len`].
    #[error("{field} has {count} items, the limit is {max}")]
    ListTooLong {
        /// The list field.
        field: &'static str,
        /// Declared item count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A piece's payload exceeds [`Limits::max_piece_len`].
    #[error("piece payload of {len} bytes exceeds the limit of {max}")]
    PieceTooLong {
        /// Declared payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A signal's payload exceeds [`Limits::max_signal_len`].
    #[error("signal payload of {len} bytes exceeds the limit of {max}")]
    SignalTooLong {
        /// Declared payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A bitmap exceeds [`Limits::max_bitmap_bytes`].
    #[error("bitmap of {len} bytes exceeds the limit of {max}")]
    BitmapTooLong {
        /// Declared bitmap length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A bitmap's variant list does not have exactly one entry per set bit.
    #[error("bitmap has {set_bits} set bits but {variants} variant tags")]
    VariantCountMismatch {
        /// Set bits in `Bitmap.bits`.
        set_bits: usize,
        /// Entries in `Bitmap.variants`.
        variants: usize,
    },
    /// A bitmap's window runs past the largest sequence number (`base + 8 * bytes > u64::MAX`).
    #[error("bitmap window of {bits} bits from {base} overflows the sequence space")]
    BitmapWindowOverflow {
        /// `Bitmap.base`.
        base: u64,
        /// Bits in the bitmap.
        bits: usize,
    },
    /// A boolean field holds a byte other than 0 or 1.
    #[error("{field} is a bool but holds {byte}")]
    InvalidBool {
        /// The field.
        field: &'static str,
        /// The byte received.
        byte: u8,
    },
    /// An enum field holds a tag this version does not define.
    #[error("{field} has unknown tag {tag}")]
    InvalidTag {
        /// The field.
        field: &'static str,
        /// The tag received.
        tag: u8,
    },
    /// A piece's range is empty or runs past the segment's declared total length.
    #[error("piece range {offset}..{end} is empty or runs past the segment's {total} bytes")]
    PieceOutOfRange {
        /// `Piece.offset`.
        offset: u64,
        /// `Piece.end`.
        end: u64,
        /// `Piece.total`.
        total: u64,
    },
    /// A `Request` whose range ends at or before its start.
    #[error("request for bytes {offset}..{end} is empty")]
    EmptyRange {
        /// `Request.offset`.
        offset: u64,
        /// `Request.end`.
        end: u64,
    },
    /// A `SizeSketch` list is not in ascending order.
    #[error("{field} is not ascending at index {index}")]
    UnsortedSketch {
        /// The list.
        field: &'static str,
        /// Index of the first entry smaller than its predecessor.
        index: usize,
    },
}

/// Bytes before the body: version (u8), kind (u8), body length (u32).
const HEADER_LEN: usize = 6;
const KEY_LEN: usize = SegmentKey::ENCODED_LEN;

/// Encodes `msg` into a frame.
///
/// A [`Message::Piece`]'s payload becomes the frame's [`body`](Frame::body) without a copy;
/// everything else is written into one new buffer.
///
/// # Panics
///
/// If a list has more than `u16::MAX` items or a byte field more than `u32::MAX` bytes. The engine
/// never builds such messages, and receivers' [`Limits`] reject far smaller ones.
pub fn encode(msg: &Message) -> Frame {
    let kind = Kind::of(msg);
    let mut w = BytesMut::with_capacity(HEADER_LEN + 128);
    w.put_u8(PROTOCOL_VERSION);
    w.put_u8(kind as u8);
    w.put_u32(0); // body length, patched below
    let mut payload = Bytes::new();
    match msg {
        Message::Handshake(h) => {
            w.put_u8(h.version);
            w.put_slice(h.swarm.as_bytes());
            put_certificate(&mut w, &h.certificate);
            w.put_slice(&h.nonce);
            w.put_u32(h.upload_kbps);
        }
        Message::Proof { signature } => w.put_slice(signature.as_bytes()),
        Message::Revocations(list) => {
            w.put_u64(list.serial);
            put_count(&mut w, list.sessions.len(), 16);
            for s in &list.sessions {
                w.put_slice(&s.0);
            }
            put_count(&mut w, list.keys.len(), PUBLIC_KEY_LEN);
            for k in &list.keys {
                w.put_slice(k.as_bytes());
            }
            w.put_slice(list.signature.as_bytes());
        }
        Message::Join | Message::LinkRequest | Message::LinkDrop => {}
        Message::ForwardJoin { joiner, ttl } => {
            w.put_slice(joiner.as_bytes());
            w.put_u8(*ttl);
        }
        Message::Neighbour { high_priority } => w.put_u8((*high_priority).into()),
        Message::NeighbourReply { accepted } | Message::LinkReply { accepted } => {
            w.put_u8((*accepted).into());
        }
        Message::Shuffle { origin, ttl, peers } => {
            w.put_slice(origin.as_bytes());
            w.put_u8(*ttl);
            put_peers(&mut w, peers);
        }
        Message::ShuffleReply { peers } => put_peers(&mut w, peers),
        Message::Disconnect { alive } => w.put_u8((*alive).into()),
        Message::Signal {
            from,
            to,
            ttl,
            payload,
        } => {
            w.put_slice(from.as_bytes());
            w.put_slice(to.as_bytes());
            w.put_u8(*ttl);
            put_len(&mut w, payload.len());
            w.put_slice(payload);
        }
        Message::Neighbours { position, peers } => {
            put_position(&mut w, position);
            put_count(&mut w, peers.len(), LISTED_LEN);
            for listed in peers {
                w.put_slice(listed.peer.as_bytes());
                put_coord(&mut w, &listed.coord);
            }
        }
        Message::Ping { nonce } => w.put_u32(*nonce),
        Message::Pong { nonce, position } => {
            w.put_u32(*nonce);
            put_position(&mut w, position);
        }
        Message::Swap(swap) => put_swap(&mut w, swap),
        Message::Have {
            load,
            upload_kbps,
            partial,
            keys,
        } => {
            w.put_u8(*load);
            w.put_u32(*upload_kbps);
            w.put_u8((*partial).into());
            put_count(&mut w, keys.len(), KEY_LEN);
            for key in keys {
                put_key(&mut w, key);
            }
        }
        Message::Bitmap {
            swarm,
            rendition,
            base,
            bits,
            variants,
        } => {
            w.put_slice(swarm.as_bytes());
            w.put_u64(rendition.as_u64());
            w.put_u64(*base);
            put_len(&mut w, bits.len());
            w.put_slice(bits);
            put_count(&mut w, variants.len(), 8);
            for variant in variants {
                w.put_u64(variant.as_u64());
            }
        }
        Message::Attest(att) => {
            put_key(&mut w, &att.key);
            w.put_slice(&att.hash.0);
            w.put_u64(att.size);
            put_count(&mut w, att.signers.len(), Certificate::ENCODED_LEN);
            for cert in &att.signers {
                put_certificate(&mut w, cert);
            }
            w.put_slice(att.signature.as_bytes());
        }
        Message::Receipt {
            delivery,
            signature,
        } => {
            w.put_u64(delivery.window);
            w.put_u64(delivery.bytes);
            w.put_u32(delivery.segments);
            w.put_slice(signature.as_bytes());
        }
        Message::Request {
            id,
            key,
            offset,
            end,
        } => {
            w.put_u32(id.0);
            put_key(&mut w, key);
            w.put_u64(*offset);
            match end {
                Some(end) => {
                    w.put_u8(1);
                    w.put_u64(*end);
                }
                None => w.put_u8(0),
            }
        }
        Message::Piece {
            id,
            key,
            offset,
            end,
            total,
            data,
        } => {
            w.put_u32(id.0);
            put_key(&mut w, key);
            w.put_u64(*offset);
            w.put_u64(*end);
            w.put_u64(*total);
            put_len(&mut w, data.len());
            payload = data.clone();
        }
        Message::Cancel { key } => put_key(&mut w, key),
        Message::Absent { id, key, reason } => {
            w.put_u32(id.0);
            put_key(&mut w, key);
            w.put_u8(match reason {
                AbsentReason::NotHeld => 0,
                AbsentReason::Busy => 1,
            });
        }
        Message::SizeSketch {
            rendition,
            epoch,
            mins,
            capable,
        } => {
            w.put_u64(rendition.as_u64());
            w.put_u64(*epoch);
            for list in [mins, capable] {
                put_count(&mut w, list.len(), 8);
                for min in list {
                    w.put_u64(*min);
                }
            }
        }
    }
    let body_len = w.len() - HEADER_LEN + payload.len();
    let body_len = u32::try_from(body_len).expect("frame body longer than u32::MAX (see # Panics)");
    w[2..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
    Frame::from_parts(w.freeze(), payload)
}

/// Decodes one frame.
///
/// Accepts both a contiguous frame ([`Frame::from_bytes`]) and any split of one into two parts,
/// such as [`encode`]'s output. A piece's payload is a slice of the frame's buffer, not a copy,
/// unless it straddles the two parts.
///
/// Never panics, and allocates no more than `limits` allow: every count and length is checked
/// against the limits and against the bytes present before anything is allocated.
///
/// # Errors
///
/// A [`DecodeError`] naming the first thing wrong with the frame: its header, a field, or bytes
/// left over. The connection's peer sent it; what to do about that is the caller's policy.
pub fn decode(frame: &Frame, limits: &Limits) -> Result<Message, DecodeError> {
    let mut r = Reader {
        buf: frame.head().clone().chain(frame.body().clone()),
    };
    let header = parse_header(r.array("header")?, limits)?;
    let kind = header.kind;
    let actual = r.remaining();
    if header.frame_len != frame.len() {
        return Err(DecodeError::LengthMismatch {
            declared: header.body_len,
            actual,
        });
    }

    let msg = match kind {
        Kind::Handshake => Message::Handshake(Box::new(Handshake {
            version: r.u8("Handshake.version")?,
            swarm: r.swarm("Handshake.swarm")?,
            certificate: r.certificate("Handshake.certificate")?,
            nonce: r.array("Handshake.nonce")?,
            upload_kbps: r.u32("Handshake.upload_kbps")?,
        })),
        Kind::Proof => Message::Proof {
            signature: Signature::from_bytes(r.array("Proof.signature")?),
        },
        Kind::Revocations => decode_revocations(&mut r, limits)?,
        Kind::Join => Message::Join,
        Kind::ForwardJoin => Message::ForwardJoin {
            joiner: r.peer("ForwardJoin.joiner")?,
            ttl: r.u8("ForwardJoin.ttl")?,
        },
        Kind::Neighbour => Message::Neighbour {
            high_priority: r.bool("Neighbour.high_priority")?,
        },
        Kind::NeighbourReply => Message::NeighbourReply {
            accepted: r.bool("NeighbourReply.accepted")?,
        },
        Kind::Shuffle => Message::Shuffle {
            origin: r.peer("Shuffle.origin")?,
            ttl: r.u8("Shuffle.ttl")?,
            peers: r.peers("Shuffle.peers", limits)?,
        },
        Kind::ShuffleReply => Message::ShuffleReply {
            peers: r.peers("ShuffleReply.peers", limits)?,
        },
        Kind::Disconnect => Message::Disconnect {
            alive: r.bool("Disconnect.alive")?,
        },
        Kind::Signal => decode_signal(&mut r, limits)?,
        Kind::LinkRequest => Message::LinkRequest,
        Kind::LinkReply => Message::LinkReply {
            accepted: r.bool("LinkReply.accepted")?,
        },
        Kind::LinkDrop => Message::LinkDrop,
        Kind::Neighbours => {
            let position = r.position("Neighbours.position")?;
            let count = r.count("Neighbours.peers", limits.max_list_len, LISTED_LEN)?;
            let mut peers = Vec::with_capacity(count);
            for _ in 0..count {
                peers.push(Listed {
                    peer: r.peer("Neighbours.peers")?,
                    coord: r.coord("Neighbours.peers")?,
                });
            }
            Message::Neighbours { position, peers }
        }
        Kind::Ping => Message::Ping {
            nonce: r.u32("Ping.nonce")?,
        },
        Kind::Pong => Message::Pong {
            nonce: r.u32("Pong.nonce")?,
            position: r.position("Pong.position")?,
        },
        Kind::SwapPrepare => Message::Swap(SwapMessage::Prepare {
            id: r.swap_id("SwapPrepare.id")?,
            drop: r.peer("SwapPrepare.drop")?,
            add: r.peer("SwapPrepare.add")?,
        }),
        Kind::SwapVote => Message::Swap(SwapMessage::Vote {
            id: r.swap_id("SwapVote.id")?,
            gain_kbps: match r.bool("SwapVote.agreed")? {
                true => Some(r.i32("SwapVote.gain_kbps")?),
                false => None,
            },
        }),
        Kind::SwapCommit => Message::Swap(SwapMessage::Commit {
            id: r.swap_id("SwapCommit.id")?,
        }),
        Kind::SwapAbort => Message::Swap(SwapMessage::Abort {
            id: r.swap_id("SwapAbort.id")?,
        }),
        Kind::Have => {
            let load = r.u8("Have.load")?;
            let upload_kbps = r.u32("Have.upload_kbps")?;
            let partial = r.bool("Have.partial")?;
            let count = r.count("Have.keys", limits.max_list_len, KEY_LEN)?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push(r.key("Have.keys")?);
            }
            Message::Have {
                load,
                upload_kbps,
                partial,
                keys,
            }
        }
        Kind::Bitmap => decode_bitmap(&mut r, limits)?,
        Kind::Attest => decode_attest(&mut r, limits)?,
        Kind::Receipt => Message::Receipt {
            delivery: Delivery {
                window: r.u64("Receipt.window")?,
                bytes: r.u64("Receipt.bytes")?,
                segments: r.u32("Receipt.segments")?,
            },
            signature: Signature::from_bytes(r.array("Receipt.signature")?),
        },
        Kind::Request => decode_request(&mut r)?,
        Kind::Piece => decode_piece(&mut r, limits)?,
        Kind::Cancel => Message::Cancel {
            key: r.key("Cancel.key")?,
        },
        Kind::Absent => Message::Absent {
            id: RequestId(r.u32("Absent.id")?),
            key: r.key("Absent.key")?,
            reason: match r.u8("Absent.reason")? {
                0 => AbsentReason::NotHeld,
                1 => AbsentReason::Busy,
                tag => {
                    return Err(DecodeError::InvalidTag {
                        field: "Absent.reason",
                        tag,
                    });
                }
            },
        },
        Kind::SizeSketch => {
            let rendition = RenditionId::from_u64(r.u64("SizeSketch.rendition")?);
            let epoch = r.u64("SizeSketch.epoch")?;
            let mins = decode_sorted(&mut r, "SizeSketch.mins", limits)?;
            let capable = decode_sorted(&mut r, "SizeSketch.capable", limits)?;
            Message::SizeSketch {
                rendition,
                epoch,
                mins,
                capable,
            }
        }
    };

    match r.remaining() {
        0 => Ok(msg),
        extra => Err(DecodeError::TrailingBytes {
            kind: kind.name(),
            extra,
        }),
    }
}

fn decode_revocations(r: &mut Reader, limits: &Limits) -> Result<Message, DecodeError> {
    let serial = r.u64("Revocations.serial")?;
    let count = r.count("Revocations.sessions", limits.max_revocations, 16)?;
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        sessions.push(SessionId(r.array("Revocations.sessions")?));
    }
    let count = r.count("Revocations.keys", limits.max_revocations, PUBLIC_KEY_LEN)?;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        keys.push(PublicKey::from_bytes(r.array("Revocations.keys")?));
    }
    let signature = Signature::from_bytes(r.array("Revocations.signature")?);
    Ok(Message::Revocations(Box::new(RevocationList {
        serial,
        sessions,
        keys,
        signature,
    })))
}

/// Length of the complete frame at the start of `buf`, for transports that deliver a byte stream.
///
/// Returns `Ok(None)` while `buf` holds less than a whole frame, and `Ok(Some(len))` once its
/// first `len` bytes are one (pass them to [`decode`] and drop them from the stream). Fails as soon
/// as the header is known to be bad (wrong version, unknown kind, or a length over
/// [`Limits::max_frame_len`]), so a peer cannot make the caller buffer more than that limit.
///
/// # Errors
///
/// [`DecodeError::UnsupportedVersion`], [`DecodeError::UnknownKind`] or
/// [`DecodeError::FrameTooLong`]. The stream cannot be resynchronised after any of them: close it.
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        // Check what has arrived of the header: a wrong version or kind is already an error.
        if let Some(&version) = buf.first() {
            check_version(version)?;
        }
        if let Some(&kind) = buf.get(1) {
            Kind::from_u8(kind).ok_or(DecodeError::UnknownKind { kind })?;
        }
        return Ok(None);
    };
    let len = parse_header(*header, limits)?.frame_len;
    Ok((buf.len() >= len).then_some(len))
}

/// A frame header that passed [`parse_header`].
struct Header {
    kind: Kind,
    /// The body length as declared.
    body_len: u32,
    /// Header plus body: at least [`HEADER_LEN`], at most [`Limits::max_frame_len`].
    frame_len: usize,
}

/// Checks a frame header: version, kind, and length against [`Limits::max_frame_len`].
fn parse_header(header: [u8; HEADER_LEN], limits: &Limits) -> Result<Header, DecodeError> {
    let [version, kind, len @ ..] = header;
    check_version(version)?;
    let kind = Kind::from_u8(kind).ok_or(DecodeError::UnknownKind { kind })?;
    let body_len = u32::from_be_bytes(len);
    // In u64: on a 32-bit target a u32 length plus the header can overflow `usize`.
    let len = HEADER_LEN as u64 + u64::from(body_len);
    match usize::try_from(len) {
        Ok(frame_len) if frame_len <= limits.max_frame_len => Ok(Header {
            kind,
            body_len,
            frame_len,
        }),
        _ => Err(DecodeError::FrameTooLong {
            len,
            max: limits.max_frame_len,
        }),
    }
}

fn check_version(version: u8) -> Result<(), DecodeError> {
    match version {
        PROTOCOL_VERSION => Ok(()),
        found => Err(DecodeError::UnsupportedVersion { found }),
    }
}

fn decode_attest(r: &mut Reader, limits: &Limits) -> Result<Message, DecodeError> {
    let key = r.key("Attest.key")?;
    let hash = SegmentHash(r.array("Attest.hash")?);
    let size = r.u64("Attest.size")?;
    let count = r.count(
        "Attest.signers",
        limits.max_attesters,
        Certificate::ENCODED_LEN,
    )?;
    let mut signers = Vec::with_capacity(count);
    for _ in 0..count {
        signers.push(r.certificate("Attest.signers")?);
    }
    let signature = Signature::from_bytes(r.array("Attest.signature")?);
    Ok(Message::Attest(Box::new(Attestation {
        key,
        hash,
        size,
        signers,
        signature,
    })))
}

fn decode_request(r: &mut Reader) -> Result<Message, DecodeError> {
    let id = RequestId(r.u32("Request.id")?);
    let key = r.key("Request.key")?;
    let offset = r.u64("Request.offset")?;
    let end = match r.u8("Request.end")? {
        0 => None,
        1 => {
            let end = r.u64("Request.end")?;
            if end <= offset {
                return Err(DecodeError::EmptyRange { offset, end });
            }
            Some(end)
        }
        tag => {
            return Err(DecodeError::InvalidTag {
                field: "Request.end",
                tag,
            });
        }
    };
    Ok(Message::Request {
        id,
        key,
        offset,
        end,
    })
}

fn decode_signal(r: &mut Reader, limits: &Limits) -> Result<Message, DecodeError> {
    let from = r.peer("Signal.from")?;
    let to = r.peer("Signal.to")?;
    let ttl = r.u8("Signal.ttl")?;
    let len = r.len("Signal.payload")?;
    if len > limits.max_signal_len {
        return Err(DecodeError::SignalTooLong {
            len,
            max: limits.max_signal_len,
        });
    }
    let payload = r.bytes(len, "Signal.payload")?;
    Ok(Message::Signal {
        from,
        to,
        ttl,
        payload,
    })
}

fn decode_piece(r: &mut Reader, limits: &Limits) -> Result<Message, DecodeError> {
    let id = RequestId(r.u32("Piece.id")?);
    let key = r.key("Piece.key")?;
    let offset = r.u64("Piece.offset")?;
    let end = r.u64("Piece.end")?;
    let total = r.u64("Piece.total")?;
    let len = r.len("Piece.data")?;
    if len > limits.max_piece_len {
        return Err(DecodeError::PieceTooLong {
            len,
            max: limits.max_piece_len,
        });
    }
    let data = r.bytes(len, "Piece.data")?;
    if offset >= end || end > total {
        return Err(DecodeError::PieceOutOfRange { offset, end, total });
    }
    Ok(Message::Piece {
        id,
        key,
        offset,
        end,
        total,
        data,
    })
}

/// A `u16`-counted list of ascending `u64`s.
fn decode_sorted(
    r: &mut Reader,
    field: &'static str,
    limits: &Limits,
) -> Result<Vec<u64>, DecodeError> {
    let count = r.count(field, limits.max_list_len, 8)?;
    let mut list = Vec::with_capacity(count);
    for index in 0..count {
        let v = r.u64(field)?;
        if list.last().is_some_and(|&prev| v < prev) {
            return Err(DecodeError::UnsortedSketch { field, index });
        }
        list.push(v);
    }
    Ok(list)
}

fn decode_bitmap(r: &mut Reader, limits: &Limits) -> Result<Message, DecodeError> {
    let swarm = r.swarm("Bitmap.swarm")?;
    let rendition = RenditionId::from_u64(r.u64("Bitmap.rendition")?);
    let base = r.u64("Bitmap.base")?;
    let len = r.len("Bitmap.bits")?;
    if len > limits.max_bitmap_bytes {
        return Err(DecodeError::BitmapTooLong {
            len,
            max: limits.max_bitmap_bytes,
        });
    }
    let bits = r.bytes(len, "Bitmap.bits")?;
    let window = len.checked_mul(8).and_then(|n| u64::try_from(n).ok());
    if window.and_then(|n| base.checked_add(n)).is_none() {
        return Err(DecodeError::BitmapWindowOverflow {
            base,
            bits: len.saturating_mul(8),
        });
    }
    // At most 8 * max_bitmap_bytes, so it bounds the allocation below.
    let set_bits = bits.iter().map(|b| b.count_ones() as usize).sum::<usize>();
    let count = usize::from(r.u16("Bitmap.variants")?);
    if count != set_bits {
        return Err(DecodeError::VariantCountMismatch {
            set_bits,
            variants: count,
        });
    }
    r.need(count.saturating_mul(8), "Bitmap.variants")?;
    let mut variants = Vec::with_capacity(count);
    for _ in 0..count {
        variants.push(VariantTag::from_u64(r.u64("Bitmap.variants")?));
    }
    Ok(Message::Bitmap {
        swarm,
        rendition,
        base,
        bits,
        variants,
    })
}

/// The kind byte of each message.
///
/// Numbered in groups (handshake, membership, data links, segments, swarm size) to leave room.
/// `Handshake`'s number must never change: it is how two versions recognise each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Handshake = 0x01,
    Proof = 0x02,
    Revocations = 0x03,
    Join = 0x10,
    ForwardJoin = 0x11,
    Neighbour = 0x12,
    NeighbourReply = 0x13,
    Shuffle = 0x14,
    ShuffleReply = 0x15,
    Disconnect = 0x16,
    Signal = 0x17,
    LinkRequest = 0x20,
    LinkReply = 0x21,
    LinkDrop = 0x22,
    Neighbours = 0x23,
    SwapPrepare = 0x24,
    SwapVote = 0x25,
    SwapCommit = 0x26,
    SwapAbort = 0x27,
    Ping = 0x28,
    Pong = 0x29,
    Have = 0x30,
    Bitmap = 0x31,
    Attest = 0x36,
    Request = 0x32,
    Piece = 0x33,
    Cancel = 0x34,
    Absent = 0x35,
    SizeSketch = 0x40,
    Receipt = 0x50,
}

impl Kind {
    const ALL: [Self; 30] = [
        Self::Handshake,
        Self::Proof,
        Self::Revocations,
        Self::Join,
        Self::ForwardJoin,
        Self::Neighbour,
        Self::NeighbourReply,
        Self::Shuffle,
        Self::ShuffleReply,
        Self::Disconnect,
        Self::Signal,
        Self::LinkRequest,
        Self::LinkReply,
        Self::LinkDrop,
        Self::Neighbours,
        Self::SwapPrepare,
        Self::SwapVote,
        Self::SwapCommit,
        Self::SwapAbort,
        Self::Ping,
        Self::Pong,
        Self::Have,
        Self::Bitmap,
        Self::Attest,
        Self::Request,
        Self::Piece,
        Self::Cancel,
        Self::Absent,
        Self::SizeSketch,
        Self::Receipt,
    ];

    fn from_u8(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|&kind| kind as u8 == byte)
    }

    const fn of(msg: &Message) -> Self {
        match msg {
            Message::Handshake(_) => Self::Handshake,
            Message::Proof { .. } => Self::Proof,
            Message::Revocations(_) => Self::Revocations,
            Message::Join => Self::Join,
            Message::ForwardJoin { .. } => Self::ForwardJoin,
            Message::Neighbour { .. } => Self::Neighbour,
            Message::NeighbourReply { .. } => Self::NeighbourReply,
            Message::Shuffle { .. } => Self::Shuffle,
            Message::ShuffleReply { .. } => Self::ShuffleReply,
            Message::Disconnect { .. } => Self::Disconnect,
            Message::Signal { .. } => Self::Signal,
            Message::LinkRequest => Self::LinkRequest,
            Message::LinkReply { .. } => Self::LinkReply,
            Message::LinkDrop => Self::LinkDrop,
            Message::Neighbours { .. } => Self::Neighbours,
            Message::Swap(SwapMessage::Prepare { .. }) => Self::SwapPrepare,
            Message::Swap(SwapMessage::Vote { .. }) => Self::SwapVote,
            Message::Swap(SwapMessage::Commit { .. }) => Self::SwapCommit,
            Message::Swap(SwapMessage::Abort { .. }) => Self::SwapAbort,
            Message::Ping { .. } => Self::Ping,
            Message::Pong { .. } => Self::Pong,
            Message::Have { .. } => Self::Have,
            Message::Bitmap { .. } => Self::Bitmap,
            Message::Attest(_) => Self::Attest,
            Message::Request { .. } => Self::Request,
            Message::Piece { .. } => Self::Piece,
            Message::Cancel { .. } => Self::Cancel,
            Message::Absent { .. } => Self::Absent,
            Message::SizeSketch { .. } => Self::SizeSketch,
            Message::Receipt { .. } => Self::Receipt,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Handshake => "Handshake",
            Self::Proof => "Proof",
            Self::Revocations => "Revocations",
            Self::Join => "Join",
            Self::ForwardJoin => "ForwardJoin",
            Self::Neighbour => "Neighbour",
            Self::NeighbourReply => "NeighbourReply",
            Self::Shuffle => "Shuffle",
            Self::ShuffleReply => "ShuffleReply",
            Self::Disconnect => "Disconnect",
            Self::Signal => "Signal",
            Self::LinkRequest => "LinkRequest",
            Self::LinkReply => "LinkReply",
            Self::LinkDrop => "LinkDrop",
            Self::Neighbours => "Neighbours",
            Self::SwapPrepare => "SwapPrepare",
            Self::SwapVote => "SwapVote",
            Self::SwapCommit => "SwapCommit",
            Self::SwapAbort => "SwapAbort",
            Self::Ping => "Ping",
            Self::Pong => "Pong",
            Self::Have => "Have",
            Self::Bitmap => "Bitmap",
            Self::Attest => "Attest",
            Self::Request => "Request",
            Self::Piece => "Piece",
            Self::Cancel => "Cancel",
            Self::Absent => "Absent",
            Self::SizeSketch => "SizeSketch",
            Self::Receipt => "Receipt",
        }
    }
}

/// Bytes of a [`Listed`] neighbour on the wire: id and coordinate.
const LISTED_LEN: usize = 32 + 12;

fn put_coord(w: &mut BytesMut, c: &Coord) {
    w.put_i32(c.x);
    w.put_i32(c.y);
    w.put_i32(c.height);
}

fn put_position(w: &mut BytesMut, p: &Position) {
    put_coord(w, &p.coord);
    w.put_u16(p.error_permille);
}

fn put_swap(w: &mut BytesMut, swap: &SwapMessage) {
    let put_id = |w: &mut BytesMut, id: &SwapId| {
        w.put_slice(id.proposer.as_bytes());
        w.put_u32(id.nonce);
    };
    match swap {
        SwapMessage::Prepare { id, drop, add } => {
            put_id(w, id);
            w.put_slice(drop.as_bytes());
            w.put_slice(add.as_bytes());
        }
        SwapMessage::Vote { id, gain_kbps } => {
            put_id(w, id);
            w.put_u8(gain_kbps.is_some().into());
            if let Some(gain) = gain_kbps {
                w.put_i32(*gain);
            }
        }
        SwapMessage::Commit { id } | SwapMessage::Abort { id } => put_id(w, id),
    }
}

fn put_count(w: &mut BytesMut, count: usize, item_len: usize) {
    let count16 = u16::try_from(count).expect("list longer than u16::MAX (see encode's # Panics)");
    w.reserve(2 + count * item_len);
    w.put_u16(count16);
}

fn put_len(w: &mut BytesMut, len: usize) {
    let len = u32::try_from(len).expect("byte field longer than u32::MAX (see encode's # Panics)");
    w.put_u32(len);
}

fn put_peers(w: &mut BytesMut, peers: &[PeerId]) {
    put_count(w, peers.len(), 32);
    for peer in peers {
        w.put_slice(peer.as_bytes());
    }
}

fn put_certificate(w: &mut BytesMut, cert: &Certificate) {
    w.put_slice(&cert.statement());
    w.put_slice(cert.signature.as_bytes());
}

/// A certificate in its wire encoding, outside a message (the control plane hands certificates
/// to agents this way).
pub fn encode_certificate(cert: &Certificate) -> Bytes {
    let mut w = BytesMut::with_capacity(Certificate::ENCODED_LEN);
    put_certificate(&mut w, cert);
    w.freeze()
}

/// Reads a certificate made by [`encode_certificate`]; its signature is not checked here.
///
/// # Errors
///
/// Short, malformed or longer input.
pub fn decode_certificate(bytes: Bytes) -> Result<Certificate, DecodeError> {
    let mut r = Reader {
        buf: bytes.chain(Bytes::new()),
    };
    let cert = r.certificate("Certificate")?;
    match r.remaining() {
        0 => Ok(cert),
        extra => Err(DecodeError::TrailingBytes {
            kind: "Certificate",
            extra,
        }),
    }
}

fn put_key(w: &mut BytesMut, key: &SegmentKey) {
    w.put_slice(&key.to_bytes());
}

/// Reads a frame's two parts as one sequence of bytes.
///
/// Every read first checks, through [`Reader::need`], that enough bytes remain, so the
/// [`Buf`] calls below (which panic on short input) cannot panic.
struct Reader {
    buf: Chain<Bytes, Bytes>,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, needed: usize, field: &'static str) -> Result<(), DecodeError> {
        let remaining = self.remaining();
        if needed <= remaining {
            Ok(())
        } else {
            Err(DecodeError::Truncated {
                field,
                needed,
                remaining,
            })
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        self.need(N, field)?;
        let mut out = [0; N];
        // Most fields lie wholly in one part: a fixed-size copy, not the generic chunk loop.
        match self.buf.chunk().get(..N) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                self.buf.advance(N);
            }
            None => self.buf.copy_to_slice(&mut out),
        }
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [byte] = self.array(field)?;
        Ok(byte)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::InvalidBool { field, byte }),
        }
    }

    fn peer(&mut self, field: &'static str) -> Result<PeerId, DecodeError> {
        self.array(field).map(PeerId::from_bytes)
    }

    fn swarm(&mut self, field: &'static str) -> Result<SwarmId, DecodeError> {
        self.array(field).map(SwarmId::from_bytes)
    }

    fn key(&mut self, field: &'static str) -> Result<SegmentKey, DecodeError> {
        self.need(KEY_LEN, field)?;
        let swarm = self.swarm(field)?;
        let rendition = RenditionId::from_u64(self.u64(field)?);
        let position = match self.u8(field)? {
            0 => SegmentPosition::Sequence(self.u64(field)?),
            1 => SegmentPosition::Time(self.u64(field)?),
            tag => return Err(DecodeError::InvalidTag { field, tag }),
        };
        let variant = VariantTag::from_u64(self.u64(field)?);
        Ok(SegmentKey {
            swarm,
            rendition,
            position,
            variant,
        })
    }

    /// The `u32` length of a byte field (the caller checks it against its limit).
    fn len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        // A length that does not fit a `usize` cannot fit in memory either.
        let len = self.u32(field)?;
        Ok(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// The next `len` bytes: a slice of the frame, or a copy if they straddle its two parts.
    fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        self.need(len, field)?;
        Ok(self.buf.copy_to_bytes(len))
    }

    /// A list count, checked against `max` and against the bytes left for its items.
    fn count(
        &mut self,
        field: &'static str,
        max: usize,
        item_len: usize,
    ) -> Result<usize, DecodeError> {
        let count = usize::from(self.u16(field)?);
        if count > max {
            return Err(DecodeError::ListTooLong { field, count, max });
        }
        self.need(count.saturating_mul(item_len), field)?;
        Ok(count)
    }

    fn certificate(&mut self, field: &'static str) -> Result<Certificate, DecodeError> {
        self.need(Certificate::ENCODED_LEN, field)?;
        let public_key = PublicKey::from_bytes(self.array(field)?);
        let scope = match self.u8(field)? {
            0 => Scope::Swarm(self.swarm(field)?),
            1 => {
                // The unused swarm bytes must be zero, or the encoding would not be canonical.
                let zero: [u8; 32] = self.array(field)?;
                if zero != [0; 32] {
                    return Err(DecodeError::InvalidTag { field, tag: 1 });
                }
                Scope::AnySwarm
            }
            tag => return Err(DecodeError::InvalidTag { field, tag }),
        };
        Ok(Certificate {
            public_key,
            scope,
            session: SessionId(self.array(field)?),
            not_after: UnixTime(self.u64(field)?),
            signature: Signature::from_bytes(self.array(field)?),
        })
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.u32(field)?.to_be_bytes()))
    }

    fn coord(&mut self, field: &'static str) -> Result<Coord, DecodeError> {
        Ok(Coord {
            x: self.i32(field)?,
            y: self.i32(field)?,
            height: self.i32(field)?,
        })
    }

    fn position(&mut self, field: &'static str) -> Result<Position, DecodeError> {
        let coord = self.coord(field)?;
        let error_permille = self.u16(field)?;
        Ok(Position {
            coord,
            error_permille,
        })
    }

    fn swap_id(&mut self, field: &'static str) -> Result<SwapId, DecodeError> {
        Ok(SwapId {
            proposer: self.peer(field)?,
            nonce: self.u32(field)?,
        })
    }

    fn peers(&mut self, field: &'static str, limits: &Limits) -> Result<Vec<PeerId>, DecodeError> {
        let count = self.count(field, limits.max_list_len, 32)?;
        let mut peers = Vec::with_capacity(count);
        for _ in 0..count {
            peers.push(self.peer(field)?);
        }
        Ok(peers)
    }
}

#[cfg(test)]
mod tests;
