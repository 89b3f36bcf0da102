//! Wire protocol: versioned, length-prefixed, bounded binary messages.
//!
//! Frame layout (all integers big-endian):
//!
//! ```text
//! +---------+------+-------------+------------------------------+
//! | version | kind | body length | body (fields, then payload)  |
//! |   u8    |  u8  |     u32     |  body-length bytes           |
//! +---------+------+-------------+------------------------------+
//! ```
//!
//! Decoding is defensive: it never panics, checks every length against both the bytes actually
//! present and the configured [`Limits`] before allocating, and returns a [`DecodeError`] that
//! says what was wrong.

mod codec;
mod frame;
mod message;

pub use codec::{
    DecodeError, Limits, decode, decode_certificate, encode, encode_certificate, frame_len,
};
pub use frame::Frame;
pub use message::{AbsentReason, Handshake, Listed, Message, PROTOCOL_VERSION, RequestId};
