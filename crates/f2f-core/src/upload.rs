//! Serving segments to neighbours: one transfer at a time per slot, paced by the transport.
//!
//! A transfer hands the driver at most `high_water` bytes beyond what the connection has
//! already sent (the driver reports its send buffer falling low, as `RTCDataChannel`'s
//! `bufferedamountlow` does), so a cancelled transfer wastes little uplink and control messages
//! never wait behind megabytes. Sending a segment whole to one requester before starting the
//! next makes the first copy usable sooner, which is what spreads a new segment fastest; for the
//! same reason a request for a newer segment takes the slot of an older one when all are busy.

use std::collections::VecDeque;

use crate::config::UploadConfig;
use crate::id::{PeerId, SegmentKey};
use crate::time::Instant;
use crate::wire::RequestId;

/// One requested transfer: `key` to `peer`, from byte `next` on, up to `end` (exclusive; `None`:
/// the segment's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UploadJob {
    pub(crate) peer: PeerId,
    /// The requester's id for this request, echoed in every answer.
    pub(crate) id: RequestId,
    pub(crate) key: SegmentKey,
    /// Where the transfer starts: its first piece is the one the requester waits for.
    pub(crate) start: u64,
    /// Next byte to hand to the driver.
    pub(crate) next: u64,
    pub(crate) end: Option<u64>,
}

impl UploadJob {
    /// Where this transfer stops in a segment of `total` bytes.
    pub(crate) fn stop(&self, total: u64) -> u64 {
        self.end.map_or(total, |end| end.min(total))
    }
}

#[derive(Clone, Copy, Debug)]
struct Active {
    job: UploadJob,
    deadline: Instant,
}

/// What to do with a new request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// It has a slot: pump it.
    Started,
    /// It took the slot of this transfer of an older segment: tell that requester to look
    /// elsewhere, and pump.
    Displaced(UploadJob),
    /// Queued behind the busy slots.
    Queued,
    /// Slots and queue are full.
    Busy,
}

/// Where a cancelled transfer was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// There was none.
    Nothing,
    /// In a slot, sending.
    Active,
    /// Waiting for a slot: it never sent a byte.
    Queued,
}

#[derive(Debug)]
pub(crate) struct Uploads {
    active: Vec<Active>,
    queue: VecDeque<UploadJob>,
}

impl Uploads {
    pub(crate) fn new() -> Self {
        Self {
            active: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Uploads in progress or waiting, as reported to neighbours.
    pub(crate) fn load(&self) -> u8 {
        u8::try_from(self.active.len() + self.queue.len()).unwrap_or(u8::MAX)
    }

    pub(crate) fn admit(
        &mut self,
        job: UploadJob,
        slots: usize,
        queue: usize,
        config: &UploadConfig,
        now: Instant,
    ) -> Admit {
        // A repeated request replaces the old one (the requester resumes from a new offset).
        self.cancel(&job.peer, &job.key);
        let active = Active {
            job,
            deadline: now + config.timeout,
        };
        if self.active.len() < slots {
            self.active.push(active);
            Admit::Started
        } else if let Some(i) = self.oldest_behind(&job.key) {
            // Newest segment first. Its first copies are what the swarm waits on: every hop
            // it spends queued behind the tail of the previous segment delays the whole
            // subtree below us, which then runs late into the next segment's start, and so
            // on. The displaced requester resumes from its offset at another holder: by now
            // most of its neighbours hold the older segment whole.
            let displaced = std::mem::replace(&mut self.active[i], active).job;
            Admit::Displaced(displaced)
        } else if self.queue.len() < queue {
            self.queue.push_back(job);
            Admit::Queued
        } else {
            Admit::Busy
        }
    }

    /// The active transfer of the oldest segment of `key`'s rendition that is older than
    /// `key`, if any.
    fn oldest_behind(&self, key: &SegmentKey) -> Option<usize> {
        self.active
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                let k = &a.job.key;
                k.swarm == key.swarm && k.rendition == key.rendition && k.position < key.position
            })
            .min_by_key(|(_, a)| a.job.key.position)
            .map(|(i, _)| i)
    }

    /// Drops the transfer of `key` to `peer`, wherever it is, and says where it was.
    pub(crate) fn cancel(&mut self, peer: &PeerId, key: &SegmentKey) -> Cancelled {
        let (active, queued) = (self.active.len(), self.queue.len());
        self.active
            .retain(|a| !(a.job.peer == *peer && a.job.key == *key));
        self.queue.retain(|j| !(j.peer == *peer && j.key == *key));
        if active != self.active.len() {
            Cancelled::Active
        } else if queued != self.queue.len() {
            Cancelled::Queued
        } else {
            Cancelled::Nothing
        }
    }

    /// Drops everything for a peer that went away.
    pub(crate) fn forget_peer(&mut self, peer: &PeerId) {
        self.active.retain(|a| a.job.peer != *peer);
        self.queue.retain(|j| j.peer != *peer);
    }

    /// Active transfers, in slot order.
    pub(crate) fn active(&self) -> Vec<UploadJob> {
        self.active.iter().map(|a| a.job).collect()
    }

    /// Records that the job for (`peer`, `key`) handed bytes up to `next`.
    pub(crate) fn advance(&mut self, peer: &PeerId, key: &SegmentKey, next: u64) {
        if let Some(a) = self
            .active
            .iter_mut()
            .find(|a| a.job.peer == *peer && a.job.key == *key)
        {
            a.job.next = next;
        }
    }

    /// Frees the slots of finished and timed-out transfers and fills them from the queue,
    /// highest `priority` first (the engine ranks requesters by their upload capacity: a copy
    /// given to a fast uploader is passed on soonest). A queued peer that already holds a slot
    /// waits, so one greedy requester cannot take them all. Returns whether any started.
    pub(crate) fn refill(
        &mut self,
        finished: &[(PeerId, SegmentKey)],
        priority: impl Fn(&PeerId) -> f64,
        slots: usize,
        config: &UploadConfig,
        now: Instant,
    ) -> bool {
        self.active
            .retain(|a| a.deadline > now && !finished.contains(&(a.job.peer, a.job.key)));
        let mut started = false;
        while self.active.len() < slots {
            let busy: Vec<PeerId> = self.active.iter().map(|a| a.job.peer).collect();
            let best = |only_free: bool| {
                self.queue
                    .iter()
                    .enumerate()
                    .filter(|(_, j)| !only_free || !busy.contains(&j.peer))
                    .max_by(|(ia, a), (ib, b)| {
                        priority(&a.peer)
                            .total_cmp(&priority(&b.peer))
                            .then(ib.cmp(ia))
                    })
                    .map(|(i, _)| i)
            };
            let pos = best(true).or_else(|| best(false));
            let Some(job) = pos.and_then(|i| self.queue.remove(i)) else {
                break;
            };
            self.active.push(Active {
                job,
                deadline: now + config.timeout,
            });
            started = true;
        }
        started
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.active.iter().map(|a| a.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{RenditionId, SegmentPosition, SwarmId, VariantTag};

    fn job(p: u8, seq: u64) -> UploadJob {
        UploadJob {
            peer: PeerId::from_seed(&[p]),
            id: RequestId(seq as u32),
            key: SegmentKey {
                swarm: SwarmId::from_canonical("s"),
                rendition: RenditionId::from_canonical("r"),
                position: SegmentPosition::Sequence(seq),
                variant: VariantTag::from_u64(0),
            },
            start: 0,
            next: 0,
            end: None,
        }
    }

    #[test]
    fn a_newer_segment_displaces_the_oldest_transfer() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 2,
            queue: 1,
            ..Default::default()
        };
        let mut u = Uploads::new();
        u.admit(job(1, 6), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(2, 5), cfg.slots, cfg.queue, &cfg, now);
        // Nothing older than this one is active: it waits its turn.
        assert_eq!(
            u.admit(job(3, 5), cfg.slots, cfg.queue, &cfg, now),
            Admit::Queued
        );
        assert_eq!(
            u.admit(job(4, 7), cfg.slots, cfg.queue, &cfg, now),
            Admit::Displaced(job(2, 5))
        );
        assert_eq!(u.active(), vec![job(1, 6), job(4, 7)]);
        // Nothing older left to displace.
        assert_eq!(
            u.admit(job(5, 6), cfg.slots, cfg.queue, &cfg, now),
            Admit::Busy
        );
    }

    #[test]
    fn slots_then_queue_then_busy() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 1,
            queue: 1,
            ..Default::default()
        };
        let mut u = Uploads::new();
        assert_eq!(
            u.admit(job(1, 1), cfg.slots, cfg.queue, &cfg, now),
            Admit::Started
        );
        assert_eq!(
            u.admit(job(2, 1), cfg.slots, cfg.queue, &cfg, now),
            Admit::Queued
        );
        assert_eq!(
            u.admit(job(3, 1), cfg.slots, cfg.queue, &cfg, now),
            Admit::Busy
        );
        assert_eq!(u.load(), 2);
        assert!(u.refill(
            &[(job(1, 1).peer, job(1, 1).key)],
            |_| 0.0,
            cfg.slots,
            &cfg,
            now
        ));
        assert_eq!(u.active(), vec![job(2, 1)]);
    }

    #[test]
    fn queue_prefers_peers_without_an_active_slot() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 2,
            queue: 4,
            ..Default::default()
        };
        let mut u = Uploads::new();
        u.admit(job(1, 2), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(2, 2), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(1, 1), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(3, 1), cfg.slots, cfg.queue, &cfg, now);
        u.refill(
            &[(job(2, 2).peer, job(2, 2).key)],
            |_| 0.0,
            cfg.slots,
            &cfg,
            now,
        );
        assert_eq!(u.active(), vec![job(1, 2), job(3, 1)]);
    }

    #[test]
    fn fastest_requester_is_served_first() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 1,
            queue: 3,
            ..Default::default()
        };
        let mut u = Uploads::new();
        u.admit(job(1, 1), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(2, 1), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(3, 1), cfg.slots, cfg.queue, &cfg, now);
        let fast = job(3, 1).peer;
        u.refill(
            &[(job(1, 1).peer, job(1, 1).key)],
            |p| if *p == fast { 9.0 } else { 1.0 },
            cfg.slots,
            &cfg,
            now,
        );
        assert_eq!(u.active(), vec![job(3, 1)]);
    }

    #[test]
    fn stuck_uploads_time_out() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 1,
            queue: 1,
            ..Default::default()
        };
        let mut u = Uploads::new();
        u.admit(job(1, 1), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(2, 1), cfg.slots, cfg.queue, &cfg, now);
        assert!(!u.refill(&[], |_| 0.0, cfg.slots, &cfg, now));
        assert!(u.refill(&[], |_| 0.0, cfg.slots, &cfg, now + cfg.timeout));
        assert_eq!(u.active(), vec![job(2, 1)]);
    }

    #[test]
    fn cancel_removes_queued_and_active() {
        let now = Instant::now();
        let cfg = UploadConfig {
            slots: 1,
            queue: 2,
            ..Default::default()
        };
        let mut u = Uploads::new();
        u.admit(job(1, 1), cfg.slots, cfg.queue, &cfg, now);
        u.admit(job(2, 1), cfg.slots, cfg.queue, &cfg, now);
        let cancel = |u: &mut Uploads, j: UploadJob| u.cancel(&j.peer, &j.key);
        assert_eq!(cancel(&mut u, job(2, 1)), Cancelled::Queued);
        assert_eq!(cancel(&mut u, job(1, 1)), Cancelled::Active);
        assert_eq!(cancel(&mut u, job(1, 1)), Cancelled::Nothing);
        assert_eq!(u.load(), 0);
    }
}
