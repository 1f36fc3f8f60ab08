//! Source addresses as every rule compares them: an IPv4 client on a dual-stack socket is the
//! IPv4 address it is, for the policy's networks, the rate limit's keys and the log's `rhost`.

use std::net::IpAddr;

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as sshd reports IPv4 clients on a dual-stack
/// socket) as the IPv4 address it is, so IPv4 rules match it.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}
