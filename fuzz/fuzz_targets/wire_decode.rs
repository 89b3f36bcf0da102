//! Feeds arbitrary bytes to the wire decoder.
//!
//! Properties: decoding never panics; the answer does not depend on how the frame is split into
//! two parts; `frame_len` agrees with a successful decode; and anything accepted re-encodes to the
//! very same bytes (the encoding is canonical), so `decode(encode(m)) == m`.

#![no_main]

use bytes::Bytes;
use f2f_core::wire::{Frame, Limits, decode, encode, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let bytes = Bytes::copy_from_slice(data);
    let whole = decode(&Frame::from_bytes(bytes.clone()), &limits);

    // Split at a point derived from the first byte: 0 (all in the second part) to the end.
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) * data.len() / 255);
    let parts = Frame::from_parts(bytes.slice(..cut), bytes.slice(cut..));
    assert_eq!(
        decode(&parts, &limits),
        whole,
        "split at {cut} changed the result"
    );

    let len = frame_len(data, &limits);
    if let Ok(msg) = whole {
        assert_eq!(len, Ok(Some(data.len())));
        let frame = encode(&msg);
        assert_eq!(frame.to_bytes(), bytes, "re-encoding changed the bytes");
        assert_eq!(decode(&frame, &limits), Ok(msg));
    }
});
