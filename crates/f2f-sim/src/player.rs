//! A live player: starts a few segments behind the live edge, plays in real time, stalls when
//! the next segment is missing and resumes once it has enough buffered again.
//!
//! Times are microseconds of virtual time. Media time is aligned with it: segment `k` covers
//! media `[k·D, (k+1)·D)` and is published when that interval ends, so `now − media position`
//! is the viewer's distance behind the live point.

use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Starting,
    Playing,
    Stalled { since: u64 },
}

/// One viewer's playback.
#[derive(Debug)]
pub(crate) struct Player {
    d_us: u64,
    startup_segments: u64,
    joined_at: u64,
    start_seq: Option<u64>,
    next_request: u64,
    buffered: BTreeSet<u64>,
    state: State,
    /// Media position at `last`.
    media: u64,
    last: u64,
    pub(crate) startup_us: Option<u64>,
    pub(crate) stalls: Vec<(u64, u64)>,
    pub(crate) play_us: u64,
    /// ∫ (t − media position) dt over playing and stalled time, in µs².
    latency_integral: f64,
}

impl Player {
    pub(crate) fn new(d_us: u64, startup_segments: u64, joined_at: u64) -> Self {
        Self {
            d_us,
            startup_segments: startup_segments.max(1),
            joined_at,
            start_seq: None,
            next_request: 0,
            buffered: BTreeSet::new(),
            state: State::Starting,
            media: 0,
            last: joined_at,
            startup_us: None,
            stalls: Vec::new(),
            play_us: 0,
            latency_integral: 0.0,
        }
    }

    /// The playlist lists segments up to `newest`: returns `(segment, deadline)` for those to
    /// load now. The first call picks the start `live_offset` segments back from `newest`.
    pub(crate) fn on_playlist(
        &mut self,
        newest: u64,
        live_offset: u64,
        now: u64,
    ) -> Vec<(u64, u64)> {
        let now = self.advance(now);
        if self.start_seq.is_none() {
            let start = newest.saturating_sub(live_offset.saturating_sub(1));
            self.start_seq = Some(start);
            self.next_request = start;
        }
        let mut loads = Vec::new();
        while self.next_request <= newest {
            let seq = self.next_request;
            loads.push((seq, self.deadline(seq, now)));
            self.next_request += 1;
        }
        loads
    }

    /// A segment arrived.
    pub(crate) fn on_delivered(&mut self, seq: u64, now: u64) {
        let now = self.advance(now);
        let playhead = self.playhead_seq();
        if seq < playhead {
            return;
        }
        self.buffered.insert(seq);
        let ready =
            (playhead..playhead + self.startup_segments).all(|s| self.buffered.contains(&s));
        match self.state {
            State::Starting if ready => {
                self.startup_us = Some(now - self.joined_at);
                self.media = playhead * self.d_us;
                self.last = now;
                self.state = State::Playing;
            }
            State::Stalled { since } if ready => {
                self.stalls.push((since, now));
                self.last = now;
                self.state = State::Playing;
            }
            _ => {}
        }
        self.buffered = self.buffered.split_off(&playhead);
    }

    /// Ends the session at `now` (a stall in progress counts until then).
    pub(crate) fn finish(&mut self, now: u64) {
        let now = self.advance(now);
        if let State::Stalled { since } = self.state {
            self.stalls.push((since, now));
            self.state = State::Starting;
        }
    }

    /// Total stalled time.
    pub(crate) fn stall_us(&self) -> u64 {
        self.stalls.iter().map(|(a, b)| b - a).sum()
    }

    /// Stalled time that overlaps `[from, to)`.
    pub(crate) fn stall_between(&self, from: u64, to: u64) -> u64 {
        self.stalls
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }

    /// Mean distance behind the live point over the watched time, µs.
    pub(crate) fn mean_latency_us(&self) -> Option<f64> {
        let watched = self.play_us + self.stall_us();
        (watched > 0).then(|| self.latency_integral / watched as f64)
    }

    /// Segment the playhead is in, or waits for.
    fn playhead_seq(&self) -> u64 {
        match self.state {
            State::Starting => self.start_seq.unwrap_or(0),
            State::Playing | State::Stalled { .. } => self.media / self.d_us,
        }
    }

    /// When playback reaches segment `seq` (never before `now`).
    fn deadline(&self, seq: u64, now: u64) -> u64 {
        let at = match self.state {
            State::Playing => (self.last + seq * self.d_us).saturating_sub(self.media),
            State::Starting | State::Stalled { .. } => {
                let first_after_buffer = self.playhead_seq() + self.startup_segments - 1;
                now + seq.saturating_sub(first_after_buffer) * self.d_us
            }
        };
        at.max(now)
    }

    /// End of the contiguous buffer from the playhead, in media time.
    fn buffer_end(&self) -> u64 {
        let mut seq = self.media / self.d_us;
        while self.buffered.contains(&seq) {
            seq += 1;
        }
        (seq * self.d_us).max(self.media)
    }

    /// Moves the playhead to `now`, entering a stall where the buffer ran out; returns the
    /// player's time. The player's clock never goes back: the simulator may report an event up
    /// to a round (1 ms) after the player has moved past it, and it then counts as happening now.
    fn advance(&mut self, now: u64) -> u64 {
        if now <= self.last {
            return self.last;
        }
        if self.state == State::Playing {
            let run_out = self.last + (self.buffer_end() - self.media);
            let until = now.min(run_out);
            let played = until - self.last;
            let latency = self.last as f64 - self.media as f64;
            self.latency_integral += latency * played as f64;
            self.play_us += played;
            self.media += played;
            self.last = until;
            if until < now {
                self.state = State::Stalled { since: until };
            }
        }
        if let State::Stalled { .. } = self.state {
            let (a, b) = (
                self.last as f64 - self.media as f64,
                now as f64 - self.media as f64,
            );
            self.latency_integral += (a + b) / 2.0 * (now - self.last) as f64;
        }
        self.last = now;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = 2_000_000;

    #[test]
    fn an_event_reported_late_counts_as_happening_now() {
        let mut p = Player::new(D, 1, 0);
        p.on_playlist(10, 3, 0);
        p.on_delivered(8, 1_000_000);
        // Segment 9 is missing: the player stalls at 3 s and learns of it at 3.5 s.
        p.on_playlist(10, 3, 3_500_000);
        // The world reports segment 9 as delivered at 3.2 s, after the player moved on.
        p.on_delivered(9, 3_200_000);
        assert_eq!(p.stalls, vec![(3_000_000, 3_500_000)]);
        p.finish(5_000_000);
        assert_eq!(p.play_us + p.stall_us(), 4_000_000, "nothing counted twice");
    }

    #[test]
    fn starts_three_behind_and_plays_without_stalling() {
        let mut p = Player::new(D, 1, 0);
        // Segment 9 is the newest at t = 20 s.
        let loads = p.on_playlist(9, 3, 20 * 1_000_000);
        assert_eq!(loads.iter().map(|l| l.0).collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(loads[0].1, 20_000_000, "first segment is needed at once");
        p.on_delivered(7, 20_500_000);
        assert_eq!(p.startup_us, Some(20_500_000));
        p.on_delivered(8, 21_000_000);
        p.on_delivered(9, 21_000_000);
        p.finish(26_000_000);
        assert_eq!(p.stall_us(), 0);
        // 7·D = 14 s of media at 20.5 s: 6.5 s behind the live point throughout.
        let lat = p.mean_latency_us().expect("watched");
        assert!((lat - 6_500_000.0).abs() < 1.0, "{lat}");
    }

    #[test]
    fn a_missing_segment_stalls_until_it_arrives() {
        let mut p = Player::new(D, 1, 0);
        p.on_playlist(9, 3, 20_000_000);
        p.on_delivered(7, 20_000_000);
        // Segment 8 arrives 1 s after segment 7 ran out (at 22 s).
        p.on_delivered(8, 23_000_000);
        p.finish(24_000_000);
        assert_eq!(p.stalls, vec![(22_000_000, 23_000_000)]);
        assert_eq!(p.stall_between(22_500_000, 30_000_000), 500_000);
    }

    #[test]
    fn deadlines_follow_the_playhead() {
        let mut p = Player::new(D, 1, 0);
        p.on_playlist(9, 3, 20_000_000);
        p.on_delivered(7, 20_000_000);
        let loads = p.on_playlist(10, 3, 21_000_000);
        // Segment 10 plays 3 segments after 7 started at 20 s.
        assert_eq!(loads, vec![(10, 26_000_000)]);
    }
}
