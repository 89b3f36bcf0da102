//! The engine's side of [`crate::receipt`]: counting the verified bytes each peer sends us per
//! window, signing a receipt for each when the window closes, and bundling the receipts our
//! receivers send us for the driver to report.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::peer::Conn;
use super::{Engine, Output};
use crate::id::{PeerId, SegmentKey};
use crate::identity::{Domain, Signature};
use crate::receipt::{Delivery, ReceiptBundle, ReceiptEntry};
use crate::time::Instant;
use crate::wire::Message;

/// Receipts held per window: one per receiver, and receivers are our connections.
const MAX_HELD: usize = 4096;

#[derive(Debug, Default)]
struct Received {
    bytes: u64,
    segments: FxHashSet<SegmentKey>,
    /// The previous piece's segment: a segment's pieces come back to back, so the set is
    /// touched once per segment rather than once per piece.
    last: Option<SegmentKey>,
}

/// Both sides' bookkeeping, by window number.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// What each uploader sent us.
    received: BTreeMap<u64, FxHashMap<PeerId, Received>>,
    /// Receipts our receivers signed for us, with their signatures.
    held: BTreeMap<u64, Vec<(ReceiptEntry, Signature)>>,
    /// The longest window length in effect lately, and until when (Unix seconds) receipts
    /// for its windows are still accepted: after remote config shortens the window, a
    /// receiver still on the old length signs a window that started long ago.
    longest: (u64, u64),
}

impl Engine {
    /// The receipt window under way: its first second. Named by its start rather than its
    /// index so that a live change of the length keeps older windows comparable.
    fn receipt_window(&self) -> u64 {
        let now = self.unix_now().0;
        now - now % self.receipt_len()
    }

    fn receipt_len(&self) -> u64 {
        self.config.receipts.window.as_secs().max(1)
    }

    /// The longest window length whose receipts may still arrive.
    fn longest_receipt_len(&mut self) -> u64 {
        let (len, now) = (self.receipt_len(), self.unix_now().0);
        let (longest, until) = &mut self.ledger.longest;
        if len >= *longest || now >= *until {
            *longest = len;
        }
        if len == *longest {
            *until = now + 2 * len;
        }
        *longest
    }

    /// `len` verified bytes of `key` arrived from `from`.
    pub(super) fn count_received(&mut self, from: PeerId, key: SegmentKey, len: u64) {
        let window = self.receipt_window();
        let r = (self.ledger.received.entry(window).or_default())
            .entry(from)
            .or_default();
        r.bytes += len;
        if r.last != Some(key) {
            r.segments.insert(key);
            r.last = Some(key);
        }
    }

    /// Signs receipts for the windows that closed, and reports the receipts held for windows
    /// closed long enough for every receiver's to have arrived.
    pub(super) fn settle_receipts(&mut self) {
        // Keeps the longest length's expiry moving while it is in effect, receipts or not.
        self.longest_receipt_len();
        let now = self.receipt_window();
        self.sign_receipts(now);
        let settled = self.receipt_len() * 2;
        let due: Vec<u64> = (self.ledger.held.keys())
            .copied()
            .filter(|w| w + settled <= now)
            .collect();
        for window in due {
            let held = self.ledger.held.remove(&window).unwrap_or_default();
            self.report_receipts(held);
        }
    }

    /// Sends each uploader our receipt for every window that started before `until`.
    fn sign_receipts(&mut self, until: u64) {
        let closed: Vec<u64> = (self.ledger.received.keys())
            .copied()
            .filter(|w| *w < until)
            .collect();
        for window in closed {
            let uploaders = self.ledger.received.remove(&window).unwrap_or_default();
            for (uploader, r) in uploaders {
                // Only to a connection that still proves who it is.
                if self
                    .peers
                    .get(&uploader)
                    .is_none_or(|p| p.conn != Conn::Ready)
                {
                    continue;
                }
                let delivery = Delivery {
                    window,
                    bytes: r.bytes,
                    segments: u32::try_from(r.segments.len()).unwrap_or(u32::MAX),
                };
                let msg = delivery.statement(&uploader, &self.me, &self.swarm);
                let crypto = self.identity.crypto.as_ref();
                let signature = crypto.sign(&self.identity.keypair, Domain::Receipt, &msg);
                let receipt = Message::Receipt {
                    delivery,
                    signature,
                };
                self.send(uploader, receipt);
            }
        }
    }

    fn report_receipts(&mut self, held: Vec<(ReceiptEntry, Signature)>) {
        if held.is_empty() {
            return;
        }
        let sigs: Vec<Signature> = held.iter().map(|(_, s)| *s).collect();
        // Each was verified on arrival: they add up.
        let Ok(signature) = self.identity.crypto.aggregate(&sigs) else {
            return;
        };
        let bundle = ReceiptBundle {
            uploader: self.me,
            swarm: self.swarm,
            entries: held.into_iter().map(|(e, _)| e).collect(),
            signature,
        };
        self.out.push_back(Output::Receipts(Box::new(bundle)));
    }

    /// A receiver's receipt for what we sent it: kept if its signature holds.
    pub(super) fn on_receipt(
        &mut self,
        from: PeerId,
        delivery: Delivery,
        sig: Signature,
        now: Instant,
    ) {
        let current = self.receipt_window();
        let (len, longest) = (self.receipt_len(), self.longest_receipt_len());
        // Only for a window that can still be under way or just closed (the current one from
        // a receiver that leaves), and that starts where a window of either length does.
        if delivery.window > current
            || delivery.window + longest * 2 <= current
            || (delivery.window % len != 0 && delivery.window % longest != 0)
        {
            return;
        }
        let Some(cert) = self.peers.get(&from).and_then(|p| p.certificate.clone()) else {
            return;
        };
        let held = self.ledger.held.entry(delivery.window).or_default();
        let duplicate = held
            .iter()
            .any(|(e, _)| e.receiver.public_key == cert.public_key);
        if duplicate || held.len() >= MAX_HELD {
            return;
        }
        let msg = delivery.statement(&self.me, &from, &self.swarm);
        let crypto = self.identity.crypto.as_ref();
        if let Err(e) = crypto.verify(&cert.public_key, Domain::Receipt, &msg, &sig) {
            return self.misbehaved(from, format!("receipt signature: {e}"), now);
        }
        let entry = ReceiptEntry {
            receiver: *cert,
            delivery,
        };
        (self.ledger.held.entry(delivery.window).or_default()).push((entry, sig));
    }

    /// Leaving: our receipts for the window under way go out now, and the receipts we hold
    /// are reported.
    pub(super) fn flush_receipts(&mut self) {
        self.sign_receipts(self.receipt_window() + 1);
        let held = std::mem::take(&mut self.ledger.held);
        for (_, receipts) in held {
            self.report_receipts(receipts);
        }
    }
}
