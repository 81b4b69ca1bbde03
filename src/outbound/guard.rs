//! Where an outbound fetch may go: the URL rules and the address classes
//! Civitas refuses, and the DNS resolver that applies them to every address
//! a name resolves to.
//!
//! The resolver hands reqwest only addresses it checked, and reqwest
//! connects to exactly those, so the address checked is the address
//! connected to (no second lookup an attacker's DNS could answer
//! differently). An IP literal in a URL never reaches a resolver:
//! [`Policy::check_url`] checks it before the request.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::config::is_loopback_host;

/// An address class Civitas never connects to for a URL someone else
/// chose. The ranges are listed in `docs/designs/0006-outbound-fetches.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (RFC 4193),
    /// fec0::/10 (deprecated site-local), 64:ff9b:1::/48 (local NAT64).
    Private,
    /// 169.254/16 (cloud metadata services live here), fe80::/10.
    LinkLocal,
    /// 100.64/10, shared address space of carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8 ("this network": Linux connects 0.0.0.0 to this machine), ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24 (RFC 5737), 2001:db8::/32,
    /// 3fff::/20 (RFC 9637).
    Documentation,
    /// 198.18/15 (RFC 2544), 2001:2::/48 (RFC 5180).
    Benchmarking,
    /// Every other special-purpose range: 192.0.0/24, 192.88.99/24, 240/4;
    /// IPv4-compatible ::/96, 2001::/23, 6to4 2002::/16, and everything
    /// outside global unicast 2000::/3.
    Reserved,
}

impl AddressClass {
    /// Its name, as in messages and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedCgnat => "shared (CGNAT)",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of `ip` that Civitas refuses, or `None` for a public address.
/// An IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) address
/// is judged by the IPv4 address it carries.
#[must_use]
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::{
        Benchmarking, Broadcast, Documentation, LinkLocal, Loopback, Multicast, Private, Reserved,
        SharedCgnat, Unspecified,
    };
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => Broadcast,
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedCgnat,
        (169, 254, _) => LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 0, 0) | (192, 88, 99) | (240..=255, ..) => Reserved,
        (224..=239, ..) => Multicast,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::{
        Benchmarking, Documentation, LinkLocal, Loopback, Multicast, Private, Reserved, Unspecified,
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(match s {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_loopback() => Loopback,
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        [0x64, 0xff9b, 1, ..] => Private,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x3fff, x, ..] if x < 0x1000 => Documentation,
        [0x2001, 0x0002, 0, ..] => Benchmarking,
        [0x2001, x, ..] if x < 0x0200 => Reserved,
        [0x2002, ..] => Reserved,
        [x, ..] if x & 0xfe00 == 0xfc00 => Private,
        [x, ..] if x & 0xffc0 == 0xfe80 => LinkLocal,
        [x, ..] if x & 0xffc0 == 0xfec0 => Private,
        [x, ..] if x & 0xff00 == 0xff00 => Multicast,
        [x, ..] if x & 0xe000 != 0x2000 => Reserved,
        _ => return None,
    })
}

/// Why a URL is not one Civitas fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Not an absolute URL with a host.
    NotAUrl,
    /// Not `https` (`http` only to a loopback host, in development).
    NotHttps,
    /// User information (`user:password@`) in the URL.
    UserInfo,
    /// The host is, or resolves to, an address of a refused class.
    Address(AddressClass),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAUrl => f.write_str("is not an absolute URL with a host"),
            Self::NotHttps => f.write_str(
                "must use https (http only to a loopback host, while Civitas's own issuer is localhost)",
            ),
            Self::UserInfo => f.write_str("must not hold user information"),
            Self::Address(class) => write!(
                f,
                "names a {class} address; Civitas fetches only from public addresses"
            ),
        }
    }
}

/// What an instance may connect to. Loopback (and `http` to a loopback
/// host) is allowed only in development: while Civitas's own issuer is
/// `localhost`, where the relying parties, key sets and the eID simulator
/// of a developer or a test run on 127.0.0.1. Every other refused class is
/// refused always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    development: bool,
}

impl Policy {
    /// A production instance: public addresses over `https` only.
    pub const PRODUCTION: Self = Self { development: false };
    /// A development instance: loopback allowed too, and `http` to it.
    pub const DEVELOPMENT: Self = Self { development: true };

    /// The policy of an instance whose own issuer is `issuer`: development
    /// exactly when the issuer's host is `localhost` (the configuration
    /// allows no other loopback issuer).
    #[must_use]
    pub fn for_issuer(issuer: &str) -> Self {
        let development = Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false);
        Self { development }
    }

    /// May this instance connect to loopback addresses?
    #[must_use]
    pub fn allows_loopback(self) -> bool {
        self.development
    }

    /// May this instance connect to `ip`?
    ///
    /// # Errors
    /// The refused class `ip` is of.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            None => Ok(()),
            Some(AddressClass::Loopback) if self.development => Ok(()),
            Some(class) => Err(class),
        }
    }

    /// May this instance fetch `url`? Checks the scheme, and an IP literal
    /// or a `localhost` name as host; a name's addresses are checked when
    /// it is resolved ([`GuardedResolver`]).
    ///
    /// # Errors
    /// Why not.
    pub fn check_url(self, url: &Url) -> Result<(), Refusal> {
        let host = url.host().ok_or(Refusal::NotAUrl)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::UserInfo);
        }
        let class = match &host {
            Host::Ipv4(ip) => classify(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => classify(IpAddr::V6(*ip)),
            Host::Domain(name) if is_localhost_name(name) => Some(AddressClass::Loopback),
            Host::Domain(_) => None,
        };
        match url.scheme() {
            "https" => {}
            "http" if self.development && class == Some(AddressClass::Loopback) => {}
            _ => return Err(Refusal::NotHttps),
        }
        match class {
            Some(AddressClass::Loopback) if self.development => Ok(()),
            Some(class) => Err(Refusal::Address(class)),
            None => Ok(()),
        }
    }
}

/// `localhost` and the names under it (RFC 6761 §6.3).
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A name resolved to an address of a refused class (carried through
/// reqwest's error chain to [`super::Reason`]).
#[derive(Debug, thiserror::Error)]
#[error("the name resolves to a {0} address")]
pub(super) struct RefusedAddress(pub(super) AddressClass);

/// A name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("the name did not resolve")]
pub(super) struct NotResolved;

/// The addresses `resolved` if every one is allowed. A name with any refused
/// address is refused whole: a public host has no reason to list an
/// internal one, and a mixed answer is how DNS rebinding begins.
///
/// # Errors
/// The first refused class.
pub fn check_resolved(policy: Policy, resolved: &[SocketAddr]) -> Result<(), AddressClass> {
    resolved
        .iter()
        .try_for_each(|addr| policy.check_ip(addr.ip()))
}

/// The resolver of the fetcher's client: the system resolver, then
/// [`check_resolved`]; reqwest connects only to what it returns.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: Policy,
}

impl GuardedResolver {
    /// A resolver applying `policy`.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| NotResolved)?
                .collect();
            if resolved.is_empty() {
                return Err(NotResolved.into());
            }
            check_resolved(policy, &resolved).map_err(RefusedAddress)?;
            let addrs: reqwest::dns::Addrs = Box::new(resolved.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
