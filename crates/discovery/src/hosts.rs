//! Which hosts a discovered target may send to: an optional allow-list of host suffixes, and
//! no loopback, link-local or private address unless the allow-list names it.
//!
//! Only what the URL says is checked: an IP literal, or a name. A DNS name that resolves to a
//! private address passes the default check; only an allow-list stops it, which is why one is
//! recommended wherever Secrets are written by others than the operator.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer};

/// One entry of `discovery.kubernetes.allowed_hosts`: `hooks.slack.com` allows that host only,
/// `.pagerduty.com` any host under `pagerduty.com`, and `10.0.0.7` or `[fd00::7]` that address.
#[derive(Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// The pattern as written, lower-cased.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn matches(&self, host: &str) -> bool {
        match self.0.strip_prefix('.') {
            Some(_) => host.ends_with(&self.0),
            None => host == self.0,
        }
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let pattern = normalise(&text);
        let body = pattern.strip_prefix('.').unwrap_or(&pattern);
        // A colon only in an IPv6 address, so `host:443` is refused rather than never matching.
        let plain = !body.is_empty()
            && !body.starts_with('.')
            && (body.parse::<Ipv6Addr>().is_ok()
                || body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')));
        if !plain {
            return Err(serde::de::Error::custom(format!(
                "{text:?} is not a host or a `.domain` suffix (no scheme, port, path or `*`: \
                 write `.example.com` for every host under example.com)"
            )));
        }
        Ok(Self(pattern))
    }
}

/// Why a host was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostRefusal {
    /// An allow-list is set and the host matches none of its entries.
    NotAllowed,
    /// A loopback address or name (`127.0.0.0/8`, `::1`, `localhost`).
    Loopback,
    /// A link-local address (`169.254.0.0/16`, `fe80::/10`), where cloud metadata services live.
    LinkLocal,
    /// A private or unique-local address (RFC 1918, `100.64.0.0/10`, `fc00::/7`).
    Private,
    /// An unspecified, multicast, broadcast or reserved address.
    Special,
    /// A name that only makes sense inside a network: one label (`metadata`), or under
    /// `.local`, `.localhost`, `.internal`, `.svc` or `.home.arpa`.
    InternalName,
    /// A number that is not a dotted-quad IPv4 address (`2130706433`, `0x7f.1`), which
    /// resolvers may still read as one.
    NonCanonical,
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAllowed => "not in discovery.kubernetes.allowed_hosts",
            Self::Loopback => "a loopback address",
            Self::LinkLocal => "a link-local address",
            Self::Private => "a private address",
            Self::Special => "an unspecified, multicast or reserved address",
            Self::InternalName => "an internal name",
            Self::NonCanonical => "a number that is not a dotted-quad IPv4 address",
        })
    }
}

/// Lower-cases, drops IPv6 brackets and a trailing dot.
fn normalise(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    host.strip_suffix('.').unwrap_or(host).to_owned()
}

/// Checks the host of a URL a discovered target sends to. With an allow-list, the host must match
/// one of its entries, and then it may be anything (the operator named it). Without one, any
/// host is allowed except loopback, link-local, private and special addresses and internal names.
///
/// # Errors
/// The [`HostRefusal`].
pub(crate) fn check_host(host: &str, allowed: Option<&[HostPattern]>) -> Result<(), HostRefusal> {
    let host = normalise(host);
    if let Some(allowed) = allowed {
        return if allowed.iter().any(|pattern| pattern.matches(&host)) {
            Ok(())
        } else {
            Err(HostRefusal::NotAllowed)
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return check_ip(ip);
    }
    // No top-level domain starts with a digit, so a name whose last label does is a number that
    // a resolver (inet_aton) may read as an address in a form `IpAddr` does not parse.
    let last = host.rsplit('.').next().unwrap_or_default();
    if last.starts_with(|c: char| c.is_ascii_digit()) || host.contains(':') {
        return Err(HostRefusal::NonCanonical);
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(HostRefusal::Loopback);
    }
    const INTERNAL: &[&str] = &[".local", ".internal", ".svc", ".home.arpa", ".lan"];
    if !host.contains('.') || INTERNAL.iter().any(|suffix| host.ends_with(suffix)) {
        return Err(HostRefusal::InternalName);
    }
    Ok(())
}

fn check_ip(ip: IpAddr) -> Result<(), HostRefusal> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => check_v4(v4),
            None => check_v6(v6),
        },
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), HostRefusal> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Err(HostRefusal::Loopback)
    } else if ip.is_link_local() {
        Err(HostRefusal::LinkLocal)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Err(HostRefusal::Private)
    } else if a == 0 || ip.is_multicast() || a >= 240 {
        Err(HostRefusal::Special)
    } else {
        Ok(())
    }
}

fn check_v6(ip: Ipv6Addr) -> Result<(), HostRefusal> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Err(HostRefusal::Loopback)
    } else if first & 0xffc0 == 0xfe80 {
        Err(HostRefusal::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        // Unique-local, and the deprecated site-local range.
        Err(HostRefusal::Private)
    } else if ip.is_unspecified() || ip.is_multicast() {
        Err(HostRefusal::Special)
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
        let [.., hi, lo] = ip.segments();
        check_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<HostPattern> {
        list.iter()
            .map(|p| serde_json::from_value(serde_json::json!(p)).unwrap())
            .collect()
    }

    #[test]
    fn private_loopback_link_local_and_internal_hosts_are_refused_by_default() {
        for (host, why) in [
            ("127.0.0.1", HostRefusal::Loopback),
            ("127.9.9.9", HostRefusal::Loopback),
            ("[::1]", HostRefusal::Loopback),
            ("localhost", HostRefusal::Loopback),
            ("LOCALHOST.", HostRefusal::Loopback),
            ("api.localhost", HostRefusal::Loopback),
            ("169.254.169.254", HostRefusal::LinkLocal),
            ("[fe80::1]", HostRefusal::LinkLocal),
            ("[::ffff:169.254.169.254]", HostRefusal::LinkLocal),
            ("[64:ff9b::a9fe:a9fe]", HostRefusal::LinkLocal),
            ("10.1.2.3", HostRefusal::Private),
            ("172.16.0.1", HostRefusal::Private),
            ("172.31.255.255", HostRefusal::Private),
            ("192.168.1.1", HostRefusal::Private),
            ("100.64.0.1", HostRefusal::Private),
            ("[fd00::1]", HostRefusal::Private),
            ("[::ffff:10.0.0.1]", HostRefusal::Private),
            ("0.0.0.0", HostRefusal::Special),
            ("[::]", HostRefusal::Special),
            ("224.0.0.1", HostRefusal::Special),
            ("255.255.255.255", HostRefusal::Special),
            ("2130706433", HostRefusal::NonCanonical),
            ("127.1", HostRefusal::NonCanonical),
            ("0x7f.0.0.1", HostRefusal::NonCanonical),
            ("metadata", HostRefusal::InternalName),
            ("metadata.google.internal", HostRefusal::InternalName),
            ("kubernetes.default.svc", HostRefusal::InternalName),
            ("api.default.svc.cluster.local", HostRefusal::InternalName),
        ] {
            assert_eq!(check_host(host, None), Err(why), "{host}");
        }
        for host in [
            "events.pagerduty.com",
            "hooks.slack.com",
            "8.8.8.8",
            "172.32.0.1",
            "[2001:4860:4860::8888]",
            "x0.example.com",
        ] {
            assert_eq!(check_host(host, None), Ok(()), "{host}");
        }
    }

    #[test]
    fn the_allow_list_matches_exact_hosts_and_dot_suffixes_and_may_name_private_ones() {
        let allowed = patterns(&[".pagerduty.com", "Hooks.Slack.com", "10.0.0.7", "[fd00::7]"]);
        let check = |host| check_host(host, Some(&allowed));
        assert_eq!(check("events.pagerduty.com"), Ok(()));
        assert_eq!(check("a.b.pagerduty.com"), Ok(()));
        assert_eq!(check("hooks.slack.com."), Ok(()));
        assert_eq!(check("10.0.0.7"), Ok(()));
        assert_eq!(check("[fd00::7]"), Ok(()));
        for host in [
            "pagerduty.com.evil.com",
            "evilpagerduty.com",
            "pagerduty.com",
            "slack.com",
            "x.hooks.slack.com",
            "10.0.0.8",
            "127.0.0.1",
        ] {
            assert_eq!(check(host), Err(HostRefusal::NotAllowed), "{host}");
        }
        assert_eq!(
            check_host("anything.example", Some(&[])),
            Err(HostRefusal::NotAllowed)
        );
    }

    #[test]
    fn patterns_are_plain_hosts_or_suffixes() {
        for bad in [
            "https://hooks.slack.com",
            "hooks.slack.com:443",
            "*.slack.com",
            "hooks.slack.com/x",
            "",
            ".",
            "a b",
        ] {
            let parsed: Result<HostPattern, _> = serde_json::from_value(serde_json::json!(bad));
            assert!(parsed.is_err(), "{bad:?}");
        }
    }
}
