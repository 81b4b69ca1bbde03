//! The label values of the metrics: small closed sets, so that the number
//! of series stays bounded whatever the requests contain.

use crate::assurance::Level;

/// An HTTP request method; anything unusual is `_OTHER` (as OpenTelemetry
/// names it), so a client cannot create series by inventing methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
    /// Any other method.
    Other,
}

impl HttpMethod {
    /// The method named `method` (case-sensitive, as HTTP methods are).
    #[must_use]
    pub fn parse(method: &str) -> Self {
        match method {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    /// The label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "_OTHER",
        }
    }
}

/// The class of an HTTP status, as `endpoint_stats` keeps it: `2xx` to
/// `5xx`; informational answers are not counted there.
#[must_use]
pub fn status_class(status: u16) -> Option<&'static str> {
    match status {
        200..=299 => Some("2xx"),
        300..=399 => Some("3xx"),
        400..=499 => Some("4xx"),
        500..=599 => Some("5xx"),
        _ => None,
    }
}

/// A grant for which the token endpoint issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenGrant {
    /// `authorization_code`.
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
    /// `client_credentials`.
    ClientCredentials,
    /// RFC 7523 JWT bearer (`jwt-bearer`).
    JwtBearer,
    /// RFC 8693 token exchange (`token-exchange`).
    TokenExchange,
}

impl TokenGrant {
    /// Every grant, in the order they are shown.
    pub const ALL: [Self; 5] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::JwtBearer,
        Self::TokenExchange,
    ];

    /// The grant a token request's `grant_type` parameter names, if Civitas
    /// knows it.
    #[must_use]
    pub fn from_grant_type(grant_type: &str) -> Option<Self> {
        match grant_type {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => Some(Self::JwtBearer),
            "urn:ietf:params:oauth:grant-type:token-exchange" => Some(Self::TokenExchange),
            _ => None,
        }
    }

    /// The label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "jwt-bearer",
            Self::TokenExchange => "token-exchange",
        }
    }
}

/// How a browser session was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// A passkey sign-in (usernameless assertion).
    Passkey,
    /// A passkey registration that signs in: a new account, or a new
    /// passkey registered in a recovery session.
    PasskeyRegistration,
    /// A recovery code: a restricted session.
    RecoveryCode,
    /// Recovery with the account's eID: a restricted session.
    EidRecovery,
}

impl SignInMethod {
    /// Every method, in the order they are shown.
    pub const ALL: [Self; 4] = [
        Self::Passkey,
        Self::PasskeyRegistration,
        Self::RecoveryCode,
        Self::EidRecovery,
    ];

    /// The label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::PasskeyRegistration => "passkey_registration",
            Self::RecoveryCode => "recovery_code",
            Self::EidRecovery => "eid_recovery",
        }
    }

    /// Does a session of this method have a level of assurance? Recovery
    /// sessions (`none`) do not: they can only register a passkey.
    #[must_use]
    pub fn has_level(self) -> bool {
        matches!(self, Self::Passkey | Self::PasskeyRegistration)
    }
}

/// The `level` label: the eIDAS alias, or `none` for a recovery session.
#[must_use]
pub(super) fn level_label(level: Option<Level>) -> &'static str {
    level.map_or("none", Level::alias)
}

/// A passkey ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyCeremony {
    /// Creating a passkey (with an account, or for one).
    Registration,
    /// Signing in with a passkey.
    SignIn,
}

impl PasskeyCeremony {
    /// Both ceremonies.
    pub const ALL: [Self; 2] = [Self::Registration, Self::SignIn];

    /// The `ceremony` label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Registration => "passkey_registration",
            Self::SignIn => "passkey_signin",
        }
    }
}

/// Why a passkey ceremony step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyFailure {
    /// No such ceremony: expired, or already finished (a replay).
    Expired,
    /// The authenticator's response did not verify.
    Rejected,
    /// The request body was not a ceremony response.
    Malformed,
    /// The CSRF check failed.
    Csrf,
    /// The per-address rate limit was reached.
    RateLimited,
}

impl PasskeyFailure {
    /// Every reason, in the order they are shown.
    pub const ALL: [Self; 5] = [
        Self::Expired,
        Self::Rejected,
        Self::Malformed,
        Self::Csrf,
        Self::RateLimited,
    ];

    /// The `reason` label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::Malformed => "malformed",
            Self::Csrf => "csrf",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The reason a [`crate::passkeys::PasskeyError`] counts as, if it is a
    /// refusal of the ceremony rather than a failure of Civitas.
    #[must_use]
    pub fn of(e: &crate::passkeys::PasskeyError) -> Option<Self> {
        use crate::passkeys::PasskeyError;
        match e {
            PasskeyError::Expired => Some(Self::Expired),
            PasskeyError::Rejected(_) => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// Why an eID flow (enrollment, re-proofing or recovery) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EidFailure {
    /// The connector named in the request is not configured.
    UnknownConnector,
    /// The citizen cancelled at the eID provider, or it refused.
    Refused,
    /// The callback's `state` names no flow of this browser.
    BadState,
    /// The eID provider's answer did not verify.
    Invalid,
    /// The eID's level maps to no eIDAS level.
    UnknownLevel,
    /// The identity is bound to another account, or the account to another
    /// identity.
    IdentityConflict,
    /// Recovery with an eID no account is bound to.
    NoAccount,
    /// The browser was signed out while enrolling.
    SignedOut,
}

impl EidFailure {
    /// Every reason, in the order they are shown.
    pub const ALL: [Self; 8] = [
        Self::UnknownConnector,
        Self::Refused,
        Self::BadState,
        Self::Invalid,
        Self::UnknownLevel,
        Self::IdentityConflict,
        Self::NoAccount,
        Self::SignedOut,
    ];

    /// The `reason` label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownConnector => "unknown_connector",
            Self::Refused => "refused",
            Self::BadState => "bad_state",
            Self::Invalid => "invalid",
            Self::UnknownLevel => "unknown_level",
            Self::IdentityConflict => "identity_conflict",
            Self::NoAccount => "no_account",
            Self::SignedOut => "signed_out",
        }
    }

    /// The reason a [`crate::eid::connector::FlowError`] counts as, if it
    /// is a failure of the flow rather than of the cache.
    #[must_use]
    pub fn of(e: &crate::eid::connector::FlowError) -> Option<Self> {
        use crate::eid::connector::FlowError;
        match e {
            FlowError::UnknownConnector => Some(Self::UnknownConnector),
            FlowError::Refused(_) => Some(Self::Refused),
            FlowError::BadState => Some(Self::BadState),
            FlowError::Invalid(_) | FlowError::ForeignCountry => Some(Self::Invalid),
            FlowError::UnknownLevel => Some(Self::UnknownLevel),
            FlowError::Cache(_) => None,
        }
    }
}

/// A dependency whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The database.
    Database,
    /// The ephemeral store (in process or Redis).
    Cache,
}

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// It could not be reached or timed out (a 503).
    Unavailable,
    /// It answered with an error (a 500).
    Other,
}

impl FailureKind {
    /// Both kinds.
    pub const ALL: [Self; 2] = [Self::Unavailable, Self::Other];

    /// The `kind` label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Other => "other",
        }
    }
}

/// A failed dependency, as an error answer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyError {
    /// Which one.
    pub dependency: Dependency,
    /// How.
    pub kind: FailureKind,
}

impl DependencyError {
    /// Classifies the cause of an error answer by the `Display` text of the
    /// error it came from: `StoreError` (`database: …`, `migration: …`,
    /// `stored value is corrupt: …`) or `EphemeralError` (`cache
    /// unavailable: …`, `a TTL of zero …`), also when an `OAuthError`
    /// carried it (`unavailable: …`). `kind` is what the answer says: a 503
    /// is `Unavailable`, a 500 `Other`. `None` for causes that name neither
    /// dependency.
    #[must_use]
    pub fn classify(cause: &str, kind: FailureKind) -> Option<Self> {
        let cause = cause.trim_start_matches("unavailable: ");
        let dependency =
            if cause.starts_with("cache unavailable") || cause.starts_with("a TTL of zero") {
                Dependency::Cache
            } else if cause.starts_with("database: ")
                || cause.starts_with("migration: ")
                || cause.starts_with("stored value is corrupt")
            {
                Dependency::Database
            } else {
                return None;
            };
        Some(Self { dependency, kind })
    }
}
