//! An encoded message, kept in two parts so that segment bytes are never copied to frame them.

use bytes::{BufMut, Bytes, BytesMut};

/// One encoded message: the bytes of `head` followed by the bytes of `body`.
///
/// [`encode`](super::encode) puts the 6-byte header and every field in `head`, and a
/// [`Message::Piece`](super::Message::Piece)'s payload in `body` (empty for every other message).
/// The payload is the same shared [`Bytes`] the message held: a segment of a few hundred KiB is
/// framed, sent through the simulator or handed to a transport, and decoded again without its
/// bytes ever being copied. A transport that can write two buffers (vectored I/O, or two
/// `send` calls on a stream) sends [`head`](Self::head) then [`body`](Self::body); one that needs
/// a single buffer calls [`to_bytes`](Self::to_bytes).
///
/// Received frames are usually contiguous ([`Frame::from_bytes`]); decoding then slices the
/// payload out of that buffer, again without a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    head: Bytes,
    body: Bytes,
}

impl Frame {
    /// A frame received as one contiguous buffer (the whole frame in `head`, `body` empty).
    ///
    /// Nothing is checked here: [`decode`](super::decode) validates the bytes.
    pub const fn from_bytes(bytes: Bytes) -> Self {
        Self {
            head: bytes,
            body: Bytes::new(),
        }
    }

    /// A frame whose bytes are `head` followed by `body`, split at any point.
    ///
    /// [`encode`](super::encode) splits where a piece payload starts; a transport that receives a
    /// frame in two buffers may split anywhere. [`decode`](super::decode) reads the two parts as
    /// one sequence of bytes, and a byte field lying wholly inside one part is taken without a
    /// copy.
    pub const fn from_parts(head: Bytes, body: Bytes) -> Self {
        Self { head, body }
    }

    /// Total length of the frame in bytes, header included.
    pub fn len(&self) -> usize {
        // Both parts are in memory, so their sum cannot exceed the address space.
        self.head.len() + self.body.len()
    }

    /// Whether the frame holds no bytes at all (never true of an encoded message).
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.body.is_empty()
    }

    /// The first part: for an encoded message, the header and every field.
    pub const fn head(&self) -> &Bytes {
        &self.head
    }

    /// The second part: for an encoded message, a piece's payload (empty otherwise).
    pub const fn body(&self) -> &Bytes {
        &self.body
    }

    /// The frame as one contiguous buffer, for transports that take a single buffer.
    ///
    /// Free (a reference-count increment) when one part is empty, which holds for every message
    /// but a [`Piece`](super::Message::Piece); otherwise one allocation and a copy of both parts.
    pub fn to_bytes(&self) -> Bytes {
        if self.body.is_empty() {
            return self.head.clone();
        }
        if self.head.is_empty() {
            return self.body.clone();
        }
        let mut buf = BytesMut::with_capacity(self.len());
        buf.put_slice(&self.head);
        buf.put_slice(&self.body);
        buf.freeze()
    }

    /// Splits the frame into its two parts, for vectored writes.
    pub fn into_parts(self) -> (Bytes, Bytes) {
        (self.head, self.body)
    }
}

impl From<Bytes> for Frame {
    /// Same as [`Frame::from_bytes`].
    fn from(bytes: Bytes) -> Self {
        Self::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_bytes_shares_a_single_part() {
        let whole = Bytes::from_static(b"abcdef");
        let frame = Frame::from_bytes(whole.clone());
        assert_eq!(frame.to_bytes().as_ptr(), whole.as_ptr());

        let frame = Frame::from_parts(Bytes::new(), whole.clone());
        assert_eq!(frame.to_bytes().as_ptr(), whole.as_ptr());
    }

    #[test]
    fn to_bytes_joins_two_parts() {
        let frame = Frame::from_parts(Bytes::from_static(b"abc"), Bytes::from_static(b"def"));
        assert_eq!(frame.len(), 6);
        assert!(!frame.is_empty());
        assert_eq!(&frame.to_bytes()[..], b"abcdef");
        assert!(Frame::default().is_empty());
    }
}
