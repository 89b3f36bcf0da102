//! The network a peer connects from, for eclipse resistance: one operator's many identities
//! (certificates cost a CDN session each, addresses cost less) tend to share a subnet, so the
//! views hold only a few peers per subnet.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A public address's subnet (IPv4 /24, IPv6 /48), or, for an address that is not publicly
/// routable (loopback, private, link-local), the socket address itself: a local network's
/// peers are not an attacker's subnet, and grouping them would cut a LAN party off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetGroup([u8; 19]);

impl NetGroup {
    /// The group of a peer's transport address (for WebRTC, the remote ICE candidate).
    pub fn of(addr: SocketAddr) -> Self {
        let mut g = [0; 19];
        match canonical(addr.ip()) {
            IpAddr::V4(v4) if !(v4.is_private() || v4.is_loopback() || v4.is_link_local()) => {
                g[0] = 4;
                g[1..4].copy_from_slice(&v4.octets()[..3]);
            }
            // 6to4 (2002::/16) carries an IPv4 address: group by its /24, or one IPv4 /24
            // would be 256 groups.
            IpAddr::V6(v6) if v6.segments()[0] == 0x2002 => {
                g[0] = 4;
                g[1..4].copy_from_slice(&v6.octets()[2..5]);
            }
            IpAddr::V6(v6) if is_public_v6(&v6) => {
                g[0] = 6;
                g[1..7].copy_from_slice(&v6.octets()[..6]);
            }
            ip => {
                g[0] = 1;
                let octets = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                g[1..17].copy_from_slice(&octets);
                g[17..].copy_from_slice(&addr.port().to_be_bytes());
            }
        }
        Self(g)
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_public_v6(ip: &Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> NetGroup {
        NetGroup::of(s.parse().expect("socket address"))
    }

    #[test]
    fn public_addresses_group_by_subnet() {
        assert_eq!(g("203.0.113.7:1000"), g("203.0.113.200:2000"));
        assert_ne!(g("203.0.113.7:1000"), g("203.0.114.7:1000"));
        assert_eq!(g("[2001:db8:1:2::1]:5"), g("[2001:db8:1:ffff::9]:6"));
        assert_ne!(g("[2001:db8:1::1]:5"), g("[2001:db8:2::1]:5"));
        // The same IPv4 address written as IPv4-mapped IPv6, and a 6to4 prefix over it.
        assert_eq!(g("[::ffff:203.0.113.7]:1"), g("203.0.113.9:1"));
        assert_eq!(g("[2002:cb00:7107::1]:1"), g("203.0.113.9:1"));
        assert_eq!(g("[2002:cb00:71ff::1]:1"), g("203.0.113.9:1"));
    }

    #[test]
    fn local_addresses_are_each_their_own_group() {
        assert_ne!(g("127.0.0.1:4000"), g("127.0.0.1:4001"));
        assert_ne!(g("192.168.1.2:4000"), g("192.168.1.3:4000"));
        assert_ne!(g("[fe80::1]:1"), g("[fe80::2]:1"));
        assert_eq!(g("10.0.0.1:7"), g("10.0.0.1:7"));
    }
}
