//! The SSRF guard: outgoing requests never reach loopback, private,
//! link-local or otherwise internal addresses unless allowed explicitly.
//!
//! The check runs on the address actually connected to: the sender's HTTP
//! client resolves host names through [`AddressPolicy`], dropping refused
//! addresses, so a name that resolves to a public address at registration
//! and to `127.0.0.1` later (DNS rebinding) is still refused. URLs with an
//! IP literal are checked before each request.
//!
//! A refused destination is reported to the caller in one generic message,
//! the same whether its host resolves only to refused addresses or does not
//! resolve at all; the address, the range and the DNS error go to the log
//! (`warn`). Otherwise a tenant registering URLs could probe which internal
//! names exist and what they resolve to.
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

use super::error::SenderError;
use crate::error::ConfigError;

/// Which addresses outgoing requests may connect to: every public address,
/// plus the networks named with [`allow`](Self::allow).
///
/// Refused unless allowed explicitly:
///
/// - IPv4: every entry of the IANA IPv4 Special-Purpose Address Registry
///   (0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16,
///   172.16.0.0/12, 192.0.0.0/24, 192.0.2.0/24, 192.31.196.0/24,
///   192.52.193.0/24, 192.88.99.0/24, 192.168.0.0/16, 192.175.48.0/24,
///   198.18.0.0/15, 198.51.100.0/24, 203.0.113.0/24, 240.0.0.0/4,
///   255.255.255.255/32), multicast 224.0.0.0/4;
/// - IPv6: every entry of the IANA IPv6 Special-Purpose Address Registry
///   (::/128, ::1/128, 64:ff9b:1::/48, 100::/64, 100:0:0:1::/64, 2001::/23
///   with Teredo 2001::/32, 2001:2::/48, 2001:3::/32, 2001:4:112::/48,
///   2001:10::/28, 2001:20::/28, 2001:30::/28, 2001:db8::/32,
///   2620:4f:8000::/48, 3fff::/20, 5f00::/16, fc00::/7, fe80::/10), the
///   deprecated ::/96, ::ffff:0:0:0/96 and fec0::/10, multicast ff00::/8, and
///   everything outside 2000::/3 (not global unicast);
/// - IPv6 forms of an IPv4 address (::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4
///   2002::/16) when the IPv4 address is refused;
/// - cloud metadata services: 169.254.169.254, 168.63.129.16 (Azure),
///   100.100.100.200 (Alibaba), fd00:ec2::254 (AWS over IPv6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForbiddenAddress {
    /// The address.
    pub ip: IpAddr,
    /// The range it falls in, with its prefix: `private-use (10.0.0.0/8)`.
    pub range: &'static str,
}

impl fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is in {}; allow it explicitly to send there",
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

    /// Whether a connection to `ip` is allowed: an explicitly allowed
    /// network, or an address in none of the refused ranges (listed
    /// [above](Self)).
    ///
    /// # Errors
    ///
    /// [`ForbiddenAddress`] naming the range it falls in.
    pub fn check(&self, ip: IpAddr) -> Result<(), ForbiddenAddress> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        let range = match ip {
            IpAddr::V4(v4) => v4_range(v4),
            IpAddr::V6(v6) => v6_range(v6),
        };
        match range {
            Some(range) => Err(ForbiddenAddress { ip, range }),
            None => Ok(()),
        }
    }
}

/// What a refused range does with an address in it.
#[derive(Clone, Copy)]
enum Rule {
    /// Refused.
    Refuse,
    /// Carries an IPv4 address in its last 32 bits: refused when that one is.
    EmbeddedLow,
    /// 6to4: carries an IPv4 address in bits 16..48: refused when that one is.
    Embedded6to4,
}

use Rule::{Embedded6to4, EmbeddedLow, Refuse};

/// A network refused as a destination (or checked by the IPv4 address it
/// embeds), with the name it is reported by. IPv4 networks are kept in their
/// IPv4-mapped form (`::ffff:a.b.c.d`), so one type serves both families.
struct Range {
    net: u128,
    len: u8,
    rule: Rule,
    name: &'static str,
}

impl Range {
    fn contains(&self, bits: u128) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.len))
            .unwrap_or(0);
        bits & mask == self.net & mask
    }
}

/// The IPv4-mapped form of `a.b.c.d/len`.
const fn v4(octets: [u8; 4], len: u8, name: &'static str) -> Range {
    let [a, b, c, d] = octets;
    Range {
        net: Ipv4Addr::new(a, b, c, d).to_ipv6_mapped().to_bits(),
        len: 96 + len,
        rule: Refuse,
        name,
    }
}

const fn v6(segments: [u16; 8], len: u8, rule: Rule, name: &'static str) -> Range {
    let [a, b, c, d, e, f, g, h] = segments;
    Range {
        net: Ipv6Addr::new(a, b, c, d, e, f, g, h).to_bits(),
        len,
        rule,
        name,
    }
}

/// Refused IPv4 destinations: the IANA IPv4 Special-Purpose Address Registry
/// (every entry, reachable or not: a webhook never goes to any of them),
/// multicast, and cloud metadata services. The first match names the range,
/// so the metadata addresses come before the ranges holding them.
#[rustfmt::skip]
const V4_RANGES: &[Range] = &[
    // RFC 791: "this network"; 0.0.0.0/32 is "this host".
    v4([0, 0, 0, 0], 8, "this network (0.0.0.0/8)"),
    // RFC 1918.
    v4([10, 0, 0, 0], 8, "private-use (10.0.0.0/8)"),
    // Alibaba Cloud instance metadata (inside 100.64.0.0/10).
    v4([100, 100, 100, 200], 32, "cloud metadata (100.100.100.200/32)"),
    // RFC 6598: carrier-grade NAT.
    v4([100, 64, 0, 0], 10, "shared address space (100.64.0.0/10)"),
    // RFC 1122.
    v4([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    // AWS, GCP, Azure, DigitalOcean, Oracle... instance metadata (inside
    // 169.254.0.0/16).
    v4([169, 254, 169, 254], 32, "cloud metadata (169.254.169.254/32)"),
    // RFC 3927.
    v4([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
    // Azure WireServer (platform DNS, DHCP, health, agent goal state): a
    // public address that answers only inside Azure.
    v4([168, 63, 129, 16], 32, "cloud metadata (168.63.129.16/32)"),
    // RFC 1918.
    v4([172, 16, 0, 0], 12, "private-use (172.16.0.0/12)"),
    // RFC 6890: IETF protocol assignments, with 192.0.0.0/29 (DS-Lite),
    // 192.0.0.8/32 (dummy), .9 (PCP anycast), .10 (TURN anycast),
    // .170/.171 (NAT64 discovery); Oracle Cloud metadata is 192.0.0.192.
    v4([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0.0/24)"),
    // RFC 5737: TEST-NET-1.
    v4([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    // RFC 7535: AS112-v4.
    v4([192, 31, 196, 0], 24, "AS112-v4 (192.31.196.0/24)"),
    // RFC 7450: AMT.
    v4([192, 52, 193, 0], 24, "AMT (192.52.193.0/24)"),
    // RFC 7526: deprecated 6to4 relay anycast (and 192.88.99.2/32, 6a44).
    v4([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    // RFC 1918.
    v4([192, 168, 0, 0], 16, "private-use (192.168.0.0/16)"),
    // RFC 7534: AS112 direct delegation.
    v4([192, 175, 48, 0], 24, "AS112 direct delegation (192.175.48.0/24)"),
    // RFC 2544.
    v4([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    // RFC 5737: TEST-NET-2.
    v4([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    // RFC 5737: TEST-NET-3.
    v4([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    // RFC 5771 (IPv4 Multicast Address Space Registry).
    v4([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    // RFC 919 (inside 240.0.0.0/4).
    v4([255, 255, 255, 255], 32, "limited broadcast (255.255.255.255/32)"),
    // RFC 1112: reserved.
    v4([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

/// Refused IPv6 destinations: the IANA IPv6 Special-Purpose Address Registry
/// (every entry), the deprecated forms that still route to IPv4, multicast,
/// cloud metadata, and (last, in [`v6_range`]) everything outside 2000::/3,
/// the only space IANA allocates for global unicast. The first match names
/// the range.
#[rustfmt::skip]
const V6_RANGES: &[Range] = &[
    // RFC 4291.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Refuse, "unspecified (::/128)"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Refuse, "loopback (::1/128)"),
    // RFC 4291: IPv4-mapped.
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, EmbeddedLow, "IPv4-mapped (::ffff:0:0/96) internal address"),
    // RFC 2765 (SIIT): IPv4-translated.
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96, Refuse, "IPv4-translated (::ffff:0:0:0/96)"),
    // RFC 4291: IPv4-compatible, deprecated.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, Refuse, "IPv4-compatible (::/96)"),
    // RFC 6052: NAT64 well-known prefix.
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, EmbeddedLow, "NAT64 (64:ff9b::/96) internal address"),
    // RFC 8215: local-use NAT64.
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Refuse, "local-use NAT64 (64:ff9b:1::/48)"),
    // RFC 6666: discard-only.
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Refuse, "discard-only (100::/64)"),
    // RFC 9780: dummy prefix.
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, Refuse, "dummy (100:0:0:1::/64)"),
    // RFC 4380: Teredo (embeds IPv4 server and client addresses).
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Refuse, "Teredo (2001::/32)"),
    // RFC 5180.
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Refuse, "benchmarking (2001:2::/48)"),
    // RFC 7450: AMT.
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, Refuse, "AMT (2001:3::/32)"),
    // RFC 7535: AS112-v6.
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, Refuse, "AS112-v6 (2001:4:112::/48)"),
    // RFC 4843: ORCHID, deprecated.
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, Refuse, "ORCHID (2001:10::/28)"),
    // RFC 7343.
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, Refuse, "ORCHIDv2 (2001:20::/28)"),
    // RFC 9374: drone remote ID.
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, Refuse, "drone remote ID (2001:30::/28)"),
    // RFC 2928: IETF protocol assignments, with the PCP, TURN and DNS-SD
    // anycast addresses 2001:1::1, ::2 and ::3.
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Refuse, "IETF protocol assignments (2001::/23)"),
    // RFC 3849.
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Refuse, "documentation (2001:db8::/32)"),
    // RFC 3056: 6to4.
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, Embedded6to4, "6to4 (2002::/16) internal address"),
    // RFC 7534: AS112 direct delegation.
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, Refuse, "AS112 direct delegation (2620:4f:8000::/48)"),
    // RFC 9637.
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Refuse, "documentation (3fff::/20)"),
    // RFC 9602: segment routing SIDs.
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Refuse, "segment routing (5f00::/16)"),
    // AWS instance metadata over IPv6 (inside fc00::/7).
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, Refuse, "cloud metadata (fd00:ec2::254/128)"),
    // RFC 4193.
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Refuse, "unique-local (fc00::/7)"),
    // RFC 4291.
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Refuse, "link-local (fe80::/10)"),
    // RFC 3879: site-local, deprecated.
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Refuse, "site-local (fec0::/10)"),
    // RFC 4291.
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Refuse, "multicast (ff00::/8)"),
];

/// IANA's IPv6 Address Space registry: only 2000::/3 is global unicast.
const GLOBAL_UNICAST: Range = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Refuse, "2000::/3");

/// The name of everything outside [`GLOBAL_UNICAST`] not named before.
const NOT_GLOBAL: &str = "reserved by the IETF (outside 2000::/3)";

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = ip.to_ipv6_mapped().to_bits();
    V4_RANGES.iter().find(|r| r.contains(bits)).map(|r| r.name)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = ip.to_bits();
    let Some(range) = V6_RANGES.iter().find(|r| r.contains(bits)) else {
        return (!GLOBAL_UNICAST.contains(bits)).then_some(NOT_GLOBAL);
    };
    let embedded = match range.rule {
        Refuse => return Some(range.name),
        EmbeddedLow => bits,
        Embedded6to4 => bits >> 80,
    };
    // The low 32 bits, on purpose.
    let v4 = Ipv4Addr::from_bits((embedded & 0xffff_ffff) as u32);
    v4_range(v4).map(|_| range.name)
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

/// Why a destination is refused, as its caller is told: the same words
/// whether the host resolves only to refused addresses or not at all, so the
/// answer is no oracle for internal DNS names. The operator's log has the
/// detail.
pub(crate) const NOT_PUBLIC: &str = "it must resolve to public addresses \
     (internal, reserved and cloud metadata addresses are refused)";

/// A destination host resolved to no allowed address: none at all, or only
/// refused ones. Its message is [`NOT_PUBLIC`], whatever the cause.
#[derive(Debug)]
pub(crate) struct DestinationRefused;

impl fmt::Display for DestinationRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination refused: {NOT_PUBLIC}")
    }
}

impl std::error::Error for DestinationRefused {}

/// Logs, for the operator, why a literal address is refused.
pub(crate) fn log_refused_literal(why: &ForbiddenAddress) {
    tracing::warn!(ip = %why.ip, range = why.range, "SSRF guard: destination address refused");
}

/// Resolves `host:port` and keeps only the allowed addresses; logs what was
/// refused (the caller gets [`DestinationRefused`] only).
pub(crate) async fn resolve_allowed(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, DestinationRefused> {
    let addrs = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs,
        Err(error) => {
            tracing::warn!(host, %error, "SSRF guard: destination host does not resolve");
            return Err(DestinationRefused);
        }
    };
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for addr in addrs {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(why) => refused.push(format!("{} in {}", why.ip, why.range)),
        }
    }
    let refused = refused.join(", ");
    if allowed.is_empty() {
        if refused.is_empty() {
            tracing::warn!(host, "SSRF guard: destination host resolves to no address");
        } else {
            tracing::warn!(
                host,
                refused,
                "SSRF guard: every address of the destination host is refused"
            );
        }
        return Err(DestinationRefused);
    }
    if !refused.is_empty() {
        tracing::info!(
            host,
            refused,
            "SSRF guard: refused addresses of the destination host dropped"
        );
    }
    Ok(allowed)
}

/// Checks a URL: http(s), a host, no credentials, and an address the
/// SSRF guard allows (resolving host names now; each connection is
/// checked again).
pub(super) async fn check_url(policy: &AddressPolicy, url: &str) -> Result<(), SenderError> {
    let invalid = |reason: String| SenderError::InvalidDestination { reason };
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the URL scheme must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "the URL must not carry credentials (user:password@); they would be sent in clear to every attempt's logs".into(),
        ));
    }
    let Some(host) = parsed.host_str() else {
        return Err(invalid("the URL has no host".into()));
    };
    let refused = || SenderError::ForbiddenAddress {
        url: format!("{}://{}", parsed.scheme(), host),
    };
    if let Some(ip) = literal_ip(&parsed) {
        return policy.check(ip).map_err(|why| {
            log_refused_literal(&why);
            refused()
        });
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    match resolve_allowed(policy, host, port).await {
        Ok(_) => Ok(()),
        Err(DestinationRefused) => Err(refused()),
    }
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

    /// One row per refused range: its prefix as named, an address inside,
    /// and a public address next to it (none where every neighbour is
    /// refused too).
    #[rustfmt::skip]
    const ROWS: &[(&str, &str, Option<&str>)] = &[
        ("0.0.0.0/8", "0.1.2.3", Some("1.0.0.1")),
        ("10.0.0.0/8", "10.255.0.1", Some("11.0.0.1")),
        ("100.100.100.200/32", "100.100.100.200", None),
        ("100.64.0.0/10", "100.127.255.255", Some("100.128.0.0")),
        ("127.0.0.0/8", "127.255.255.254", Some("128.0.0.1")),
        ("169.254.169.254/32", "169.254.169.254", None),
        ("169.254.0.0/16", "169.254.0.1", Some("169.255.0.1")),
        ("168.63.129.16/32", "168.63.129.16", Some("168.63.129.17")),
        ("172.16.0.0/12", "172.31.255.255", Some("172.32.0.1")),
        ("192.0.0.0/24", "192.0.0.9", Some("192.0.1.1")),
        ("192.0.2.0/24", "192.0.2.1", Some("192.0.3.1")),
        ("192.31.196.0/24", "192.31.196.1", Some("192.31.197.1")),
        ("192.52.193.0/24", "192.52.193.1", Some("192.52.194.1")),
        ("192.88.99.0/24", "192.88.99.2", Some("192.88.100.1")),
        ("192.168.0.0/16", "192.168.1.1", Some("192.169.0.1")),
        ("192.175.48.0/24", "192.175.48.1", Some("192.175.49.1")),
        ("198.18.0.0/15", "198.19.255.255", Some("198.20.0.1")),
        ("198.51.100.0/24", "198.51.100.1", Some("198.51.101.1")),
        ("203.0.113.0/24", "203.0.113.9", Some("203.0.114.1")),
        ("224.0.0.0/4", "239.255.255.250", Some("223.255.255.254")),
        ("255.255.255.255/32", "255.255.255.255", None),
        ("240.0.0.0/4", "240.0.0.1", None),
        ("::/128", "::", None),
        ("::1/128", "::1", None),
        ("::ffff:0:0/96", "::ffff:10.0.0.1", Some("::ffff:8.8.8.8")),
        ("::ffff:0:0:0/96", "::ffff:0:808:808", None),
        ("::/96", "::8.8.8.8", None),
        ("64:ff9b::/96", "64:ff9b::a9fe:a9fe", Some("64:ff9b::808:808")),
        ("64:ff9b:1::/48", "64:ff9b:1::808:808", None),
        ("100::/64", "100::1", None),
        ("100:0:0:1::/64", "100:0:0:1::1", None),
        ("2001::/32", "2001:0:4136:e378::1", Some("2001:200::1")),
        ("2001:2::/48", "2001:2::1", Some("2001:200::1")),
        ("2001:3::/32", "2001:3::1", Some("2001:200::1")),
        ("2001:4:112::/48", "2001:4:112::1", Some("2001:200::1")),
        ("2001:10::/28", "2001:10::1", Some("2001:200::1")),
        ("2001:20::/28", "2001:2f::1", Some("2001:200::1")),
        ("2001:30::/28", "2001:30::1", Some("2001:200::1")),
        ("2001::/23", "2001:1::1", Some("2001:200::1")),
        ("2001:db8::/32", "2001:db8::1", Some("2001:db9::1")),
        ("2002::/16", "2002:7f00:1::", Some("2002:808:808::")),
        ("2620:4f:8000::/48", "2620:4f:8000::1", Some("2620:4f:8001::1")),
        ("3fff::/20", "3fff:fff::1", Some("3fff:1000::1")),
        ("5f00::/16", "5f00::1", None),
        ("fd00:ec2::254/128", "fd00:ec2::254", None),
        ("fc00::/7", "fd12:3456::1", None),
        ("fe80::/10", "fe80::1", None),
        ("fec0::/10", "fec0::1", None),
        ("ff00::/8", "ff02::1", None),
        ("outside 2000::/3", "4000::1", Some("3fff:ffff::1")),
    ];

    #[test]
    fn every_refused_range_refuses_inside_and_allows_its_public_neighbour() {
        let policy = AddressPolicy::new();
        for &(prefix, inside, neighbour) in ROWS {
            let err = policy.check(inside.parse().unwrap()).unwrap_err();
            assert!(
                err.range.contains(&format!("({prefix})")),
                "{inside} should be refused as {prefix}, not {}",
                err.range
            );
            if let Some(outside) = neighbour {
                assert_eq!(
                    policy.check(outside.parse().unwrap()),
                    Ok(()),
                    "{outside}, next to {prefix}"
                );
            }
        }
        // One row per range of the tables.
        let names = V4_RANGES
            .iter()
            .map(|r| r.name)
            .chain(V6_RANGES.iter().map(|r| r.name))
            .chain([NOT_GLOBAL]);
        for name in names {
            assert_eq!(
                ROWS.iter()
                    .filter(|(p, ..)| name.contains(&format!("({p})")))
                    .count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "172.15.255.255",
            "198.17.255.255",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(
                AddressPolicy::new().check(ip.parse().unwrap()).is_ok(),
                "{ip} should pass"
            );
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
        assert_eq!(err.range, "cloud metadata (169.254.169.254/32)");
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
