//! Uploads are paced on `Input::Drained`, which a transport reports when a connection's send
//! buffer falls to `upload.low_water` *from above* (`bufferedamountlow`). Small control frames
//! never fill that buffer, so no report follows them: they must not eat the upload window for
//! good. A neighbour that only exchanged control traffic with us for a while is still served.

mod common;

use common::{Net, key};
use f2f_core::config::Config;
use f2f_core::time::Duration;
use f2f_core::wire::Message;

/// Bytes of a 300 kB segment `a` serves to a scripted neighbour that first sent `requests`
/// requests for segments `a` lacks, one every 20 ms: each gets a 64-byte `Absent`, sent at once
/// on an idle link, so the send buffer never nears `low_water`.
fn served_after_small_talk(requests: u64) -> u64 {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    let request = |key| Message::Request {
        key,
        offset: 0,
        end: None,
    };
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
            Message::Piece { data, .. } if to == x => Some(data.len() as u64),
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
