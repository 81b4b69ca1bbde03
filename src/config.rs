//! Typed, layered configuration.
//!
//! Layers, later ones winning: built-in defaults, then an optional TOML file
//! (`civitas.toml`, or the file named by `--config` / `CIVITAS_CONFIG`), then
//! `CIVITAS_*` environment variables (nested keys with `__`, for example
//! `CIVITAS_TOKENS__ACCESS_TOKEN_TTL=5m`). Unknown keys in any layer are an
//! error that names the key: a misspelt setting must never be silently ignored.
//! The reference is `docs/configuration.md`; the names are a stable interface.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

pub use crate::eid::settings::{ConnectorSettings, EidSettings};
use crate::secrets::Secret;

mod audit;
pub use audit::AuditSettings;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or has an unknown or ill-typed key.
    #[error("configuration: {0}")]
    Load(String),
    /// A value is well-typed but not acceptable.
    #[error("configuration: `{key}` {reason}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// All settings of a Civitas instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier: the https URL relying parties see (`CIVITAS_ISSUER`).
    #[serde(deserialize_with = "string_like")]
    pub issuer: String,
    /// Address to listen on, `host:port` (`CIVITAS_LISTEN`).
    #[serde(deserialize_with = "string_like")]
    pub listen: String,
    /// `sqlite:…` or `postgres://…` (`CIVITAS_DATABASE_URL`).
    #[serde(deserialize_with = "string_like")]
    pub database_url: String,
    /// `memory` or `redis://…` (`CIVITAS_CACHE_URL`).
    #[serde(deserialize_with = "string_like")]
    pub cache_url: String,
    /// Prefix of every key Civitas writes to Redis (`CIVITAS_CACHE_PREFIX`).
    #[serde(deserialize_with = "string_like")]
    pub cache_prefix: String,
    /// Directory of the signing keys (`CIVITAS_KEYS_DIR`).
    pub keys_dir: PathBuf,
    /// Initial access token for dynamic client registration
    /// (`CIVITAS_REGISTRATION_TOKEN`); registration is closed without one.
    pub registration_token: Option<Secret>,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Signing-key rotation.
    pub keys: KeySettings,
    /// Database pool.
    pub database: DatabaseSettings,
    /// Browser sessions at Civitas (single sign-on).
    pub sessions: SessionSettings,
    /// Outgoing mail (email verification codes).
    pub mail: MailSettings,
    /// Passkey ceremonies.
    pub passkeys: PasskeySettings,
    /// National eID connectors (identity proofing).
    pub eid: EidSettings,
    /// Abuse limits per client address, and the proxies in front of Civitas.
    pub limits: LimitSettings,
    /// The audit trail: retention and signed checkpoints.
    pub audit: AuditSettings,
    /// The Prometheus metrics listener.
    pub metrics: MetricsSettings,
    /// Log output.
    pub log: LogSettings,
    /// After a stop signal, how long the instance keeps serving while
    /// `/readyz` already answers 503 `draining`, so that a load balancer
    /// polling it stops sending new requests before the listener closes
    /// (`CIVITAS_DRAIN_DELAY`). Default 0: close at once.
    #[serde(with = "duration")]
    pub drain_delay: Duration,
}

/// The Prometheus metrics listener: a listener of its own, never the
/// public one, so that the figures are not served to the internet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of the metrics listener, `host:port` (`CIVITAS_METRICS_LISTEN`).
    /// Default `127.0.0.1:9090`.
    #[serde(deserialize_with = "string_like")]
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (the default) or `json`, one object per line
    /// (`CIVITAS_LOG__FORMAT`). The level stays `RUST_LOG`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Abuse limits per client address, and which peers are trusted proxies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Passkey sign-in ceremonies (begin and finish, each) per client
    /// address and minute. Default 60.
    pub signin_per_minute: u64,
    /// Passkey registrations (account creation, new passkeys) per client
    /// address and minute. Default 20.
    pub register_per_minute: u64,
    /// The load balancers in front of Civitas, as addresses or CIDR blocks
    /// (`10.0.0.0/8`). When the TCP peer is one of them, the client address
    /// is the rightmost `X-Forwarded-For` entry that is not itself a trusted
    /// proxy. Empty (the default): the TCP peer is the client, and
    /// `X-Forwarded-For` is ignored, since anyone could send it.
    pub trusted_proxies: Vec<String>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            signin_per_minute: 60,
            register_per_minute: 20,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LimitSettings {
    /// Is `ip` one of the trusted proxies? (The entries are checked at load.)
    #[must_use]
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|p| parse_cidr(p).is_some_and(|(net, bits)| cidr_contains(net, bits, ip)))
    }
}

/// Parses `addr` or `addr/bits`.
fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = addr.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((addr, bits))
}

fn cidr_contains(net: std::net::IpAddr, bits: u8, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let ip = match (net, ip) {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Passkey ceremonies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySettings {
    /// How long a ceremony (its challenge) stays valid. Default 5 minutes.
    #[serde(with = "duration")]
    pub ceremony_timeout: Duration,
}

impl Default for PasskeySettings {
    fn default() -> Self {
        Self {
            ceremony_timeout: Duration::from_secs(300),
        }
    }
}

/// Outgoing mail.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// Folder of the outbox used when no SMTP relay is set. Default `data/outbox`.
    pub outbox_dir: PathBuf,
    /// `smtp://…` or `smtps://user:password@host` relay (`CIVITAS_MAIL__SMTP_URL`).
    #[serde(skip_serializing)]
    pub smtp_url: Option<Secret>,
    /// Sender address. Default `Civitas <no-reply@localhost>`.
    pub from: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            outbox_dir: PathBuf::from("data/outbox"),
            smtp_url: None,
            from: "Civitas <no-reply@localhost>".into(),
        }
    }
}

/// Browser sessions at Civitas.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// A session unused for this long ends. Default 30 minutes.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// No session outlives this, however active. Default 12 hours.
    #[serde(with = "duration")]
    pub absolute_timeout: Duration,
    /// Idle timeout of a session at level of assurance high. Default 15 minutes.
    #[serde(with = "duration")]
    pub idle_timeout_high: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3_600),
            idle_timeout_high: Duration::from_secs(15 * 60),
        }
    }
}

/// Lifetimes of what Civitas issues.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Access tokens (RFC 9068 JWTs). Default 5 minutes.
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
    /// ID tokens. Default 5 minutes.
    #[serde(with = "duration")]
    pub id_token_ttl: Duration,
    /// Authorization codes; at most 60 seconds. Default 60 seconds.
    #[serde(with = "duration")]
    pub authorization_code_ttl: Duration,
    /// Refresh tokens, idle (sliding) lifetime. Default 1 day.
    #[serde(with = "duration")]
    pub refresh_token_idle_ttl: Duration,
    /// Refresh tokens, absolute lifetime of a token family. Default 30 days.
    #[serde(with = "duration")]
    pub refresh_token_absolute_ttl: Duration,
}

/// Signing-key rotation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// How long a rotated-in key is published before it signs. Default 1 day:
    /// longer than any relying party caches the JWKS.
    #[serde(with = "duration")]
    pub activation_delay: Duration,
    /// How often an instance re-reads the keys directory. Default 30 seconds.
    #[serde(with = "duration")]
    pub reload_interval: Duration,
}

/// Database pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Largest number of pooled connections. Default 10.
    pub max_connections: u32,
    /// How long a request waits for a connection. Default 5 seconds.
    #[serde(with = "duration")]
    pub acquire_timeout: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(300),
            authorization_code_ttl: Duration::from_secs(60),
            refresh_token_idle_ttl: Duration::from_secs(86_400),
            refresh_token_absolute_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            activation_delay: Duration::from_secs(86_400),
            reload_interval: Duration::from_secs(30),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The built-in defaults, as a serialisable layer.
#[derive(Serialize)]
struct Defaults {
    issuer: &'static str,
    listen: &'static str,
    database_url: &'static str,
    cache_url: &'static str,
    cache_prefix: &'static str,
    keys_dir: &'static str,
    tokens: TokenSettings,
    keys: KeySettings,
    database: DatabaseSettings,
    sessions: SessionSettings,
    mail: MailSettings,
    passkeys: PasskeySettings,
    eid: EidSettings,
    limits: LimitSettings,
    audit: AuditSettings,
    metrics: MetricsSettings,
    log: LogSettings,
    #[serde(with = "duration")]
    drain_delay: Duration,
}

const DEFAULTS: fn() -> Defaults = || Defaults {
    issuer: "http://localhost:8080",
    listen: "127.0.0.1:8080",
    database_url: "sqlite:data/civitas.db",
    cache_url: "memory",
    cache_prefix: "civitas",
    keys_dir: "keys",
    tokens: TokenSettings::default(),
    keys: KeySettings::default(),
    database: DatabaseSettings::default(),
    sessions: SessionSettings::default(),
    mail: MailSettings::default(),
    passkeys: PasskeySettings::default(),
    eid: EidSettings::default(),
    limits: LimitSettings::default(),
    audit: AuditSettings::default(),
    metrics: MetricsSettings::default(),
    log: LogSettings::default(),
    drain_delay: Duration::ZERO,
};

/// Environment variables that select the file rather than set a value.
const NOT_SETTINGS: &[&str] = &["CONFIG"];

/// Environment variables (after `CIVITAS_`) named otherwise than the `__`
/// rule gives, and the key each sets. The `__` form works too.
const ENV_ALIASES: &[(&str, &str)] = &[("METRICS_LISTEN", "metrics.listen")];

/// The environment layer: `CIVITAS_*`, `__` for nesting, plus the aliases.
fn env_layer() -> Env {
    Env::prefixed("CIVITAS_")
        .filter(|k| {
            !NOT_SETTINGS
                .iter()
                .any(|n| k.as_str().eq_ignore_ascii_case(n))
        })
        .map(|k| {
            ENV_ALIASES
                .iter()
                .find(|(alias, _)| k.as_str().eq_ignore_ascii_case(alias))
                .map_or_else(|| k.as_str().into(), |(_, key)| (*key).into())
        })
        .split("__")
}

impl Settings {
    /// Loads defaults, then `file` if it exists (it must exist if `required`),
    /// then the process environment.
    ///
    /// # Errors
    /// An unreadable file, an unknown or ill-typed key, or an invalid value.
    pub fn load(file: &Path, required: bool) -> Result<Self, ConfigError> {
        if required && !file.exists() {
            return Err(ConfigError::Load(format!(
                "configuration file {} does not exist",
                file.display()
            )));
        }
        Self::from_figment(
            Figment::from(Serialized::defaults(DEFAULTS()))
                .merge(Toml::file(file))
                .merge(env_layer()),
        )
    }

    /// Defaults overridden by `overrides`, a TOML document; no file, no
    /// environment. For tests and tools that build settings in code.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(DEFAULTS())).merge(Toml::string(overrides)),
        )
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Self = figment.extract().map_err(|e| {
            // figment reports every error of every layer; name them all.
            ConfigError::Load(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| invalid("issuer", e))?;
        if !matches!(issuer.scheme(), "https" | "http")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
            || self.issuer.ends_with('/')
        {
            // OIDC Discovery §3: https, no query or fragment; a trailing slash
            // would make `iss` differ from the URL the RP configured.
            return Err(invalid(
                "issuer",
                "must be an http(s) URL without query, fragment or trailing slash",
            ));
        }
        // WebAuthn §5.1.3: the relying-party id (the issuer's host) must be a
        // domain name; browsers refuse IP addresses.
        if matches!(issuer.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
            return Err(invalid(
                "issuer",
                "must use a domain name (for example localhost), not an IP address: passkeys are bound to it",
            ));
        }
        if issuer.scheme() == "http" && !is_loopback_host(issuer.host_str().unwrap_or_default()) {
            return Err(invalid(
                "issuer",
                "must be https unless the host is loopback",
            ));
        }
        let public = self.listen_addr()?;
        let metrics = self.metrics_addr()?;
        if public == metrics && public.port() != 0 {
            return Err(invalid(
                "metrics.listen",
                "must differ from `listen`: metrics are never served on the public listener",
            ));
        }
        self.audit.validate()?;
        if self.drain_delay > Duration::from_secs(300) {
            return Err(invalid("drain_delay", "must be at most 5 minutes"));
        }
        if self.limits.signin_per_minute == 0 || self.limits.register_per_minute == 0 {
            return Err(invalid(
                "limits",
                "the per-minute limits must be at least 1",
            ));
        }
        if let Some(bad) = self
            .limits
            .trusted_proxies
            .iter()
            .find(|p| parse_cidr(p).is_none())
        {
            return Err(invalid(
                "limits.trusted_proxies",
                format!("`{bad}` is not an IP address or CIDR block"),
            ));
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite: or postgres://",
            ));
        }
        if !(self.cache_url == "memory"
            || self.cache_url.starts_with("redis://")
            || self.cache_url.starts_with("rediss://"))
        {
            return Err(invalid("cache_url", "must be `memory` or a redis:// URL"));
        }
        if self.tokens.authorization_code_ttl > Duration::from_secs(60)
            || self.tokens.authorization_code_ttl.is_zero()
        {
            return Err(invalid(
                "tokens.authorization_code_ttl",
                "must be between 1 and 60 seconds",
            ));
        }
        if self.passkeys.ceremony_timeout.is_zero()
            || self.passkeys.ceremony_timeout > Duration::from_secs(3_600)
        {
            return Err(invalid(
                "passkeys.ceremony_timeout",
                "must be between 1 second and 1 hour",
            ));
        }
        let development = issuer.scheme() == "http";
        self.eid
            .validate(development)
            .map_err(|e| invalid(e.key, e.reason))?;
        if let Some(token) = &self.registration_token
            && token.expose().len() < 16
        {
            return Err(invalid(
                "registration_token",
                "must be at least 16 characters",
            ));
        }
        Ok(())
    }

    /// The listen address.
    ///
    /// # Errors
    /// If `listen` is not `host:port`.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs as _;
        self.listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| invalid("listen", "must be host:port"))
    }

    /// The metrics listener's address.
    ///
    /// # Errors
    /// If `metrics.listen` is not `host:port`.
    pub fn metrics_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs as _;
        self.metrics
            .listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| invalid("metrics.listen", "must be host:port"))
    }

    /// Is the issuer served over https (cookies get `Secure`)?
    #[must_use]
    pub fn issuer_is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The longest lifetime of any JWT Civitas signs: how long a retired key
    /// must stay published.
    #[must_use]
    pub fn longest_signed_token_ttl(&self) -> Duration {
        self.tokens.access_token_ttl.max(self.tokens.id_token_ttl)
    }
}

fn invalid(key: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

/// Is `host` a loopback host name or address?
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Deserialises any scalar as a string: the environment layer reads
/// `CIVITAS_REGISTRATION_TOKEN=12345` as a number.
///
/// # Errors
/// If the value is not a scalar.
pub fn string_like<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::S(s) => s,
        Scalar::I(i) => i.to_string(),
        Scalar::U(u) => u.to_string(),
        Scalar::F(f) => f.to_string(),
        Scalar::B(b) => b.to_string(),
    })
}

/// Durations as whole seconds (`300`) or with a unit (`"300s"`, `"5m"`, `"2h"`, `"1d"`).
mod duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = super::string_like(d)?;
        parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: use seconds or a number with s, m, h or d"
            ))
        })
    }

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => text.split_at(i),
            None => (text, "s"),
        };
        let n: u64 = digits.parse().ok()?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return None,
        };
        n.checked_mul(mult).map(Duration::from_secs)
    }

    #[cfg(test)]
    #[test]
    fn parses_units() {
        assert_eq!(parse("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("5 parsecs"), None);
        assert_eq!(parse("m"), None);
    }
}

#[cfg(test)]
mod tests;
