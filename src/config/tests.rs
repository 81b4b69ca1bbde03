//! Settings: layering, defaults, and the refusal of bad values.

use super::*;

#[test]
fn defaults_are_the_embedded_setup() {
    let s = Settings::from_toml("").unwrap();
    assert_eq!(s.issuer, "http://localhost:8080");
    assert_eq!(s.database_url, "sqlite:data/civitas.db");
    assert_eq!(s.cache_url, "memory");
    assert_eq!(s.keys_dir, PathBuf::from("keys"));
    assert!(s.registration_token.is_none());
    assert_eq!(s.tokens.access_token_ttl, Duration::from_secs(300));
}

#[test]
fn unknown_keys_are_an_error_that_names_the_key() {
    let err = Settings::from_toml("isuer = \"https://id.example\"").unwrap_err();
    assert!(err.to_string().contains("isuer"), "{err}");
    let err = Settings::from_toml("[tokens]\naccess_ttl = 5").unwrap_err();
    assert!(err.to_string().contains("access_ttl"), "{err}");
}

#[test]
fn durations_accept_units() {
    let s = Settings::from_toml("[tokens]\naccess_token_ttl = \"10m\"").unwrap();
    assert_eq!(s.tokens.access_token_ttl, Duration::from_secs(600));
}

#[test]
fn invalid_values_are_refused_with_their_name() {
    for (toml, key) in [
        ("issuer = \"http://id.example.gov\"", "issuer"),
        ("issuer = \"https://id.example.gov/\"", "issuer"),
        ("issuer = \"http://127.0.0.1:8080\"", "issuer"),
        ("database_url = \"mysql://x\"", "database_url"),
        ("cache_url = \"memcached://x\"", "cache_url"),
        ("listen = \"nowhere\"", "listen"),
        (
            "[tokens]\nauthorization_code_ttl = 600",
            "authorization_code_ttl",
        ),
        ("registration_token = \"short\"", "registration_token"),
        ("[limits]\nsignin_per_minute = 0", "limits"),
        ("drain_delay = \"10m\"", "drain_delay"),
        ("[audit]\nretention = \"1h\"", "audit.retention"),
        (
            "[audit]\ncheckpoint_interval = \"0s\"",
            "audit.checkpoint_interval",
        ),
        ("[metrics]\nlisten = \"nowhere\"", "metrics.listen"),
        (
            "listen = \"127.0.0.1:9100\"\n[metrics]\nlisten = \"127.0.0.1:9100\"",
            "metrics.listen",
        ),
        ("[log]\nformat = \"xml\"", "xml"),
        (
            "issuer = \"https://id.example.gov\"\n[[eid.connectors]]\nid = \"sim\"\nname = \"Test\"\n\
             issuer = \"http://localhost:9091\"\nclient_id = \"c\"\nscheme = \"s\"\ncountry = \"EE\"",
            "eid.connectors.issuer",
        ),
        (
            "[limits]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "trusted_proxies",
        ),
    ] {
        let err = Settings::from_toml(toml).unwrap_err();
        assert!(err.to_string().contains(key), "{toml}: {err}");
    }
}

#[test]
fn trusted_proxies_match_addresses_and_blocks() {
    let s = Settings::from_toml(
        "[limits]\ntrusted_proxies = [\"10.1.0.0/16\", \"192.0.2.7\", \"2001:db8::/32\"]",
    )
    .unwrap();
    let trusted = |ip: &str| s.limits.is_trusted_proxy(ip.parse().unwrap());
    assert!(trusted("10.1.200.3"));
    assert!(!trusted("10.2.0.1"));
    assert!(trusted("192.0.2.7"));
    assert!(!trusted("192.0.2.8"));
    assert!(trusted("::ffff:192.0.2.7"), "IPv4-mapped peers");
    assert!(trusted("2001:db8:1::5"));
    assert!(!trusted("2001:db9::1"));
    assert!(
        !Settings::from_toml("")
            .unwrap()
            .limits
            .is_trusted_proxy("127.0.0.1".parse().unwrap())
    );
}

#[test]
fn metrics_listen_and_log_format_have_defaults_and_take_values() {
    let s = Settings::from_toml("").unwrap();
    assert_eq!(s.metrics.listen, "127.0.0.1:9090");
    assert_eq!(s.log.format, LogFormat::Text);
    let s = Settings::from_toml("[metrics]\nlisten = \"0.0.0.0:9102\"\n[log]\nformat = \"json\"")
        .unwrap();
    assert_eq!(s.metrics_addr().unwrap().port(), 9102);
    assert_eq!(s.log.format, LogFormat::Json);
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closures return its Error
fn the_environment_names_the_metrics_listener_and_the_log_format() {
    // Only this test's variables: the caller's environment may hold
    // other CIVITAS_* variables (CIVITAS_TEST_POSTGRES).
    let load = || {
        Settings::from_figment(
            Figment::from(Serialized::defaults(DEFAULTS()))
                .merge(env_layer().filter(|k| k.starts_with("metrics") || k.starts_with("log"))),
        )
    };
    figment::Jail::expect_with(|jail| {
        jail.set_env("CIVITAS_METRICS_LISTEN", "127.0.0.1:9109");
        jail.set_env("CIVITAS_LOG__FORMAT", "json");
        let s = load().unwrap();
        assert_eq!(s.metrics.listen, "127.0.0.1:9109");
        assert_eq!(s.log.format, LogFormat::Json);
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        // The nested form names the same setting.
        jail.set_env("CIVITAS_METRICS__LISTEN", "127.0.0.1:9110");
        assert_eq!(load().unwrap().metrics.listen, "127.0.0.1:9110");
        // Anything else is still an unknown setting.
        jail.set_env("CIVITAS_METRICS_LISTENER", "127.0.0.1:9111");
        let err = load().unwrap_err();
        assert!(err.to_string().contains("metrics_listener"), "{err}");
        Ok(())
    });
}

#[test]
fn numeric_secrets_stay_strings() {
    let s = Settings::from_toml("registration_token = 12345678901234567").unwrap();
    assert_eq!(s.registration_token.unwrap().expose(), "12345678901234567");
}
