//! The client's address, from Envoy's `source.address` property.
//!
//! Envoy gives `ip:port` for IPv4 and `[ip]:port` for IPv6. With the shipped
//! configuration (`use_remote_address: true`, `xff_num_trusted_hops: 0`)
//! this is the TCP peer, which a client cannot spoof with
//! `X-Forwarded-For`.

use std::net::IpAddr;

/// Parses `ip:port`, `[v6]:port`, or a bare address into an IP.
pub fn parse_source_address(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    let (ip, _port) = text.rsplit_once(':')?;
    ip.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_v6_and_bare() {
        assert_eq!(
            parse_source_address(b"127.0.0.7:5555"),
            Some("127.0.0.7".parse().unwrap())
        );
        assert_eq!(
            parse_source_address(b"[::1]:80"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            parse_source_address(b"[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_source_address(b"10.0.0.1"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_source_address(b"fe80::1"),
            Some("fe80::1".parse().unwrap())
        );
        for bad in [&b""[..], b"x:1", b"[::1", b"\xff:1", b"300.0.0.1:1"] {
            assert_eq!(parse_source_address(bad), None);
        }
    }
}
