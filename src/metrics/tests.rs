use std::time::Duration;

use super::labels::level_label;
use super::*;
use crate::ephemeral::EphemeralError;
use crate::store::StoreError;

const POOL: PoolUsage = PoolUsage {
    size: 3,
    idle: 2,
    max: 10,
};

/// The value of the sample `series` (name and labels, exactly as rendered).
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[test]
fn indexes_follow_the_order_of_all() {
    for (i, g) in TokenGrant::ALL.into_iter().enumerate() {
        assert_eq!(g as usize, i);
    }
    for (i, m) in SignInMethod::ALL.into_iter().enumerate() {
        assert_eq!(m as usize, i);
    }
    for (i, c) in PasskeyCeremony::ALL.into_iter().enumerate() {
        assert_eq!(c as usize, i);
    }
    for (i, r) in PasskeyFailure::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i);
    }
    for (i, r) in EidFailure::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i);
    }
    for (i, k) in FailureKind::ALL.into_iter().enumerate() {
        assert_eq!(k as usize, i);
    }
    for (i, l) in Level::ALL.into_iter().enumerate() {
        assert_eq!(l as usize, i);
    }
    assert_eq!(Dependency::Database as usize, 0);
    assert_eq!(Dependency::Cache as usize, 1);
}

#[test]
fn every_family_has_help_and_type_and_every_sample_a_family() {
    let m = Metrics::new();
    m.endpoint(Some("/token"))
        .record(HttpMethod::Post, 200, Duration::from_millis(3));
    let text = m.render(POOL);
    let mut families = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            let ty = lines.next().unwrap();
            assert!(ty.starts_with(&format!("# TYPE {name} ")), "{ty}");
            families.push(name.to_owned());
        } else {
            let family = families.last().expect("a sample after its family");
            assert!(line.starts_with(family.as_str()), "{line} outside {family}");
            let number = line.rsplit(' ').next().unwrap();
            assert!(number.parse::<f64>().is_ok(), "{line}");
        }
    }
    let mut unique = families.clone();
    unique.dedup();
    assert_eq!(unique, families, "each family once");
    assert!(text.ends_with('\n'));
}

#[test]
fn counters_are_rendered_with_their_labels() {
    let m = Metrics::new();
    let token = m.endpoint(Some("/token"));
    token.record(HttpMethod::Post, 200, Duration::from_millis(3));
    token.record(HttpMethod::Post, 200, Duration::from_millis(70));
    token.record(HttpMethod::Post, 401, Duration::from_millis(1));
    m.endpoint(None)
        .record(HttpMethod::Get, 404, Duration::from_micros(10));
    m.token_issued(TokenGrant::ClientCredentials);
    m.token_issued(TokenGrant::ClientCredentials);
    m.token_issued(TokenGrant::TokenExchange);
    m.signed_in(SignInMethod::Passkey, Some(Level::Substantial));
    m.signed_in(SignInMethod::RecoveryCode, None);
    m.passkey_failed(PasskeyCeremony::SignIn, PasskeyFailure::Expired);
    m.eid_failed(EidFailure::BadState);
    m.dependency_failed(DependencyError {
        dependency: Dependency::Cache,
        kind: FailureKind::Unavailable,
    });
    let text = m.render(POOL);
    let v = |series: &str| value(&text, series);
    assert_eq!(
        v(r#"civitas_http_requests_total{endpoint="/token",method="POST",status="200"}"#)
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        v(r#"civitas_http_requests_total{endpoint="/token",method="POST",status="401"}"#)
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        v(r#"civitas_http_requests_total{endpoint="unmatched",method="GET",status="404"}"#)
            .as_deref(),
        Some("1")
    );
    let bucket = |le: &str| {
        v(&format!(
            r#"civitas_http_request_duration_seconds_bucket{{endpoint="/token",le="{le}"}}"#
        ))
    };
    assert_eq!(bucket("0.001").as_deref(), Some("1"));
    assert_eq!(bucket("0.005").as_deref(), Some("2"), "cumulative");
    assert_eq!(bucket("0.1").as_deref(), Some("3"));
    assert_eq!(bucket("+Inf").as_deref(), Some("3"));
    assert_eq!(
        v(r#"civitas_http_request_duration_seconds_count{endpoint="/token"}"#).as_deref(),
        Some("3")
    );
    let sum: f64 = v(r#"civitas_http_request_duration_seconds_sum{endpoint="/token"}"#)
        .unwrap()
        .parse()
        .unwrap();
    assert!((sum - 0.074).abs() < 1e-9, "{sum}");
    for (series, expected) in [
        (
            r#"civitas_tokens_issued_total{grant_type="client_credentials"}"#,
            "2",
        ),
        (
            r#"civitas_tokens_issued_total{grant_type="token-exchange"}"#,
            "1",
        ),
        (
            r#"civitas_tokens_issued_total{grant_type="authorization_code"}"#,
            "0",
        ),
        (
            r#"civitas_sign_ins_total{method="passkey",level="substantial"}"#,
            "1",
        ),
        (
            r#"civitas_sign_ins_total{method="passkey",level="high"}"#,
            "0",
        ),
        (
            r#"civitas_sign_ins_total{method="recovery_code",level="none"}"#,
            "1",
        ),
        (
            r#"civitas_ceremony_failures_total{ceremony="passkey_signin",reason="expired"}"#,
            "1",
        ),
        (
            r#"civitas_ceremony_failures_total{ceremony="passkey_registration",reason="expired"}"#,
            "0",
        ),
        (
            r#"civitas_ceremony_failures_total{ceremony="eid",reason="bad_state"}"#,
            "1",
        ),
        (r#"civitas_cache_errors_total{kind="unavailable"}"#, "1"),
        (r#"civitas_database_errors_total{kind="unavailable"}"#, "0"),
        ("civitas_db_pool_connections", "3"),
        ("civitas_db_pool_idle_connections", "2"),
        ("civitas_db_pool_max_connections", "10"),
        (
            &format!(
                r#"civitas_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
            "1",
        ),
    ] {
        assert_eq!(v(series).as_deref(), Some(expected), "{series}\n{text}");
    }
    // A recovery session has no level, a passkey session always one.
    assert_eq!(
        v(r#"civitas_sign_ins_total{method="passkey",level="none"}"#),
        None
    );
    assert_eq!(
        v(r#"civitas_sign_ins_total{method="eid_recovery",level="low"}"#),
        None
    );
}

#[test]
fn causes_are_classified_by_the_error_they_came_from() {
    let db = |e: StoreError| DependencyError::classify(&e.to_string(), FailureKind::Other);
    let database = Some(DependencyError {
        dependency: Dependency::Database,
        kind: FailureKind::Other,
    });
    assert_eq!(db(StoreError::from(sqlx::Error::RowNotFound)), database);
    assert_eq!(db(StoreError::Corrupt("x".into())), database);
    let cache = |e: EphemeralError, kind| DependencyError::classify(&e.to_string(), kind);
    assert_eq!(
        cache(
            EphemeralError::Unavailable("refused".into()),
            FailureKind::Unavailable
        ),
        Some(DependencyError {
            dependency: Dependency::Cache,
            kind: FailureKind::Unavailable,
        })
    );
    assert_eq!(
        cache(EphemeralError::ZeroTtl, FailureKind::Other).map(|d| d.dependency),
        Some(Dependency::Cache)
    );
    // As the protocol's error type carries it.
    let oauth = crate::oidc::OAuthError::from(StoreError::from(sqlx::Error::PoolTimedOut));
    let crate::oidc::OAuthError::Unavailable(cause) = oauth else {
        panic!("a pool timeout is unavailability");
    };
    assert_eq!(
        DependencyError::classify(&format!("unavailable: {cause}"), FailureKind::Unavailable)
            .map(|d| d.dependency),
        Some(Dependency::Database)
    );
    assert_eq!(
        DependencyError::classify("template: missing", FailureKind::Other),
        None
    );
}

#[test]
fn label_values_are_bounded() {
    assert_eq!(HttpMethod::parse("BREW"), HttpMethod::Other);
    assert_eq!(HttpMethod::parse("get"), HttpMethod::Other);
    assert_eq!(HttpMethod::parse("GET").label(), "GET");
    assert_eq!(status_class(204), Some("2xx"));
    assert_eq!(status_class(503), Some("5xx"));
    assert_eq!(status_class(101), None);
    assert_eq!(
        TokenGrant::from_grant_type("urn:ietf:params:oauth:grant-type:token-exchange"),
        Some(TokenGrant::TokenExchange)
    );
    assert_eq!(TokenGrant::from_grant_type("password"), None);
    assert_eq!(level_label(None), "none");
    assert_eq!(level_label(Some(Level::Substantial)), "substantial");
}
