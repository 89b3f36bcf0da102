//! A request for a byte range is served exactly: the bytes from its offset up to its end, no
//! more (the requester fetches the rest elsewhere, so every extra byte is wasted uplink), as
//! pieces the requester can verify one by one against the segment's hash.

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::integrity::{GROUP_BYTES, Outboard, SegmentHash};
use f2f_core::time::Duration;
use f2f_core::wire::{Message, RequestId};

#[test]
fn a_ranged_request_gets_exactly_its_range() {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(1, 300_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));
    net.send(
        x,
        a,
        &Message::Request {
            id: RequestId(0),
            key: seg,
            offset: 6 * GROUP_BYTES,
            end: Some(12 * GROUP_BYTES),
        },
    );
    net.run_for(Duration::from_secs(3));
    let content = net.cdn[&seg].clone();
    let mut tree = Outboard::expecting(SegmentHash::of(&content), content.len() as u64);
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for (_, to, m) in net.messages() {
        if let Message::Piece {
            key,
            offset,
            end,
            data,
            ..
        } = m
            && to == x
            && *key == seg
        {
            let got = tree
                .decode(*offset, *end, data)
                .expect("every piece verifies");
            assert_eq!(got, content.slice(*offset as usize..*end as usize));
            pieces.push((*offset, *end));
        }
    }
    assert_eq!(pieces.first().map(|p| p.0), Some(6 * GROUP_BYTES));
    assert_eq!(pieces.last().map(|p| p.1), Some(12 * GROUP_BYTES));
    assert!(
        pieces.windows(2).all(|w| w[0].1 == w[1].0),
        "in order, contiguous, no overlap: {pieces:?}"
    );
}
