//! A holder that turned a request away and is asked again may still have pieces of the first
//! request on the wire. They answer a request the requester has replaced, which the request id
//! tells apart: they are dropped, the holder is not taken for a peer that breaks the protocol,
//! and the new request's pieces deliver the segment.

mod common;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::id::SegmentKey;
use f2f_core::integrity::{GROUP_BYTES, Outboard};
use f2f_core::telemetry::Event;
use f2f_core::time::Duration;
use f2f_core::wire::{AbsentReason, Message, RequestId};

/// The requests `a` sent `x` for `seg`, oldest first: their ids and offsets.
fn asked(net: &Net, a: Ix, x: Ix, seg: SegmentKey) -> Vec<(RequestId, u64)> {
    net.messages()
        .filter_map(|(from, to, m)| match m {
            Message::Request {
                id, key, offset, ..
            } if (from, to) == (a, x) && *key == seg => Some((*id, *offset)),
            _ => None,
        })
        .collect()
}

#[test]
fn pieces_answering_a_replaced_request_are_dropped_and_the_holder_stays() {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(7, 300_000);
    let have = |keys: Vec<SegmentKey>| Message::Have {
        load: 0,
        upload_kbps: 50_000,
        partial: false,
        keys,
    };
    net.send(x, a, &have(vec![seg]));
    net.run_for(Duration::from_millis(100));
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_millis(100));
    let [(first, 0)] = asked(&net, a, x, seg)[..] else {
        panic!("a asks the only holder once, from the start")
    };

    // x turns it away, and once a's back-off has passed says it is idle again: a asks anew.
    let busy = Message::Absent {
        id: first,
        key: seg,
        reason: AbsentReason::Busy,
    };
    net.send(x, a, &busy);
    net.run_for(Duration::from_millis(300));
    net.send(x, a, &have(Vec::new()));
    net.run_for(Duration::from_millis(100));
    let requests = asked(&net, a, x, seg);
    let [_, (second, 0)] = requests[..] else {
        panic!("a asks x again from the start: {requests:?}")
    };
    assert_ne!(first, second);

    // What x had sent for the first request arrives now, then its answer to the second.
    let content = net.cdn[&seg].clone();
    let tree = Outboard::from_data(&content);
    let total = content.len() as u64;
    let piece = |id: RequestId, offset: u64, end: u64| Message::Piece {
        id,
        key: seg,
        offset,
        end,
        total,
        data: tree
            .encode(offset, &content.slice(offset as usize..end as usize))
            .expect("aligned"),
    };
    let cut = 4 * GROUP_BYTES;
    net.send(x, a, &piece(first, 0, cut));
    net.send(x, a, &piece(first, cut, 2 * cut));
    // A late refusal of the first request must not cancel the second either.
    net.send(x, a, &busy);
    net.send(x, a, &piece(second, 0, cut));
    net.send(x, a, &piece(second, cut, total));
    net.run_for(Duration::from_secs(1));

    let blamed = net.nodes[a]
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerMisbehaved { .. }));
    assert!(!blamed, "{:?}", net.nodes[a].events);
    assert!(net.is_connected(a, x));
    let [d] = net.nodes[a].delivered.as_slice() else {
        panic!("the segment was not delivered")
    };
    assert_eq!(d.data, content);
    assert_eq!(d.sources.p2p, total, "every byte came from x");
    assert_eq!(net.engine(a).stats().stale_answers, 3);
}
