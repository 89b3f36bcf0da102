//! # f2f-origin — a built-in live origin
//!
//! What the demo and the end-to-end tests stream from when no other origin is given: live HLS
//! and DASH over a sliding window, made of real media (a committed fMP4 clip whose timestamps
//! run on, so ffmpeg and hls.js play it as one endless stream), padded to a configured bit rate,
//! with optional session tokens, A/B watermark variants and per-viewer ad breaks.

mod live;
mod media;
mod server;

pub use f2f_http::token::{Session, TOKEN_PARAM, TokenError, TokenKey};
pub use live::{Copy, Live, OriginConfig, Rendition, Watermark, variant_of};
pub use media::{Clip, MediaError, Track};
pub use server::{Origin, router};
