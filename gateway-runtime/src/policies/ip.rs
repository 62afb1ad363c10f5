//! `ip`: client addresses an operation lets in or keeps out (`FORBIDDEN`). The address is the connection's peer,
//! or behind a trusted proxy (`--trust-proxy`) the last `X-Forwarded-For` hop, the same one the throttles count.

use std::net::IpAddr;

use crate::error::{ErrorKind, GatewayError};
use crate::spec::IpSpec;

/// Admits `client` when no deny block holds it and, with an allow list, an allow block does.
pub fn check(spec: &IpSpec, client: IpAddr) -> Result<(), GatewayError> {
    let denied = spec.deny.iter().any(|block| block.contains(client));
    let allowed = spec
        .allow
        .is_none_or(|list| list.iter().any(|block| block.contains(client)));
    if denied || !allowed {
        // The detail does not echo the address: a caller behind a proxy need not learn what the gateway saw.
        return Err(
            GatewayError::new(ErrorKind::Forbidden, "requests from this address are not allowed").with_reason("ip"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::spec::{Cidr, IpSpec};

    const OFFICE: IpSpec = IpSpec {
        allow: Some(&[
            Cidr::v4([10, 0, 0, 0], 8),
            Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        ]),
        deny: &[Cidr::v4([10, 6, 6, 6], 32)],
    };

    #[test]
    fn allow_blocks_admit_deny_blocks_refuse_and_deny_wins() {
        assert!(check(&OFFICE, "10.1.2.3".parse().expect("an address")).is_ok());
        assert!(check(&OFFICE, "2001:db8::7".parse().expect("an address")).is_ok());
        // An IPv4-mapped IPv6 peer (a dual-stack listener) is its IPv4 address.
        assert!(check(&OFFICE, "::ffff:10.1.2.3".parse().expect("an address")).is_ok());
        assert!(check(&OFFICE, "11.0.0.1".parse().expect("an address")).is_err());
        assert!(check(&OFFICE, "2001:db9::1".parse().expect("an address")).is_err());
        assert!(check(&OFFICE, "10.6.6.6".parse().expect("an address")).is_err());
        const DENY_ONLY: IpSpec = IpSpec {
            allow: None,
            deny: &[Cidr::v4([192, 0, 2, 0], 24)],
        };
        let deny_only = DENY_ONLY;
        assert!(check(&deny_only, "192.0.2.200".parse().expect("an address")).is_err());
        assert!(check(&deny_only, "198.51.100.1".parse().expect("an address")).is_ok());
        const EVERYONE: IpSpec = IpSpec {
            allow: Some(&[Cidr::v4([0, 0, 0, 0], 0)]),
            deny: &[],
        };
        let everyone = EVERYONE;
        assert!(check(&everyone, "203.0.113.9".parse().expect("an address")).is_ok());
    }
}
