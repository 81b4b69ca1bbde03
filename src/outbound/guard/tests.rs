use std::net::IpAddr;

use reqwest::dns::Resolve as _;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn each_refused_address_class_is_refused_in_production() {
    use AddressClass::*;
    for (addr, class) in [
        ("127.0.0.1", Loopback),
        ("127.255.0.9", Loopback),
        ("::1", Loopback),
        ("::ffff:127.0.0.1", Loopback),
        ("10.0.0.7", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.10", Private),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fec0::1", Private),
        ("64:ff9b:1::a00:7", Private),
        ("::ffff:10.0.0.7", Private),
        ("64:ff9b::10.0.0.7", Private),
        ("169.254.169.254", LinkLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("::ffff:169.254.169.254", LinkLocal),
        ("100.64.0.1", SharedCgnat),
        ("100.127.255.254", SharedCgnat),
        ("224.0.0.251", Multicast),
        ("239.255.255.250", Multicast),
        ("ff02::1", Multicast),
        ("ff0e::1", Multicast),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("::", Unspecified),
        ("255.255.255.255", Broadcast),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.1", Benchmarking),
        ("2001:2::1", Benchmarking),
        ("192.0.0.8", Reserved),
        ("192.88.99.1", Reserved),
        ("240.0.0.1", Reserved),
        ("::10.0.0.7", Reserved),
        ("100::1", Reserved),
        ("2001::1", Reserved),
        ("2002:a00:7::1", Reserved),
        ("4000::1", Reserved),
    ] {
        assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        assert_eq!(Policy::PRODUCTION.check_ip(ip(addr)), Err(class), "{addr}");
    }
}

#[test]
fn public_addresses_are_allowed() {
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "172.32.0.1",
        "100.128.0.1",
        "169.255.0.1",
        "198.20.0.1",
        "223.255.255.1",
        "2a00:1450:4001:82b::200e",
        "2606:4700::6810:84e5",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "3fff:1000::1",
    ] {
        assert_eq!(classify(ip(addr)), None, "{addr}");
        assert_eq!(Policy::PRODUCTION.check_ip(ip(addr)), Ok(()), "{addr}");
    }
}

#[test]
fn development_allows_loopback_and_nothing_else_more() {
    let dev = Policy::DEVELOPMENT;
    for addr in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(dev.check_ip(ip(addr)), Ok(()), "{addr}");
    }
    for addr in ["10.0.0.7", "169.254.169.254", "fd00::1", "0.0.0.0", "::"] {
        assert!(dev.check_ip(ip(addr)).is_err(), "{addr}");
    }
}

#[test]
fn the_policy_follows_the_issuer() {
    assert_eq!(
        Policy::for_issuer("http://localhost:8080"),
        Policy::DEVELOPMENT
    );
    assert_eq!(Policy::for_issuer("https://localhost"), Policy::DEVELOPMENT);
    assert_eq!(
        Policy::for_issuer("https://id.example.gov"),
        Policy::PRODUCTION
    );
    assert_eq!(
        Policy::for_issuer("https://localhost.example.gov"),
        Policy::PRODUCTION
    );
    assert_eq!(Policy::for_issuer("not a url"), Policy::PRODUCTION);
}

#[test]
fn production_urls_are_https_to_a_name_or_a_public_address() {
    let p = Policy::PRODUCTION;
    assert_eq!(p.check_url(&url("https://rp.example/jwks")), Ok(()));
    assert_eq!(p.check_url(&url("https://8.8.8.8/jwks")), Ok(()));
    assert_eq!(p.check_url(&url("https://[2001:4860::1]:8443/k")), Ok(()));
    for (u, refusal) in [
        ("http://rp.example/jwks", Refusal::NotHttps),
        ("ftp://rp.example/jwks", Refusal::NotHttps),
        ("http://127.0.0.1/jwks", Refusal::NotHttps),
        ("https://user:pw@rp.example/jwks", Refusal::UserInfo),
        (
            "https://127.0.0.1/jwks",
            Refusal::Address(AddressClass::Loopback),
        ),
        (
            "https://localhost:8443/jwks",
            Refusal::Address(AddressClass::Loopback),
        ),
        (
            "https://keys.localhost/jwks",
            Refusal::Address(AddressClass::Loopback),
        ),
        // The URL parser reads these as 127.0.0.1 and 10.0.0.7.
        (
            "https://2130706433/jwks",
            Refusal::Address(AddressClass::Loopback),
        ),
        (
            "https://0x7f.1/jwks",
            Refusal::Address(AddressClass::Loopback),
        ),
        (
            "https://012.0.0.7/jwks",
            Refusal::Address(AddressClass::Private),
        ),
        (
            "https://[::ffff:a00:7]/jwks",
            Refusal::Address(AddressClass::Private),
        ),
        (
            "https://169.254.169.254/latest/meta-data/",
            Refusal::Address(AddressClass::LinkLocal),
        ),
        ("data:text/plain,x", Refusal::NotAUrl),
    ] {
        assert_eq!(p.check_url(&url(u)), Err(refusal), "{u}");
    }
}

#[test]
fn development_allows_http_to_loopback_only() {
    let d = Policy::DEVELOPMENT;
    for u in [
        "http://127.0.0.1:9000/jwks",
        "http://localhost:9000/jwks",
        "http://[::1]/jwks",
        "https://127.0.0.1/jwks",
        "https://rp.example/jwks",
    ] {
        assert_eq!(d.check_url(&url(u)), Ok(()), "{u}");
    }
    assert_eq!(
        d.check_url(&url("http://rp.example/jwks")),
        Err(Refusal::NotHttps)
    );
    assert_eq!(
        d.check_url(&url("http://10.0.0.7/jwks")),
        Err(Refusal::NotHttps)
    );
    assert_eq!(
        d.check_url(&url("https://10.0.0.7/jwks")),
        Err(Refusal::Address(AddressClass::Private))
    );
}

#[test]
fn a_resolved_name_is_refused_whole_if_any_address_is_refused() {
    let addrs = |list: &[&str]| -> Vec<SocketAddr> {
        list.iter().map(|a| SocketAddr::new(ip(a), 443)).collect()
    };
    let p = Policy::PRODUCTION;
    assert_eq!(
        check_resolved(p, &addrs(&["8.8.8.8", "2001:4860::1"])),
        Ok(())
    );
    assert_eq!(
        check_resolved(p, &addrs(&["8.8.8.8", "10.0.0.7"])),
        Err(AddressClass::Private)
    );
    assert_eq!(
        check_resolved(p, &addrs(&["::1", "127.0.0.1"])),
        Err(AddressClass::Loopback)
    );
    assert_eq!(
        check_resolved(Policy::DEVELOPMENT, &addrs(&["::1", "127.0.0.1"])),
        Ok(())
    );
}

#[tokio::test]
async fn the_resolver_refuses_localhost_in_production_and_returns_it_in_development() {
    let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
    let refused = match GuardedResolver::new(Policy::PRODUCTION)
        .resolve(name("localhost"))
        .await
    {
        Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(e) => e,
    };
    assert_eq!(
        refused.downcast_ref::<RefusedAddress>().map(|r| r.0),
        Some(AddressClass::Loopback)
    );
    let resolved: Vec<SocketAddr> = GuardedResolver::new(Policy::DEVELOPMENT)
        .resolve(name("localhost"))
        .await
        .unwrap()
        .collect();
    assert!(!resolved.is_empty());
    assert!(
        resolved.iter().all(|a| a.ip().is_loopback()),
        "{resolved:?}"
    );
    let unknown = GuardedResolver::new(Policy::DEVELOPMENT)
        .resolve(name("no-such-host.invalid"))
        .await;
    assert!(unknown.is_err_and(|e| e.downcast_ref::<NotResolved>().is_some()));
}
