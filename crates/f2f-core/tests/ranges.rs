//! A request for a byte range is served exactly: the bytes from its offset up to its end, no
//! more (the requester fetches the rest elsewhere, so every extra byte is wasted uplink).

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::time::Duration;
use f2f_core::wire::Message;

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
            key: seg,
            offset: 100_000,
            end: Some(200_000),
        },
    );
    net.run_for(Duration::from_secs(3));
    let mut pieces: Vec<(u64, u64)> = net
        .messages()
        .filter_map(|(_, to, m)| match m {
            Message::Piece {
                key, offset, data, ..
            } if to == x && *key == seg => Some((*offset, offset + data.len() as u64)),
            _ => None,
        })
        .collect();
    pieces.sort_unstable();
    assert_eq!(pieces.first().map(|p| p.0), Some(100_000));
    assert_eq!(pieces.last().map(|p| p.1), Some(200_000));
    assert!(
        pieces.windows(2).all(|w| w[0].1 == w[1].0),
        "contiguous, no overlap: {pieces:?}"
    );
}
