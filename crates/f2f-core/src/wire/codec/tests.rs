//! Codec tests: literal bytes for each kind of malformed input, and property tests that every
//! message round-trips through contiguous and split frames and that no input makes decoding panic.

use proptest::prelude::*;

use super::*;

fn limits() -> Limits {
    Limits::default()
}

fn contiguous(bytes: &[u8]) -> Frame {
    Frame::from_bytes(Bytes::copy_from_slice(bytes))
}

fn key() -> SegmentKey {
    SegmentKey {
        swarm: SwarmId::from_bytes([0x11; 32]),
        rendition: RenditionId::from_u64(2),
        position: SegmentPosition::Time(3),
        variant: VariantTag::from_u64(4),
    }
}

/// Header followed by `body`, with the body length filled in.
fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap();
    let mut out = vec![PROTOCOL_VERSION, kind];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn handshake() -> Message {
    Message::Handshake(Box::new(Handshake {
        version: 1,
        swarm: SwarmId::from_bytes([0xaa; 32]),
        certificate: Certificate {
            public_key: PublicKey::from_bytes([0xbb; 48]),
            scope: Scope::Swarm(SwarmId::from_bytes([0xcc; 32])),
            session: SessionId([0xdd; 16]),
            not_after: UnixTime(0x0506_0708),
            signature: Signature::from_bytes([0xee; 96]),
        },
        nonce: [0xff; 32],
        upload_kbps: 0x0102_0304,
    }))
}

/// `handshake()`, byte by byte: 6 header bytes and a 270-byte body.
fn handshake_bytes() -> Vec<u8> {
    let mut body = vec![1]; // Handshake.version
    body.extend_from_slice(&[0xaa; 32]); // swarm
    body.extend_from_slice(&[0xbb; 48]); // certificate: key
    body.push(0); // scope: one swarm
    body.extend_from_slice(&[0xcc; 32]);
    body.extend_from_slice(&[0xdd; 16]); // session
    body.extend_from_slice(&0x0506_0708u64.to_be_bytes()); // not_after
    body.extend_from_slice(&[0xee; 96]); // signature
    body.extend_from_slice(&[0xff; 32]); // nonce
    body.extend_from_slice(&[1, 2, 3, 4]); // upload_kbps
    assert_eq!(body.len(), 270);
    framed(0x01, &body)
}

#[test]
fn handshake_has_known_bytes() {
    let bytes = handshake_bytes();
    let frame = encode(&handshake());
    assert_eq!(&frame.to_bytes()[..], &bytes[..]);
    assert!(frame.body().is_empty());
    assert_eq!(decode(&contiguous(&bytes), &limits()), Ok(handshake()));
}

#[test]
fn a_certificate_for_any_swarm_has_zero_swarm_bytes() {
    let mut bytes = handshake_bytes();
    let scope_at = 6 + 1 + 32 + 48;
    bytes[scope_at] = 1;
    // Any-swarm with swarm bytes left in would not re-encode to the same frame.
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::InvalidTag {
            field: "Handshake.certificate",
            tag: 1
        })
    );
    bytes[scope_at + 1..scope_at + 33].fill(0);
    let Ok(Message::Handshake(h)) = decode(&contiguous(&bytes), &limits()) else {
        panic!("an any-swarm certificate decodes");
    };
    assert_eq!(h.certificate.scope, Scope::AnySwarm);
}

#[test]
fn piece_has_known_bytes() {
    let msg = Message::Piece {
        id: RequestId(0x0102_0304),
        key: key(),
        offset: 5,
        end: 6,
        total: 8,
        data: Bytes::from_static(b"abc"),
    };
    let mut body = vec![1, 2, 3, 4]; // request id
    body.extend_from_slice(&[0x11; 32]);
    body.extend_from_slice(&2u64.to_be_bytes()); // rendition
    body.push(1); // position tag: time
    body.extend_from_slice(&3u64.to_be_bytes());
    body.extend_from_slice(&4u64.to_be_bytes()); // variant
    body.extend_from_slice(&5u64.to_be_bytes()); // offset
    body.extend_from_slice(&6u64.to_be_bytes()); // end
    body.extend_from_slice(&8u64.to_be_bytes()); // total
    body.extend_from_slice(&3u32.to_be_bytes()); // data length
    let head = framed(0x33, &body);
    body.extend_from_slice(b"abc");
    let whole = framed(0x33, &body);

    let frame = encode(&msg);
    assert_eq!(&frame.body()[..], b"abc");
    assert_eq!(&frame.head()[..HEADER_LEN], &whole[..HEADER_LEN]);
    assert_eq!(&frame.head()[HEADER_LEN..], &head[HEADER_LEN..]);
    assert_eq!(&frame.to_bytes()[..], &whole[..]);
    assert_eq!(decode(&contiguous(&whole), &limits()), Ok(msg));
}

#[test]
fn truncated_header_and_fields() {
    let bytes = handshake_bytes();
    assert_eq!(
        decode(&contiguous(&bytes[..3]), &limits()),
        Err(DecodeError::Truncated {
            field: "header",
            needed: 6,
            remaining: 3,
        })
    );
    // Cut the last field short and make the header agree, to reach the field check.
    let short = framed(0x01, &bytes[6..bytes.len() - 2]);
    assert_eq!(
        decode(&contiguous(&short), &limits()),
        Err(DecodeError::Truncated {
            field: "Handshake.upload_kbps",
            needed: 4,
            remaining: 2,
        })
    );
    // Without fixing the header, the frame is shorter than it says.
    assert_eq!(
        decode(&contiguous(&bytes[..bytes.len() - 1]), &limits()),
        Err(DecodeError::LengthMismatch {
            declared: 270,
            actual: 269,
        })
    );
}

#[test]
fn bad_version() {
    // Version 1 pieces carried no request id: its frames must not be read as ours.
    for found in [1, PROTOCOL_VERSION + 1] {
        let mut bytes = handshake_bytes();
        bytes[0] = found;
        let expected = DecodeError::UnsupportedVersion { found };
        assert_eq!(decode(&contiguous(&bytes), &limits()), Err(expected));
        assert_eq!(frame_len(&bytes[..1], &limits()), Err(expected));
        assert_eq!(frame_len(&bytes, &limits()), Err(expected));
    }
}

#[test]
fn unknown_kind() {
    let bytes = [PROTOCOL_VERSION, 0xee, 0, 0, 0, 0];
    let expected = DecodeError::UnknownKind { kind: 0xee };
    assert_eq!(decode(&contiguous(&bytes), &limits()), Err(expected));
    assert_eq!(frame_len(&bytes[..2], &limits()), Err(expected));
}

#[test]
fn overlong_list_count() {
    let bytes = framed(0x15, &[0xff, 0xff]);
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::ListTooLong {
            field: "ShuffleReply.peers",
            count: 0xffff,
            max: 512,
        })
    );
    // Within the limit, but the items are missing: rejected before allocating.
    let bytes = framed(0x15, &[0x01, 0x00]);
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::Truncated {
            field: "ShuffleReply.peers",
            needed: 256 * 32,
            remaining: 0,
        })
    );
}

#[test]
fn bool_byte_two() {
    let bytes = framed(0x12, &[2]);
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::InvalidBool {
            field: "Neighbour.high_priority",
            byte: 2,
        })
    );
    assert_eq!(
        decode(&contiguous(&framed(0x12, &[1])), &limits()),
        Ok(Message::Neighbour {
            high_priority: true
        })
    );
}

#[test]
fn trailing_garbage() {
    let bytes = framed(0x10, &[0]);
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::TrailingBytes {
            kind: "Join",
            extra: 1,
        })
    );
    // Bytes past the declared body: a second frame glued on, or garbage.
    let mut bytes = handshake_bytes();
    bytes.push(0);
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::LengthMismatch {
            declared: 270,
            actual: 271,
        })
    );
}

#[test]
fn request_ranges() {
    let ranged = Message::Request {
        id: RequestId(9),
        key: key(),
        offset: 100,
        end: Some(300),
    };
    let bytes = encode(&ranged).to_bytes();
    assert_eq!(decode(&contiguous(&bytes), &limits()), Ok(ranged));
    // The end sits in the last 8 bytes: make the range empty, then reversed.
    let with_end = |end: u64| {
        let mut b = bytes.to_vec();
        let at = b.len() - 8;
        b[at..].copy_from_slice(&end.to_be_bytes());
        b
    };
    for end in [100, 99] {
        assert_eq!(
            decode(&contiguous(&with_end(end)), &limits()),
            Err(DecodeError::EmptyRange { offset: 100, end })
        );
    }
    let mut bad_tag = bytes.to_vec();
    let at = bad_tag.len() - 9;
    bad_tag[at] = 2;
    assert_eq!(
        decode(&contiguous(&bad_tag), &limits()),
        Err(DecodeError::InvalidTag {
            field: "Request.end",
            tag: 2
        })
    );
}

#[test]
fn frame_too_long() {
    let bytes = [PROTOCOL_VERSION, 0x33, 0xff, 0xff, 0xff, 0xff];
    let expected = DecodeError::FrameTooLong {
        len: 6 + u64::from(u32::MAX),
        max: limits().max_frame_len,
    };
    assert_eq!(decode(&contiguous(&bytes), &limits()), Err(expected));
    assert_eq!(frame_len(&bytes, &limits()), Err(expected));
}

fn piece_body(offset: u64, end: u64, total: u64, len: u32) -> Vec<u8> {
    let mut w = BytesMut::new();
    w.put_u32(1);
    put_key(&mut w, &key());
    w.put_u64(offset);
    w.put_u64(end);
    w.put_u64(total);
    w.put_u32(len);
    w.to_vec()
}

#[test]
fn piece_limits() {
    let max = limits().max_piece_len;
    let bytes = framed(
        0x33,
        &piece_body(0, 1, u64::MAX, u32::try_from(max + 1).unwrap()),
    );
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::PieceTooLong { len: max + 1, max })
    );

    let mut body = piece_body(6, 9, 8, 3);
    body.extend_from_slice(b"abc");
    assert_eq!(
        decode(&contiguous(&framed(0x33, &body)), &limits()),
        Err(DecodeError::PieceOutOfRange {
            offset: 6,
            end: 9,
            total: 8,
        })
    );
    let mut body = piece_body(7, 7, 8, 1);
    body.push(0);
    assert!(matches!(
        decode(&contiguous(&framed(0x33, &body)), &limits()),
        Err(DecodeError::PieceOutOfRange { .. })
    ));
}

#[test]
fn signal_payload_is_bounded_before_it_is_read() {
    let max = limits().max_signal_len;
    let mut body = vec![0x11; 64];
    body.push(2);
    body.extend_from_slice(&u32::try_from(max + 1).unwrap().to_be_bytes());
    assert_eq!(
        decode(&contiguous(&framed(0x17, &body)), &limits()),
        Err(DecodeError::SignalTooLong { len: max + 1, max })
    );
}

fn bitmap_body(base: u64, bits: &[u8], variants: u16) -> Vec<u8> {
    let mut body = vec![0x22; 32];
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(&base.to_be_bytes());
    body.extend_from_slice(&u32::try_from(bits.len()).unwrap().to_be_bytes());
    body.extend_from_slice(bits);
    body.extend_from_slice(&variants.to_be_bytes());
    for v in 0..variants {
        body.extend_from_slice(&u64::from(v).to_be_bytes());
    }
    body
}

#[test]
fn bitmap_checks() {
    let ok = framed(0x31, &bitmap_body(10, &[0b1000_0001, 0b10], 3));
    let Ok(Message::Bitmap { variants, .. }) = decode(&contiguous(&ok), &limits()) else {
        panic!("valid bitmap rejected");
    };
    assert_eq!(variants.len(), 3);

    let bytes = framed(0x31, &bitmap_body(10, &[0b1000_0001, 0b10], 2));
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::VariantCountMismatch {
            set_bits: 3,
            variants: 2,
        })
    );
    let bytes = framed(0x31, &bitmap_body(10, &[0; 257], 0));
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::BitmapTooLong { len: 257, max: 256 })
    );
    let bytes = framed(0x31, &bitmap_body(u64::MAX - 15, &[0, 0, 0], 0));
    assert_eq!(
        decode(&contiguous(&bytes), &limits()),
        Err(DecodeError::BitmapWindowOverflow {
            base: u64::MAX - 15,
            bits: 24,
        })
    );
}

#[test]
fn invalid_tags_and_order() {
    let mut body = 7u32.to_be_bytes().to_vec(); // Absent.id
    let mut w = BytesMut::new();
    put_key(&mut w, &key());
    body.extend_from_slice(&w);
    body.push(2); // Absent.reason
    assert_eq!(
        decode(&contiguous(&framed(0x35, &body)), &limits()),
        Err(DecodeError::InvalidTag {
            field: "Absent.reason",
            tag: 2,
        })
    );
    body[4 + 32 + 8] = 2; // position tag
    assert_eq!(
        decode(&contiguous(&framed(0x35, &body)), &limits()),
        Err(DecodeError::InvalidTag {
            field: "Absent.key",
            tag: 2,
        })
    );

    let mut body = 7u64.to_be_bytes().to_vec();
    body.extend_from_slice(&9u64.to_be_bytes());
    body.extend_from_slice(&3u16.to_be_bytes());
    for min in [1u64, 5, 4] {
        body.extend_from_slice(&min.to_be_bytes());
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    assert_eq!(
        decode(&contiguous(&framed(0x40, &body)), &limits()),
        Err(DecodeError::UnsortedSketch {
            field: "SizeSketch.mins",
            index: 2
        })
    );
}

#[test]
fn piece_data_is_not_copied() {
    let data = Bytes::from(vec![7; 1000]);
    let msg = Message::Piece {
        id: RequestId(1),
        key: key(),
        offset: 0,
        end: 1000,
        total: 1000,
        data: data.clone(),
    };
    let split = encode(&msg);
    assert_eq!(split.body().as_ptr(), data.as_ptr());
    let Ok(Message::Piece { data: decoded, .. }) = decode(&split, &limits()) else {
        panic!("piece rejected");
    };
    assert_eq!(decoded.as_ptr(), data.as_ptr());

    let whole = Frame::from_bytes(split.to_bytes());
    let Ok(Message::Piece { data: decoded, .. }) = decode(&whole, &limits()) else {
        panic!("piece rejected");
    };
    let start = whole.head().len() - 1000;
    assert_eq!(decoded.as_ptr(), whole.head()[start..].as_ptr());
}

#[test]
fn frame_len_splits_a_stream() {
    let msgs = [
        handshake(),
        Message::Join,
        Message::LinkReply { accepted: true },
    ];
    let mut stream = Vec::new();
    for msg in &msgs {
        stream.extend_from_slice(&encode(msg).to_bytes());
    }
    for cut in 0..handshake_bytes().len() {
        assert_eq!(
            frame_len(&stream[..cut], &limits()),
            Ok(None),
            "cut at {cut}"
        );
    }
    let mut rest = &stream[..];
    for msg in &msgs {
        let len = frame_len(rest, &limits()).unwrap().unwrap();
        assert_eq!(
            decode(&contiguous(&rest[..len]), &limits()).as_ref(),
            Ok(msg)
        );
        rest = &rest[len..];
    }
    assert_eq!(frame_len(rest, &limits()), Ok(None));
}

#[test]
fn kinds_are_distinct_and_named() {
    for (i, a) in Kind::ALL.iter().enumerate() {
        assert_eq!(Kind::from_u8(*a as u8), Some(*a));
        for b in &Kind::ALL[i + 1..] {
            assert_ne!(*a as u8, *b as u8);
            assert_ne!(a.name(), b.name());
        }
    }
    assert_eq!(Kind::from_u8(0), None);
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(PeerId::from_bytes)
}

fn swarm_id() -> impl Strategy<Value = SwarmId> {
    any::<[u8; 32]>().prop_map(SwarmId::from_bytes)
}

fn segment_key() -> impl Strategy<Value = SegmentKey> {
    let position = prop_oneof![
        any::<u64>().prop_map(SegmentPosition::Sequence),
        any::<u64>().prop_map(SegmentPosition::Time),
    ];
    (swarm_id(), any::<u64>(), position, any::<u64>()).prop_map(
        |(swarm, rendition, position, variant)| SegmentKey {
            swarm,
            rendition: RenditionId::from_u64(rendition),
            position,
            variant: VariantTag::from_u64(variant),
        },
    )
}

fn public_key() -> impl Strategy<Value = PublicKey> {
    prop::collection::vec(any::<u8>(), 48)
        .prop_map(|v| PublicKey::from_bytes(v.try_into().expect("48 bytes")))
}

fn signature() -> impl Strategy<Value = Signature> {
    prop::collection::vec(any::<u8>(), 96)
        .prop_map(|v| Signature::from_bytes(v.try_into().expect("96 bytes")))
}

fn certificate() -> impl Strategy<Value = Certificate> {
    let scope = prop_oneof![swarm_id().prop_map(Scope::Swarm), Just(Scope::AnySwarm)];
    (
        public_key(),
        scope,
        any::<[u8; 16]>(),
        any::<u64>(),
        signature(),
    )
        .prop_map(
            |(public_key, scope, session, not_after, signature)| Certificate {
                public_key,
                scope,
                session: SessionId(session),
                not_after: UnixTime(not_after),
                signature,
            },
        )
}

fn peers() -> impl Strategy<Value = Vec<PeerId>> {
    prop::collection::vec(peer_id(), 0..12)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn bitmap() -> impl Strategy<Value = Message> {
    (swarm_id(), any::<u64>(), any::<u64>(), bytes(40))
        .prop_flat_map(|(swarm, rendition, base, bits)| {
            let set = bits.iter().map(|b| b.count_ones() as usize).sum::<usize>();
            let variants = prop::collection::vec(any::<u64>(), set);
            (Just((swarm, rendition, base, bits)), variants)
        })
        .prop_map(|((swarm, rendition, base, bits), variants)| {
            // Keep the window inside the sequence space.
            let window = 8 * bits.len() as u64;
            Message::Bitmap {
                swarm,
                rendition: RenditionId::from_u64(rendition),
                base: base.min(u64::MAX - window),
                bits,
                variants: variants.into_iter().map(VariantTag::from_u64).collect(),
            }
        })
}

fn piece() -> impl Strategy<Value = Message> {
    (
        any::<u32>(),
        segment_key(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        bytes(2048),
    )
        .prop_map(|(id, key, a, b, total, data)| {
            // offset < end <= total, anywhere in the u64 range.
            let total = total.max(1);
            let (lo, hi) = (a % total, b % total + 1);
            let (offset, end) = if lo < hi { (lo, hi) } else { (hi - 1, lo + 1) };
            Message::Piece {
                id: RequestId(id),
                key,
                offset,
                end,
                total,
                data,
            }
        })
}

/// Adding a message variant breaks this match: give it a strategy in [`message`] too.
fn _every_variant_has_a_strategy(msg: &Message) {
    match msg {
        Message::Handshake(_)
        | Message::Proof { .. }
        | Message::Revocations(_)
        | Message::Join
        | Message::ForwardJoin { .. }
        | Message::Neighbour { .. }
        | Message::NeighbourReply { .. }
        | Message::Shuffle { .. }
        | Message::ShuffleReply { .. }
        | Message::Disconnect { .. }
        | Message::Signal { .. }
        | Message::LinkRequest
        | Message::LinkReply { .. }
        | Message::LinkDrop
        | Message::Neighbours { .. }
        | Message::Swap(_)
        | Message::Ping { .. }
        | Message::Pong { .. }
        | Message::Have { .. }
        | Message::Bitmap { .. }
        | Message::Attest(_)
        | Message::Request { .. }
        | Message::Piece { .. }
        | Message::Cancel { .. }
        | Message::Absent { .. }
        | Message::SizeSketch { .. }
        | Message::Receipt { .. } => {}
    }
}

fn coord() -> impl Strategy<Value = Coord> {
    any::<(i32, i32, i32)>().prop_map(|(x, y, height)| Coord { x, y, height })
}

fn position() -> impl Strategy<Value = Position> {
    (coord(), any::<u16>()).prop_map(|(coord, error_permille)| Position {
        coord,
        error_permille,
    })
}

fn swap_id() -> impl Strategy<Value = SwapId> {
    (peer_id(), any::<u32>()).prop_map(|(proposer, nonce)| SwapId { proposer, nonce })
}

fn message() -> impl Strategy<Value = Message> {
    let reason = prop_oneof![Just(AbsentReason::NotHeld), Just(AbsentReason::Busy)];
    prop_oneof![
        (
            any::<u8>(),
            swarm_id(),
            certificate(),
            any::<[u8; 32]>(),
            any::<u32>()
        )
            .prop_map(|(version, swarm, certificate, nonce, upload_kbps)| {
                Message::Handshake(Box::new(Handshake {
                    version,
                    swarm,
                    certificate,
                    nonce,
                    upload_kbps,
                }))
            }),
        signature().prop_map(|signature| Message::Proof { signature }),
        (
            any::<u64>(),
            prop::collection::vec(any::<[u8; 16]>().prop_map(SessionId), 0..6),
            prop::collection::vec(public_key(), 0..6),
            signature()
        )
            .prop_map(|(serial, sessions, keys, signature)| {
                Message::Revocations(Box::new(RevocationList {
                    serial,
                    sessions,
                    keys,
                    signature,
                }))
            }),
        Just(Message::Join),
        (peer_id(), any::<u8>()).prop_map(|(joiner, ttl)| Message::ForwardJoin { joiner, ttl }),
        any::<bool>().prop_map(|high_priority| Message::Neighbour { high_priority }),
        any::<bool>().prop_map(|accepted| Message::NeighbourReply { accepted }),
        (peer_id(), any::<u8>(), peers()).prop_map(|(origin, ttl, peers)| Message::Shuffle {
            origin,
            ttl,
            peers
        }),
        peers().prop_map(|peers| Message::ShuffleReply { peers }),
        any::<bool>().prop_map(|alive| Message::Disconnect { alive }),
        (
            peer_id(),
            peer_id(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(from, to, ttl, payload)| Message::Signal {
                from,
                to,
                ttl,
                payload: Bytes::from(payload),
            }),
        Just(Message::LinkRequest),
        any::<bool>().prop_map(|accepted| Message::LinkReply { accepted }),
        Just(Message::LinkDrop),
        (
            position(),
            prop::collection::vec(
                (peer_id(), coord()).prop_map(|(peer, coord)| Listed { peer, coord }),
                0..12
            )
        )
            .prop_map(|(position, peers)| Message::Neighbours { position, peers }),
        any::<u32>().prop_map(|nonce| Message::Ping { nonce }),
        (any::<u32>(), position()).prop_map(|(nonce, position)| Message::Pong { nonce, position }),
        (swap_id(), peer_id(), peer_id())
            .prop_map(|(id, drop, add)| Message::Swap(SwapMessage::Prepare { id, drop, add })),
        (swap_id(), any::<Option<i32>>())
            .prop_map(|(id, gain_kbps)| Message::Swap(SwapMessage::Vote { id, gain_kbps })),
        swap_id().prop_map(|id| Message::Swap(SwapMessage::Commit { id })),
        swap_id().prop_map(|id| Message::Swap(SwapMessage::Abort { id })),
        (
            any::<u8>(),
            any::<u32>(),
            any::<bool>(),
            prop::collection::vec(segment_key(), 0..12)
        )
            .prop_map(|(load, upload_kbps, partial, keys)| Message::Have {
                load,
                upload_kbps,
                partial,
                keys
            }),
        bitmap(),
        (
            segment_key(),
            any::<[u8; 32]>(),
            any::<u64>(),
            prop::collection::vec(certificate(), 0..4),
            signature()
        )
            .prop_map(|(key, hash, size, signers, signature)| {
                Message::Attest(Box::new(Attestation {
                    key,
                    hash: SegmentHash(hash),
                    size,
                    signers,
                    signature,
                }))
            }),
        (
            any::<u32>(),
            segment_key(),
            any::<u64>(),
            any::<Option<u64>>()
        )
            .prop_map(|(id, key, offset, end)| {
                // A range is never empty: an end at or below the offset moves just above it.
                let end = end
                    .map(|e| e.max(offset.saturating_add(1)))
                    .filter(|e| *e > offset);
                Message::Request {
                    id: RequestId(id),
                    key,
                    offset,
                    end,
                }
            }),
        piece(),
        (any::<u64>(), any::<u64>(), any::<u32>(), signature()).prop_map(
            |(window, bytes, segments, signature)| Message::Receipt {
                delivery: Delivery {
                    window,
                    bytes,
                    segments
                },
                signature
            }
        ),
        segment_key().prop_map(|key| Message::Cancel { key }),
        (any::<u32>(), segment_key(), reason).prop_map(|(id, key, reason)| Message::Absent {
            id: RequestId(id),
            key,
            reason
        }),
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..12),
            prop::collection::vec(any::<u64>(), 0..12)
        )
            .prop_map(|(rendition, epoch, mut mins, mut capable)| {
                mins.sort_unstable();
                capable.sort_unstable();
                Message::SizeSketch {
                    rendition: RenditionId::from_u64(rendition),
                    epoch,
                    mins,
                    capable,
                }
            }),
    ]
}

/// A valid frame, contiguous, and a split point in it.
fn frame_and_cut() -> impl Strategy<Value = (Message, Bytes, usize)> {
    message().prop_flat_map(|msg| {
        let bytes = encode(&msg).to_bytes();
        let len = bytes.len();
        (Just(msg), Just(bytes), 0..=len)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn round_trip((msg, bytes, cut) in frame_and_cut()) {
        let split = encode(&msg);
        prop_assert_eq!(split.len(), bytes.len());
        prop_assert_eq!(decode(&split, &limits()), Ok(msg.clone()));
        prop_assert_eq!(decode(&Frame::from_bytes(bytes.clone()), &limits()), Ok(msg.clone()));
        let parts = Frame::from_parts(bytes.slice(..cut), bytes.slice(cut..));
        prop_assert_eq!(decode(&parts, &limits()), Ok(msg));
        prop_assert_eq!(frame_len(&bytes, &limits()), Ok(Some(bytes.len())));
    }

    #[test]
    fn truncation_is_an_error((_msg, bytes, cut) in frame_and_cut()) {
        prop_assume!(cut < bytes.len());
        let short = bytes.slice(..cut);
        prop_assert!(decode(&Frame::from_bytes(short.clone()), &limits()).is_err());
        prop_assert_eq!(frame_len(&short, &limits()), Ok(None));
        // With the header patched to agree, the fields themselves come up short.
        if cut > HEADER_LEN {
            let patched = framed(bytes[1], &short[HEADER_LEN..]);
            prop_assert!(decode(&contiguous(&patched), &limits()).is_err());
        }
    }

    #[test]
    fn a_changed_byte_never_panics(
        (_msg, bytes, index) in frame_and_cut(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut changed = bytes.to_vec();
        if let Some(byte) = changed.get_mut(index) {
            *byte = value;
        }
        check_arbitrary(&changed, cut.index(changed.len() + 1))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
    ) {
        check_arbitrary(&bytes, cut.index(bytes.len() + 1))?;
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        kind in prop::sample::select(Kind::ALL.to_vec()),
        body in prop::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = framed(kind as u8, &body);
        check_arbitrary(&bytes, cut.index(bytes.len() + 1))?;
    }
}

/// Decoding `bytes` does not panic, gives the same answer however the frame is split, and
/// anything accepted re-encodes to the same bytes.
fn check_arbitrary(bytes: &[u8], cut: usize) -> Result<(), TestCaseError> {
    let bytes = Bytes::copy_from_slice(bytes);
    let whole = decode(&Frame::from_bytes(bytes.clone()), &limits());
    let parts = Frame::from_parts(bytes.slice(..cut), bytes.slice(cut..));
    prop_assert_eq!(&decode(&parts, &limits()), &whole);
    let len = frame_len(&bytes, &limits());
    if let Ok(msg) = whole {
        prop_assert_eq!(&encode(&msg).to_bytes(), &bytes);
        prop_assert_eq!(len, Ok(Some(bytes.len())));
    }
    Ok(())
}

/// The default limits admit the largest message each of the other limits allows.
#[test]
fn default_limits_fit_the_largest_messages() {
    let l = limits();
    let largest = [
        Message::Piece {
            id: RequestId(u32::MAX),
            key: key(),
            offset: 0,
            end: l.max_piece_len as u64,
            total: l.max_piece_len as u64,
            data: Bytes::from(vec![0; l.max_piece_len]),
        },
        Message::Have {
            load: 0,
            upload_kbps: 0,
            partial: false,
            keys: vec![key(); l.max_list_len],
        },
        Message::Bitmap {
            swarm: SwarmId::from_bytes([0; 32]),
            rendition: RenditionId::from_u64(0),
            base: 0,
            bits: Bytes::from(vec![0xff; l.max_bitmap_bytes]),
            variants: vec![VariantTag::from_u64(0); 8 * l.max_bitmap_bytes],
        },
        Message::Revocations(Box::new(RevocationList {
            serial: u64::MAX,
            sessions: vec![SessionId([7; 16]); l.max_revocations],
            keys: vec![PublicKey::from_bytes([9; 48]); l.max_revocations],
            signature: Signature::from_bytes([1; 96]),
        })),
        attest(l.max_attesters),
    ];
    for msg in largest {
        assert_eq!(decode(&encode(&msg), &l), Ok(msg));
    }
}

#[test]
fn a_revocation_list_over_the_limit_is_refused_before_allocation() {
    let l = limits();
    let list = Message::Revocations(Box::new(RevocationList {
        serial: 1,
        sessions: vec![SessionId([7; 16]); l.max_revocations + 1],
        keys: Vec::new(),
        signature: Signature::from_bytes([1; 96]),
    }));
    assert_eq!(
        decode(&encode(&list), &l),
        Err(DecodeError::ListTooLong {
            field: "Revocations.sessions",
            count: l.max_revocations + 1,
            max: l.max_revocations,
        })
    );
}

fn attest(signers: usize) -> Message {
    let cert = Certificate {
        public_key: PublicKey::from_bytes([9; 48]),
        scope: Scope::AnySwarm,
        session: SessionId([7; 16]),
        not_after: UnixTime(u64::MAX),
        signature: Signature::from_bytes([1; 96]),
    };
    Message::Attest(Box::new(Attestation {
        key: key(),
        hash: SegmentHash([3; 32]),
        size: 2 << 20,
        signers: vec![cert; signers],
        signature: Signature::from_bytes([1; 96]),
    }))
}

#[test]
fn an_attestation_with_too_many_signers_is_refused_before_allocation() {
    let l = limits();
    assert_eq!(
        decode(&encode(&attest(l.max_attesters + 1)), &l),
        Err(DecodeError::ListTooLong {
            field: "Attest.signers",
            count: l.max_attesters + 1,
            max: l.max_attesters,
        })
    );
}

proptest! {
    #[test]
    fn certificates_round_trip_alone_and_refuse_other_lengths(cert in certificate(), cut in 1usize..201) {
        let bytes = encode_certificate(&cert);
        prop_assert_eq!(bytes.len(), Certificate::ENCODED_LEN);
        prop_assert_eq!(decode_certificate(bytes.clone()), Ok(cert));
        prop_assert!(decode_certificate(bytes.slice(..bytes.len() - cut)).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        let is_trailing = matches!(
            decode_certificate(Bytes::from(longer)),
            Err(DecodeError::TrailingBytes { .. })
        );
        prop_assert!(is_trailing);
    }
}
