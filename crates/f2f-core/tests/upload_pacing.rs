//! Uploads are paced on `Input::Drained`, which a transport reports when a connection's send
//! buffer falls to `upload.low_water` *from above* (`bufferedamountlow`). Small control frames
//! never fill that buffer, so no report follows them: they must not eat the upload window for
//! good. A neighbour that only exchanged control traffic with us for a while is still served.

mod common;

use common::{Ix, Net, key};
use f2f_core::config::Config;
use f2f_core::id::SegmentKey;
use f2f_core::time::Duration;
use f2f_core::wire::{AbsentReason, Message, RequestId};

/// A request for the whole of `key`.
fn request(key: SegmentKey) -> Message {
    Message::Request {
        id: RequestId(0),
        key,
        offset: 0,
        end: None,
    }
}

/// `x` asks `a` for a 300 kB segment, which lets `a` measure its uplink and the stream's rate
/// (2 s segments), then for a new segment of `len` bytes, which it returns.
fn warmed_transfer(net: &mut Net, a: Ix, x: Ix, len: usize) -> SegmentKey {
    let warm = net.publish(1, 300_000);
    net.load(a, warm, Duration::from_secs(10));
    net.run_for(Duration::from_secs(1));
    net.send(x, a, &request(warm));
    net.run_for(Duration::from_secs(5));
    let seg = net.publish(2, len);
    net.load(a, seg, Duration::from_secs(30));
    net.run_for(Duration::from_secs(1));
    net.send(x, a, &request(seg));
    seg
}

/// Bytes of a 300 kB segment `a` serves to a scripted neighbour that first sent `requests`
/// requests for segments `a` lacks, one every 20 ms: each gets a 64-byte `Absent`, sent at once
/// on an idle link, so the send buffer never nears `low_water`.
fn served_after_small_talk(requests: u64) -> u64 {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    for seq in 0..requests {
        net.send(x, a, &request(key(seq)));
        net.run_for(Duration::from_millis(20));
    }
    let seg = net.publish(requests + 1, 300_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));
    net.send(x, a, &request(seg));
    net.run_for(Duration::from_secs(3));
    net.messages()
        .filter_map(|(_, to, m)| match m {
            Message::Piece { offset, end, .. } if to == x => Some(end - offset),
            _ => None,
        })
        .sum()
}

#[test]
fn a_neighbour_is_served_after_a_little_control_traffic() {
    assert_eq!(served_after_small_talk(100), 300_000);
}

/// 6,000 × 64 bytes is past `high_water` (256 KiB): in a live session, the `Have`s and sketches
/// sent to a linked neighbour that never asks us for anything add up to that within the hour.
#[test]
fn a_neighbour_is_served_after_long_control_only_traffic() {
    assert_eq!(
        served_after_small_talk(6_000),
        300_000,
        "a never served the segment it holds"
    );
}

/// On a slow uplink the bytes handed to the transport but not yet sent are what a cancel throws
/// away: at most one piece above the low-water mark plus the piece that crossed it, not seconds
/// of backlog (at 0.8 Mb/s, 144 KiB is 1.5 s).
#[test]
fn a_cancelled_transfer_on_a_slow_uplink_wastes_at_most_two_pieces() {
    let config = Config::default();
    let (chunk, low) = (config.upload.chunk as u64, config.upload.low_water);
    let mut net = Net::new(config);
    let a = net.add();
    net.nodes[a].up_bps = 800_000.0;
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    let seg = warmed_transfer(&mut net, a, x, 1_000_000);
    net.run_for(Duration::from_millis(2_500));
    net.send(x, a, &Message::Cancel { key: seg });
    net.run_for(Duration::from_secs(5));

    let log: Vec<_> = net.messages().collect();
    let cancelled = log
        .iter()
        .position(|(from, to, m)| *from == x && *to == a && matches!(m, Message::Cancel { .. }))
        .expect("the cancel arrived");
    let pieces = |msgs: &[(usize, usize, &Message)]| -> u64 {
        msgs.iter()
            .filter_map(|(from, to, m)| match m {
                Message::Piece {
                    key, offset, end, ..
                } if *from == a && *to == x && *key == seg => Some(end - offset),
                _ => None,
            })
            .sum()
    };
    assert!(
        pieces(&log[..cancelled]) > 100_000,
        "the transfer was under way"
    );
    let wasted = pieces(&log[cancelled..]);
    assert!(
        wasted <= 2 * chunk + low,
        "{wasted} bytes arrived after the cancel"
    );
}

/// How a holder with an uplink slower than the stream (0.8 Mb/s against 1.2), among two
/// neighbours that report uplinks of `neighbours_kbps`, serves: the sizes of the first and the
/// largest piece of its transfer to `x`, and whether it turns `y` away (`Busy`) when `y` asks
/// for the same segment as soon as the last of `x`'s bytes were handed to the transport.
fn slow_holder(neighbours_kbps: u32) -> (u64, u64, bool) {
    let mut net = Net::new(Config::default());
    let a = net.add();
    net.nodes[a].up_bps = 800_000.0;
    let (x, y) = (net.linked_scripted(a), net.linked_scripted(a));
    net.run_for(Duration::from_secs(1));
    for n in [x, y] {
        let have = Message::Have {
            load: 0,
            upload_kbps: neighbours_kbps,
            partial: false,
            keys: Vec::new(),
        };
        net.send(n, a, &have);
    }
    let seg = warmed_transfer(&mut net, a, x, 300_000);
    let handed = |net: &Net| net.engine(a).stats().uploaded_bytes >= 600_000;
    assert!(
        net.run_until(Duration::from_secs(10), handed),
        "x's transfer handed over"
    );
    let asked = net.messages().count();
    net.send(y, a, &request(seg));
    // The answer leaves behind the bytes still buffered for x.
    net.run_for(Duration::from_secs(3));
    let to_x: Vec<u64> = (net.messages())
        .filter_map(|(from, to, m)| match m {
            Message::Piece {
                key, offset, end, ..
            } if (from, to, *key) == (a, x, seg) => Some(end - offset),
            _ => None,
        })
        .collect();
    let answer = (net.messages().skip(asked))
        .find(|(from, to, _)| (*from, *to) == (a, y))
        .map(|(_, _, m)| m.clone())
        .expect("y was answered");
    let busy = matches!(
        answer,
        Message::Absent {
            reason: AbsentReason::Busy,
            ..
        }
    );
    let largest = to_x.iter().copied().max().expect("x was served");
    (to_x[0], largest, busy)
}

/// In a neighbourhood whose uplinks carry less than the stream, a slow holder opens a transfer
/// with a 16 KiB piece (64 KiB take 0.65 s at 0.8 Mb/s, about the 0.7 s a requester waits for
/// a first byte), and starts the next transfer only once the last one's bytes have left: its
/// first piece would wait behind them (up to 144 KiB, 1.4 s), so the requester is better told
/// `Busy` at once. Among fast neighbours neither applies.
#[test]
fn a_slow_holder_in_a_starved_neighbourhood_answers_within_the_first_byte_wait() {
    let (group, piece) = (16 * 1024, Config::default().upload.chunk as u64);
    assert_eq!(
        slow_holder(600),
        (group, piece, true),
        "neighbours at 0.6 Mb/s"
    );
    assert_eq!(
        slow_holder(20_000),
        (piece, piece, false),
        "neighbours at 20 Mb/s"
    );
}

/// A holder counts what became of the requests it could not start at once: queued (and of
/// those, withdrawn before a slot came free) or turned away. In the simulator's large swarms
/// most queued requests are withdrawn unstarted: these counts show an operator how much of the
/// chunk loss is requesters waiting in queues rather than peers failing.
#[test]
fn a_holder_counts_the_requests_it_queued_and_those_withdrawn_unstarted() {
    let mut config = Config::default();
    (config.upload.slots, config.upload.max_slots) = (1, 1);
    config.upload.queue = 2;
    let mut net = Net::new(config);
    let a = net.add();
    let askers: Vec<Ix> = (0..4).map(|_| net.linked_scripted(a)).collect();
    net.run_for(Duration::from_secs(1));
    // The first asker's warm-up and its transfer of `seg` each start at once.
    let seg = warmed_transfer(&mut net, a, askers[0], 300_000);
    for &n in &askers[1..] {
        net.run_for(Duration::from_millis(10));
        net.send(n, a, &request(seg));
    }
    net.run_for(Duration::from_millis(10));
    net.send(askers[1], a, &Message::Cancel { key: seg });
    net.run_for(Duration::from_secs(10));

    let s = net.engine(a).stats();
    let counted = (s.uploads_started, s.uploads_queued, s.uploads_turned_away);
    assert_eq!(counted, (2, 2, 1), "at once, queued, turned away");
    assert_eq!(s.uploads_queue_withdrawn, 1);
    let served = |n: Ix| {
        net.messages()
            .any(|(from, to, m)| (from, to) == (a, n) && matches!(m, Message::Piece { .. }))
    };
    assert!(served(askers[2]), "the one left in the queue was served");
}
