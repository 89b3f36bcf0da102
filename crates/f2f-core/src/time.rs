//! The one place the core names its clock type.
//!
//! The core never reads a clock: every input carries `now`. Natively this is
//! `std::time::Instant`; in the browser `web_time` provides a compatible type.

pub use web_time::{Duration, Instant};
