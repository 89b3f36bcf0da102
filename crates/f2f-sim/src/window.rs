//! The congestion window of one direction of a peer connection.
//!
//! A WebRTC data channel runs SCTP, and SCTP's congestion control sends at most a window of
//! bytes per round trip: a connection starts small, grows while its data is acknowledged,
//! halves on a loss and shrinks again while it sits idle (RFC 9260 §7.2). So a transfer's
//! rate depends on the round trip, and a near peer delivers a segment sooner than an equally
//! fast far one; without this, latency would only delay the first byte.
//!
//! The model is per frame, not per packet: a frame's last byte leaves no sooner than the
//! window lets it through after the frame before it, `len × RTT / cwnd` with the window
//! growing as the frame's acknowledgements would grow it (exponentially in slow start). The
//! parameters are those of `dcsctp`, the SCTP stack in Chromium's WebRTC
//! ([`WindowSpec::DCSCTP`]).

/// Constants of the congestion control.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct WindowSpec {
    /// Largest SCTP packet, bytes.
    mtu: f64,
    /// Window of a new connection, in packets.
    initial_mtus: f64,
    /// Smallest window after a loss or idling, in packets.
    min_mtus: f64,
    /// The receiver's window: the congestion window never exceeds it, bytes.
    max_bytes: f64,
    /// Shortest retransmission timeout, µs.
    rto_min_us: u64,
    /// Floor of the RTT variance in the timeout (RTO = RTT + 4 × variance), µs.
    min_rtt_variance_us: u64,
    /// Window growth per byte acknowledged in slow start: one packet per SACK, and a SACK
    /// for every second packet (delayed acknowledgement), so 1.5 × per round trip.
    slow_start_gain: f64,
}

impl WindowSpec {
    /// `dcsctp`'s defaults (`DcSctpOptions`): 1191-byte packets, 10 of them to start, 4 at
    /// least, a 5 MiB receiver window, RTO at least 400 ms with an RTT variance of at least
    /// 220 ms.
    pub(crate) const DCSCTP: Self = Self {
        mtu: 1191.0,
        initial_mtus: 10.0,
        min_mtus: 4.0,
        max_bytes: 5.0 * 1024.0 * 1024.0,
        rto_min_us: 400_000,
        min_rtt_variance_us: 220_000,
        slow_start_gain: 0.5,
    };

    fn min_bytes(&self) -> f64 {
        self.min_mtus * self.mtu
    }

    /// The retransmission timeout on a path with this round trip, µs.
    fn rto(&self, rtt: u64) -> u64 {
        (rtt + 4 * self.min_rtt_variance_us).max(self.rto_min_us)
    }
}

/// One sender's window towards one peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    spec: WindowSpec,
    cwnd: f64,
    ssthresh: f64,
    /// When the window has let the last frame handed to it through, µs.
    free: u64,
}

impl Window {
    pub(crate) fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            cwnd: spec.initial_mtus * spec.mtu,
            ssthresh: spec.max_bytes,
            free: 0,
        }
    }

    /// When the last byte of a frame of `len` bytes handed at `now` on a path with round trip
    /// `rtt` (µs) may leave, the connection having sent its previous byte at `sent` (µs); the
    /// window grows by the frame as its acknowledgements come in.
    pub(crate) fn admit(&mut self, len: u64, rtt: u64, now: u64, sent: u64) -> u64 {
        let s = self.spec;
        let busy = self.free.max(sent);
        if now > busy && busy > 0 {
            // Idle: the window halves per timeout without data (RFC 9260 §7.2.1).
            let halvings = (now - busy) / s.rto(rtt);
            if halvings > 0 {
                let shrunk = self.cwnd / 2f64.powi(halvings.min(64) as i32);
                self.cwnd = shrunk.max(s.min_bytes());
            }
        }
        let len = len as f64;
        let rtt_f = rtt as f64;
        // Sending at cwnd per round trip while cwnd grows with what is sent: in slow start
        // the window grows exponentially, so `len` bytes take rtt / g × ln(1 + g × len / cwnd).
        let (took, grown) = if self.cwnd < self.ssthresh {
            let g = s.slow_start_gain;
            let took = rtt_f / g * (g * len / self.cwnd).ln_1p();
            (took, self.cwnd + g * len)
        } else {
            (len * rtt_f / self.cwnd, self.cwnd + s.mtu * len / self.cwnd)
        };
        self.cwnd = grown.min(s.max_bytes);
        self.free = self.free.max(now) + took as u64;
        self.free
    }

    /// A frame was lost and retransmitted: the window halves (fast recovery).
    pub(crate) fn on_loss(&mut self) {
        self.ssthresh = (self.cwnd / 2.0).max(self.spec.min_bytes());
        self.cwnd = self.ssthresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = 1_000_000;
    const PIECE: u64 = 64 * 1024;

    /// Time until the last piece of a segment may leave, sent in one burst.
    fn send_segment(w: &mut Window, rtt: u64, now: u64) -> u64 {
        (0..SEGMENT.div_ceil(PIECE))
            .map(|_| w.admit(PIECE, rtt, now, 0))
            .last()
            .expect("pieces")
            - now
    }

    #[test]
    fn a_far_peer_takes_longer_to_send_a_segment_than_a_near_one() {
        let near = send_segment(&mut Window::new(WindowSpec::DCSCTP), 20_000, 0);
        let far = send_segment(&mut Window::new(WindowSpec::DCSCTP), 200_000, 0);
        assert_eq!(
            far / near,
            10,
            "time scales with the round trip: {near} vs {far} µs"
        );
        // Slow start from 10 packets at 1.5 × per round trip: 2 × ln(1 + 0.5 × 1 MB / 11.9 kB)
        // round trips.
        assert!((150_000..=152_300).contains(&near), "{near} µs at 20 ms");
    }

    #[test]
    fn a_warm_window_sends_faster_and_idling_cools_it() {
        let rtt = 100_000;
        let mut w = Window::new(WindowSpec::DCSCTP);
        let cold = send_segment(&mut w, rtt, 0);
        let start = w.free;
        let warm = send_segment(&mut w, rtt, start);
        assert!(warm * 4 < cold, "warm {warm} µs vs cold {cold} µs");
        let idle = w.free + 10 * WindowSpec::DCSCTP.rto(rtt);
        let cooled = send_segment(&mut w, rtt, idle);
        assert!(cooled > 2 * warm, "cooled {cooled} µs vs warm {warm} µs");
    }

    #[test]
    fn a_loss_halves_the_window_and_growth_turns_linear() {
        let mut w = Window::new(WindowSpec::DCSCTP);
        send_segment(&mut w, 50_000, 0);
        let before = w.cwnd;
        w.on_loss();
        assert_eq!(w.cwnd, before / 2.0);
        let after = w.cwnd;
        w.admit(PIECE, 50_000, w.free, 0);
        assert!(w.cwnd - after < PIECE as f64 / 2.0, "congestion avoidance");
    }
}
