//! `ip`: which client addresses may call. The operation's list, else its path item's, else the API's: a nearer
//! `ip` replaces the inherited one whole (an allow list is a statement about who the callers are, and two merged
//! would admit neither side's intent).

use std::net::IpAddr;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{Cidr, IpPolicy};
use crate::parse::ParsedOperation;
use crate::parse::ext::IpExt;

/// The operation's effective policy, checked; `None` when no level sets one (or it has errors, reported).
pub(super) fn check_operation(op: &ParsedOperation, root: Option<&IpExt>, diags: &mut Diagnostics) -> Option<IpPolicy> {
    let (at, ext) =
        super::inherited(op, "ip", |e| e.ip.as_ref()).or_else(|| root.map(|r| (String::from("/x-gateway/ip"), r)))?;
    check(ext, &at, diags)
}

/// The top level's policy, checked once for its diagnostics (an operation inheriting it is not re-reported).
pub(super) fn check_root(root: Option<&IpExt>, diags: &mut Diagnostics) -> bool {
    root.is_none_or(|r| check(r, "/x-gateway/ip", diags).is_some())
}

fn check(ext: &IpExt, at: &str, diags: &mut Diagnostics) -> Option<IpPolicy> {
    let mut ok = true;
    let mut list = |key: &str, entries: Option<&Vec<String>>| -> Vec<Cidr> {
        let mut out = Vec::new();
        for (i, entry) in entries.into_iter().flatten().enumerate() {
            match parse_cidr(entry) {
                Ok(cidr) => out.push(cidr),
                Err((message, help)) => {
                    diags.push(Diagnostic::error(format!("{at}/{key}/{i}"), message).help(help));
                    ok = false;
                }
            }
        }
        out
    };
    let allow = list("allow", ext.allow.as_ref());
    let deny = list("deny", ext.deny.as_ref());
    if ext.allow.as_ref().is_some_and(Vec::is_empty) {
        diags.push(
            Diagnostic::error(
                format!("{at}/allow"),
                "`allow` is empty, so every caller would be refused",
            )
            .help(
                "list the addresses or blocks that may call (e.g. `10.0.0.0/8`), or remove `allow` to let everyone in",
            ),
        );
        ok = false;
    }
    if ok && ext.allow.is_none() && deny.is_empty() {
        return None;
    }
    ok.then_some(IpPolicy {
        allow: ext.allow.is_some().then_some(allow),
        deny,
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (a block of one).
fn parse_cidr(text: &str) -> Result<Cidr, (String, String)> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        (
            format!("`{text}` is not an IP address or CIDR block"),
            String::from("write an address (`203.0.113.7`, `2001:db8::1`) or a block (`10.0.0.0/8`, `2001:db8::/32`)"),
        )
    })?;
    let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= bits => p,
            _ => {
                return Err((
                    format!(
                        "`/{p}` is not a prefix length of an IPv{} block",
                        if bits == 32 { 4 } else { 6 }
                    ),
                    format!("use 0 to {bits}"),
                ));
            }
        },
    };
    let cidr = Cidr { addr, prefix };
    let network = cidr.network();
    if network != addr {
        return Err((
            format!("`{text}` has bits set after its /{prefix} prefix"),
            format!("did you mean `{network}/{prefix}`?"),
        ));
    }
    Ok(cidr)
}

#[cfg(test)]
mod tests {
    use super::parse_cidr;

    #[test]
    fn addresses_and_blocks_parse_and_host_bits_are_refused() {
        assert_eq!(parse_cidr("10.0.0.0/8").map(|c| c.prefix), Ok(8));
        assert_eq!(parse_cidr("203.0.113.7").map(|c| c.prefix), Ok(32));
        assert_eq!(parse_cidr("2001:db8::/32").map(|c| c.prefix), Ok(32));
        assert_eq!(parse_cidr("::1").map(|c| c.prefix), Ok(128));
        let (message, help) = parse_cidr("10.1.2.3/8").expect_err("host bits");
        assert!(message.contains("bits set"), "{message}");
        assert_eq!(help, "did you mean `10.0.0.0/8`?");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("localhost").is_err());
    }
}
