//! The SSRF guard: outgoing requests never reach loopback, private,
//! link-local or otherwise internal addresses unless allowed explicitly.
//!
//! The check runs on the address actually connected to: the sender's HTTP
//! client resolves host names through [`AddressPolicy`], dropping refused
//! addresses, so a name that resolves to a public address at registration
//! and to `127.0.0.1` later (DNS rebinding) is still refused. URLs with an
//! IP literal are checked before each request.
//!
//! ```
//! use webhook_guard::sender::AddressPolicy;
//!
//! let strict = AddressPolicy::new();
//! assert!(strict.check("127.0.0.1".parse()?).is_err());
//! assert!(strict.check("::ffff:10.0.0.1".parse()?).is_err());
//! assert!(strict.check("93.184.215.14".parse()?).is_ok());
//!
//! let tests = AddressPolicy::new().allow("127.0.0.1")?;
//! assert!(tests.check("127.0.0.1".parse()?).is_ok());
//! assert!(tests.check("127.0.0.2".parse()?).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::ConfigError;

/// Which addresses outgoing requests may connect to: every public address,
/// plus the networks named with [`allow`](Self::allow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForbiddenAddress {
    /// The address.
    pub ip: IpAddr,
    /// The range it falls in (`loopback`, `private`, ...).
    pub range: &'static str,
}

impl fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is a {} address; allow it explicitly to send there",
            self.ip, self.range
        )
    }
}

impl std::error::Error for ForbiddenAddress {}

impl AddressPolicy {
    /// Public addresses only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows an address (`127.0.0.1`, `::1`) or a network in CIDR form
    /// (`10.0.0.0/8`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when the text is neither.
    pub fn allow(mut self, address_or_cidr: &str) -> Result<Self, ConfigError> {
        let text = address_or_cidr.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                ConfigError::InvalidSetting {
                    setting: "allowed address",
                    reason: format!("`{text}` is neither an IP address nor a CIDR network"),
                }
            })?,
        };
        self.allow.push(net);
        Ok(self)
    }

    /// Also allows this network.
    #[must_use]
    pub fn allow_net(mut self, net: IpNet) -> Self {
        self.allow.push(net);
        self
    }

    /// Whether a connection to `ip` is allowed.
    ///
    /// # Errors
    ///
    /// [`ForbiddenAddress`] naming the range it falls in.
    pub fn check(&self, ip: IpAddr) -> Result<(), ForbiddenAddress> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match forbidden_range(ip) {
            Some(range) => Err(ForbiddenAddress { ip, range }),
            None => Ok(()),
        }
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "unspecified (0.0.0.0/8)",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_documentation() => "documentation",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4).map(|_| "IPv4-mapped internal");
    }
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        [0, 0, 0, 0, 0, 0, _, _] => {
            let v4 = Ipv4Addr::from(((u32::from(s[6])) << 16) | u32::from(s[7]));
            return v4_range(v4).map(|_| "IPv4-compatible internal");
        }
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => "NAT64 (64:ff9b::/96)",
        [0x2002, ..] => {
            let v4 = Ipv4Addr::from(((u32::from(s[1])) << 16) | u32::from(s[2]));
            return v4_range(v4).map(|_| "6to4 internal");
        }
        [x, ..] if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [x, ..] if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        [0x2001, 0x0db8, ..] => "documentation (2001:db8::/32)",
        _ => return None,
    })
}

fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

/// The host of a URL when it is an IP literal (`http://[::1]/` too).
pub(crate) fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// A host name resolved to no address at all.
#[derive(Debug)]
pub(crate) struct DnsFailure {
    pub(crate) host: String,
    pub(crate) source: std::io::Error,
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` did not resolve: {}", self.host, self.source)
    }
}

impl std::error::Error for DnsFailure {}

/// Every address of a host is refused.
#[derive(Debug)]
pub(crate) struct HostBlocked {
    pub(crate) host: String,
    pub(crate) first: ForbiddenAddress,
}

impl fmt::Display for HostBlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "every address of `{}` is refused by the SSRF guard: {}",
            self.host, self.first
        )
    }
}

impl std::error::Error for HostBlocked {}

/// Resolves `host:port` and keeps only the allowed addresses.
pub(crate) async fn resolve_allowed(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| DnsFailure {
            host: host.to_owned(),
            source,
        })?;
    let mut allowed = Vec::new();
    let mut first_refused = None;
    for addr in addrs {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(why) => {
                first_refused.get_or_insert(why);
            }
        }
    }
    if allowed.is_empty() {
        return Err(match first_refused {
            Some(first) => Box::new(HostBlocked {
                host: host.to_owned(),
                first,
            }),
            None => Box::new(DnsFailure {
                host: host.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            }),
        });
    }
    Ok(allowed)
}

/// The HTTP client's resolver: resolves, then drops refused addresses.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let addrs = resolve_allowed(&policy, name.as_str(), 0).await?;
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        AddressPolicy::new().check(s.parse().unwrap()).is_err()
    }

    #[test]
    fn internal_v4_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.9",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn internal_v6_ranges_and_mapped_forms_are_refused() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "2002:7f00:1::",
            "2002:a00:1::",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert!(!refused(ip), "{ip} should pass");
        }
    }

    #[test]
    fn allow_list_takes_addresses_and_networks() {
        let p = AddressPolicy::new()
            .allow("127.0.0.1")
            .unwrap()
            .allow("10.0.0.0/8")
            .unwrap()
            .allow("::1")
            .unwrap();
        assert!(p.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check("10.200.0.1".parse().unwrap()).is_ok());
        assert!(p.check("::1".parse().unwrap()).is_ok());
        assert!(AddressPolicy::new().allow("localhost").is_err());
        let err = AddressPolicy::new()
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.range, "link-local");
        assert!(err.to_string().contains("allow it explicitly"));
    }

    #[test]
    fn literal_hosts_are_found() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            literal_ip(&u("http://127.0.0.1:8080/x")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            literal_ip(&u("http://[::1]/x")),
            Some("::1".parse().unwrap())
        );
        assert_eq!(literal_ip(&u("http://example.com/x")), None);
        // The URL parser normalizes odd IPv4 spellings, so they are caught too.
        assert_eq!(
            literal_ip(&u("http://2130706433/")),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            literal_ip(&u("http://0x7f.1/")),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
