//! The event queue: earliest first, ties in insertion order (so runs are deterministic).
//!
//! A timing wheel of 1 ms slots covers the next few seconds, where almost every event lands;
//! only the slot being drained is kept as a (small) heap, so a pop touches a few cache lines
//! instead of walking a heap of a million pending events. Events beyond the wheel wait in an
//! overflow heap and move into the wheel as time approaches them. Events themselves live in a
//! slab and only 24-byte handles are ordered.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use slab::Slab;

/// Width of one wheel slot, µs.
const SLOT_US: u64 = 1_000;
/// Slots in the wheel (a power of two): 16 s of horizon.
const SLOTS: usize = 1 << 14;

type Handle = (u64, u64, u32);

pub(crate) struct EventQueue<E> {
    /// Events of the slot being drained, ordered.
    current: BinaryHeap<Reverse<Handle>>,
    /// Start time of the current slot.
    current_slot: u64,
    /// Later slots within the horizon, unordered.
    wheel: Vec<Vec<Handle>>,
    /// Events past the horizon.
    overflow: BinaryHeap<Reverse<Handle>>,
    /// Handles in `wheel` (not counting `current` and `overflow`).
    in_wheel: usize,
    slab: Slab<E>,
    seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            current: BinaryHeap::new(),
            current_slot: 0,
            wheel: (0..SLOTS).map(|_| Vec::new()).collect(),
            overflow: BinaryHeap::new(),
            in_wheel: 0,
            slab: Slab::new(),
            seq: 0,
        }
    }

    /// Queues `ev` at `at` (events before the current slot run as soon as possible).
    pub(crate) fn push(&mut self, at: u64, ev: E) {
        let slot = u32::try_from(self.slab.insert(ev)).expect("fewer than 2^32 pending events");
        self.seq += 1;
        self.place((at, self.seq, slot));
    }

    fn place(&mut self, handle: Handle) {
        let slot_no = handle.0 / SLOT_US;
        if slot_no <= self.current_slot {
            self.current.push(Reverse(handle));
        } else if slot_no < self.current_slot + SLOTS as u64 {
            self.wheel[slot_no as usize % SLOTS].push(handle);
            self.in_wheel += 1;
        } else {
            self.overflow.push(Reverse(handle));
        }
    }

    /// The earliest event and its time.
    pub(crate) fn pop(&mut self) -> Option<(u64, E)> {
        // Brings the earliest slot into `current`.
        self.peek_at()?;
        let Reverse((at, _, slot)) = self.current.pop()?;
        Some((at, self.slab.remove(slot as usize)))
    }

    /// The time of the earliest event.
    pub(crate) fn peek_at(&mut self) -> Option<u64> {
        loop {
            if let Some(Reverse((at, ..))) = self.current.peek() {
                return Some(*at);
            }
            if self.in_wheel == 0 && self.overflow.is_empty() {
                return None;
            }
            self.advance();
        }
    }

    /// The earliest event and its time, if it is due before `limit`.
    pub(crate) fn pop_before(&mut self, limit: u64) -> Option<(u64, E)> {
        if self.peek_at()? >= limit {
            return None;
        }
        self.pop()
    }

    /// Moves to the next slot holding events: the next non-empty wheel slot, or straight to
    /// the first overflow event when the wheel is empty.
    fn advance(&mut self) {
        if self.in_wheel == 0 {
            if let Some(Reverse(first)) = self.overflow.peek() {
                self.current_slot = self.current_slot.max((first.0 / SLOT_US).saturating_sub(1));
            }
        }
        self.current_slot += 1;
        let idx = self.current_slot as usize % SLOTS;
        let due = std::mem::take(&mut self.wheel[idx]);
        self.in_wheel -= due.len();
        self.current.extend(due.into_iter().map(Reverse));
        // The horizon moved one slot: overflow events now inside it join the wheel.
        let horizon = (self.current_slot + SLOTS as u64) * SLOT_US;
        while self.overflow.peek().is_some_and(|Reverse(h)| h.0 < horizon) {
            let Some(Reverse(h)) = self.overflow.pop() else {
                break;
            };
            self.place(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn earliest_first_then_insertion_order() {
        let mut q = EventQueue::new();
        q.push(5, "c");
        q.push(1, "a");
        q.push(5, "d");
        q.push(1, "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(1, "a"), (1, "b"), (5, "c"), (5, "d")]);
        q.push(2, "e");
        assert_eq!(q.pop(), Some((2, "e")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn pops_only_what_is_due_before_a_limit() {
        let mut q = EventQueue::new();
        q.push(2_500, "b");
        q.push(900, "a");
        q.push(20_000_000, "far");
        assert_eq!(q.peek_at(), Some(900));
        assert_eq!(q.pop_before(1_000), Some((900, "a")));
        assert_eq!(q.pop_before(1_000), None);
        q.push(999, "late");
        assert_eq!(q.pop_before(1_000), Some((999, "late")));
        assert_eq!(q.pop_before(3_000), Some((2_500, "b")));
        assert_eq!(q.peek_at(), Some(20_000_000));
        assert_eq!(q.pop_before(20_000_000), None);
        assert_eq!(q.pop_before(u64::MAX), Some((20_000_000, "far")));
        assert_eq!(q.peek_at(), None);
    }

    /// The wheel, its slots and the overflow heap together behave exactly like one heap,
    /// including events pushed while draining and events far beyond the horizon.
    #[test]
    fn matches_a_plain_heap_under_random_load() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut q = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut now = 0u64;
        let mut seq = 0u64;
        for round in 0..20_000u64 {
            for _ in 0..rng.random_range(0..3) {
                let delay = match rng.random_range(0..10) {
                    0 => rng.random_range(0..100_000_000), // far beyond the 16 s wheel
                    1 => 0,
                    _ => rng.random_range(0..50_000),
                };
                seq += 1;
                q.push(now + delay, round);
                reference.push(Reverse((now + delay, seq, round)));
            }
            if rng.random_bool(0.6) {
                let got = q.pop();
                let want = reference.pop().map(|Reverse((at, _, ev))| (at, ev));
                assert_eq!(got, want);
                if let Some((at, _)) = got {
                    now = at;
                }
            }
        }
        while let Some(Reverse((at, _, ev))) = reference.pop() {
            assert_eq!(q.pop(), Some((at, ev)));
        }
        assert_eq!(q.pop(), None);
    }
}
