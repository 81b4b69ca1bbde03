//! The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636,
//! RFC 9207, RFC 9700).
//!
//! Only `response_type=code`, with PKCE S256, for every client. An unknown
//! client or a redirect URI that is not exactly registered is shown an error
//! page and never redirected to (§3.1.2.6: the OP must not redirect to an
//! unverified URI); every other error goes back to the client with `error`,
//! `error_description`, `state` and `iss`.
//!
//! While the citizen signs in or consents, the request waits in the
//! ephemeral store under an opaque handle, so any instance can continue it;
//! the pages see only the handle.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::chooser::Chooser;
use super::chooser::{Checked, RepresentChoice};
use super::params::{ClaimsRequest, Params, Prompt, Repeated, Scope};
use super::representation::{self as rep, Representation};
use super::{OAuthError, Provider, consent, grants};
use crate::accounts::AccountId;
use crate::assurance::{self, Level};
use crate::audit::{Event, Kind};
use crate::clients::{Client, GrantType};
use crate::clock::UnixTime;
use crate::ephemeral::{Ephemeral as _, Key, Namespace};
use crate::secrets::{Secret, SecretHash, random_token};
use crate::sessions::Session;

/// How long a citizen has to sign in and consent.
pub(super) const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

/// How the response is returned (OAuth 2.0 Multiple Response Types §2.1, Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    /// In the redirect URI's query.
    Query,
    /// In an auto-submitted HTML form POSTed to the redirect URI.
    FormPost,
}

/// An authorization request waiting for sign-in or consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The client.
    pub client_id: String,
    /// Its (verified) redirect URI.
    pub redirect_uri: String,
    /// Query or form post.
    pub response_mode: ResponseMode,
    /// Requested scopes (allowed for the client).
    pub scope: Scope,
    /// Opaque client state, returned as is.
    pub state: Option<String>,
    /// Replay protection for the ID token.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The prompt parameter.
    pub prompt: Prompt,
    /// Maximum authentication age, seconds.
    pub max_age: Option<u64>,
    /// Hint for the sign-in page.
    pub login_hint: Option<String>,
    /// The subject named by `id_token_hint`, for this client.
    pub hinted_sub: Option<String>,
    /// Requested levels of assurance, in order of preference.
    pub acr_values: Vec<String>,
    /// Individually requested claims.
    pub claims: ClaimsRequest,
    /// Preferred languages of the pages.
    pub ui_locales: Option<String>,
    /// When the request arrived.
    pub created_at: UnixTime,
    /// With `prompt=login`, `select_account` or `create`: the session the
    /// browser had when the request arrived, which does not count; only a
    /// sign-in after the request (a new session id) does.
    pub stale_sid: Option<String>,
    /// Anti-forgery token of the consent form.
    pub csrf: String,
    /// The minimum level of assurance the request demands, if any.
    #[serde(default)]
    pub required_acr: Option<String>,
    /// Representation asked for: the powers needed (empty: any), if any.
    #[serde(default)]
    pub represent: Option<Vec<String>>,
    /// The choice made on the chooser, with the account and level that
    /// made it: only a session of that account at that level continues
    /// with it (`chooser.rs`).
    #[serde(default)]
    pub representation_choice: Option<RepresentChoice>,
}

/// An authorization response (success or error) for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// Where to send it.
    pub redirect_uri: String,
    /// How.
    pub mode: ResponseMode,
    /// The response parameters, `iss` included (RFC 9207).
    pub params: Vec<(&'static str, String)>,
}

impl AuthorizationResponse {
    /// The redirect URL of a query-mode response.
    #[must_use]
    pub fn location(&self) -> String {
        let mut url = self.redirect_uri.clone();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            query.append_pair(k, v);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.finish());
        url
    }
}

/// What consent is asked for.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// The pending request's handle.
    pub handle: String,
    /// Anti-forgery token for the form.
    pub csrf: String,
    /// The client's display name.
    pub client_name: String,
    /// The client's home page, if registered.
    pub client_uri: Option<String>,
    /// The scopes asked for, with what each shares.
    pub scopes: Vec<(String, &'static str)>,
    /// Individual claims asked for.
    pub claims: Vec<String>,
    /// Where the answer goes (the consent form's CSP must allow it).
    pub redirect_uri: String,
}

/// The session's level of assurance is below what the request demands.
#[derive(Debug, Clone)]
pub struct StepUp {
    /// The pending request's handle.
    pub handle: String,
    /// Anti-forgery token of the cancel form.
    pub csrf: String,
    /// The client's display name.
    pub client_name: String,
    /// Where a cancel goes (the form's CSP must allow it).
    pub redirect_uri: String,
    /// The level demanded.
    pub required: Level,
    /// The level the session reached.
    pub achieved: Level,
    /// Would signing in again with one of the citizen's passkeys reach the
    /// demand (the identity proofing suffices and a passkey proven at that
    /// level is device-bound where the level needs it)?
    pub passkey_would_help: bool,
}

/// What the authorization endpoint decides.
#[derive(Debug)]
pub enum Outcome {
    /// Show an error page; do not redirect (unknown client, unverified redirect URI).
    Refused {
        /// Heading.
        title: &'static str,
        /// Explanation.
        message: String,
    },
    /// Send a response to the client.
    Respond(AuthorizationResponse),
    /// Show the sign-in page for the pending request.
    SignIn {
        /// The pending request's handle.
        handle: String,
        /// The client's hint, to prefill.
        login_hint: Option<String>,
        /// Start with account creation (`prompt=create`).
        create: bool,
    },
    /// Show the consent page.
    Consent(ConsentRequest),
    /// Offer a step-up: the session is below the demanded level.
    StepUp(StepUp),
    /// Ask whom the citizen acts for.
    ChooseRepresentation(Chooser),
}

/// A code, as stored until redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) scope: Scope,
    pub(crate) claims: ClaimsRequest,
    pub(crate) nonce: Option<String>,
    pub(crate) account_id: AccountId,
    pub(crate) sid: String,
    pub(crate) auth_time: UnixTime,
    pub(crate) acr: String,
    pub(crate) amr: Vec<String>,
    #[serde(default)]
    pub(crate) representation: Option<Representation>,
}

/// What a requested claim shares and where it comes from, for the consent page.
#[must_use]
pub fn describe_claim(name: &str) -> String {
    match name.strip_prefix("verified:") {
        Some(claim) => {
            let what = match claim {
                "given_name" => "Your given name",
                "family_name" => "Your family name",
                "birthdate" => "Your date of birth",
                "nationalities" => "Your nationality",
                "person_identifier" => "Your national identification number",
                other => other,
            };
            format!("{what}, as verified by your national eID")
        }
        None => format!("The claim {name}"),
    }
}

/// What a scope shares, for the consent page.
#[must_use]
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "That you are signed in, with an identifier for this service only",
        "profile" => "Your name",
        "email" => "Your email address",
        "offline_access" => "Access while you are not signed in",
        "represent" => "Acting for an organization you choose, if you represent one",
        _ => "Access to the service's own data",
    }
}

pub(super) fn refused(title: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::Refused {
        title,
        message: message.into(),
    }
}

pub(super) fn pending_key(handle: &str) -> Key {
    Key::new(Namespace::AuthRequest, handle)
}

fn code_key(hash: &SecretHash) -> Key {
    Key::new(Namespace::Code, hash.as_str())
}

/// Is `s` a valid S256 code challenge (base64url of 32 bytes: 43 characters)?
fn is_s256_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Provider {
    /// Handles an authorization request. `session` is the browser's current
    /// session, if any.
    pub async fn authorize(
        &self,
        query: &[u8],
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let (mut params, repeated) = Params::parse_lenient(query);
        // Until the client and its redirect URI are verified, errors are pages.
        if let Some(Repeated(name)) = &repeated
            && (name == "client_id" || name == "redirect_uri")
        {
            return Ok(refused(
                "Invalid request",
                format!("The parameter {name} was sent more than once."),
            ));
        }
        let Some(client_id) = params.take("client_id") else {
            return Ok(refused(
                "Invalid request",
                "The request does not name a service (client_id is missing).",
            ));
        };
        let Some(client) = self.clients.get(&client_id).await? else {
            return Ok(refused(
                "Unknown service",
                "The service that sent you here is not registered with Civitas.",
            ));
        };
        let Some(redirect_uri) = params.take("redirect_uri") else {
            return Ok(refused(
                "Invalid request",
                "The request does not say where to return (redirect_uri is missing).",
            ));
        };
        if !client.has_redirect_uri(&redirect_uri) {
            return Ok(refused(
                "Invalid request",
                "The address to return to is not registered for this service, so Civitas will not send you there.",
            ));
        }
        let state = params.take("state");
        let response_mode = match params.get("response_mode") {
            None | Some("query") => ResponseMode::Query,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => ResponseMode::Query,
        };
        let fail = |code: &'static str, description: &str| {
            Ok(Outcome::Respond(self.error_response(
                &redirect_uri,
                response_mode,
                state.clone(),
                code,
                description,
            )))
        };
        if let Some(Repeated(name)) = repeated {
            return fail(
                "invalid_request",
                &format!("parameter `{name}` is repeated"),
            );
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
            && mode != "form_post"
        {
            return fail(
                "invalid_request",
                "response_mode must be query or form_post",
            );
        }
        if params.get("request").is_some() {
            return fail("request_not_supported", "request objects are not supported");
        }
        if params.get("request_uri").is_some() {
            return fail("request_uri_not_supported", "request_uri is not supported");
        }
        match params.get("response_type") {
            Some("code") => {}
            None => return fail("invalid_request", "response_type is missing"),
            Some(_) => {
                return fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                );
            }
        }
        if !client
            .metadata
            .grant_types
            .contains(&GrantType::AuthorizationCode)
        {
            return fail(
                "unauthorized_client",
                "the client is not registered for the authorization code grant",
            );
        }
        let scope = match Scope::parse(params.get("scope").unwrap_or_default()) {
            Ok(s) if s.is_empty() => return fail("invalid_scope", "scope is missing"),
            Ok(s) => s,
            Err(e) => return fail("invalid_scope", &e),
        };
        let allowed = Scope::parse(&client.metadata.scope).unwrap_or_default();
        let extra = scope.not_in(&allowed);
        if !extra.is_empty() {
            return fail(
                "invalid_scope",
                &format!("the client may not ask for: {}", extra.join(" ")),
            );
        }
        // RFC 7636 §4.3 and RFC 9700 §2.1.1: PKCE with S256, for every client.
        let Some(code_challenge) = params.take("code_challenge") else {
            return fail(
                "invalid_request",
                "code_challenge is required (PKCE with S256)",
            );
        };
        match params.get("code_challenge_method") {
            Some("S256") => {}
            Some("plain") => {
                return fail(
                    "invalid_request",
                    "code_challenge_method plain is not allowed; use S256",
                );
            }
            None => {
                return fail(
                    "invalid_request",
                    "code_challenge_method is required and must be S256",
                );
            }
            Some(_) => return fail("invalid_request", "code_challenge_method must be S256"),
        }
        if !is_s256_challenge(&code_challenge) {
            return fail(
                "invalid_request",
                "code_challenge is not a base64url SHA-256 value",
            );
        }
        for (name, limit) in [
            ("state", 2_048),
            ("nonce", 512),
            ("login_hint", 256),
            ("ui_locales", 256),
            ("acr_values", 512),
        ] {
            let len = if name == "state" {
                state.as_ref().map_or(0, String::len)
            } else {
                params.get(name).map_or(0, str::len)
            };
            if len > limit {
                return fail(
                    "invalid_request",
                    &format!("{name} is longer than {limit} characters"),
                );
            }
        }
        let prompt = match Prompt::parse(params.get("prompt").unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => return fail("invalid_request", &e),
        };
        let max_age = match params.get("max_age").map(str::parse::<u64>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                return fail("invalid_request", "max_age must be a non-negative integer");
            }
        };
        let mut claims = match params.get("claims").map(ClaimsRequest::parse) {
            None => ClaimsRequest::default(),
            Some(Ok(c)) => c,
            Some(Err(e)) => return fail("invalid_request", &e),
        };
        // Verified claims go only to clients the operator allowed them for
        // (OIDC4IDA §6: the OP may omit what it will not release).
        if claims.verified_names().next().is_some() {
            let allowed: Vec<String> = self
                .clients
                .allowed_claims(client.client_id.as_str())
                .await?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            claims.verified_userinfo.retain(|c| allowed.contains(c));
            claims.verified_id_token.retain(|c| allowed.contains(c));
        }
        let hinted_sub = match params.get("id_token_hint") {
            None => None,
            Some(hint) => match self.id_token_hint_subject(hint, &client) {
                Some(sub) => Some(sub),
                None => {
                    return fail(
                        "invalid_request",
                        "id_token_hint is not an ID token Civitas issued to this client",
                    );
                }
            },
        };
        let acr_values: Vec<String> = params
            .get("acr_values")
            .map(|v| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let required_acr =
            match assurance::required(&acr_values, &claims, &client.metadata.default_acr_values) {
                Ok(level) => level.map(|l| l.alias().to_owned()),
                Err(e) => return fail("invalid_request", &e.to_string()),
            };
        let represent = match rep::parse_request(
            params.get("authorization_details"),
            scope.contains(rep::REPRESENT_SCOPE),
        ) {
            Ok(r) => r,
            Err(e) => return fail("invalid_authorization_details", &e),
        };
        let pending = PendingAuthorization {
            client_id,
            redirect_uri,
            response_mode,
            scope,
            state,
            nonce: params.take("nonce"),
            code_challenge,
            prompt,
            max_age,
            login_hint: params.take("login_hint"),
            hinted_sub,
            acr_values: params
                .get("acr_values")
                .map(|v| v.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            claims,
            ui_locales: params.take("ui_locales"),
            created_at: self.clock.now(),
            stale_sid: (prompt.login || prompt.select_account || prompt.create)
                .then(|| session.as_ref().map(|s| s.sid.clone()))
                .flatten(),
            csrf: random_token(24),
            required_acr,
            represent,
            representation_choice: None,
        };
        self.proceed(pending, None, &client, session).await
    }

    /// The `sub` of an ID token this provider issued to `client` (expired
    /// tokens are accepted: the hint names who, it authorises nothing).
    pub(crate) fn id_token_hint_subject(&self, token: &str, client: &Client) -> Option<String> {
        let (_, claims) = self.keys.verify(token).ok()?;
        let aud_ok = match &claims["aud"] {
            serde_json::Value::String(a) => a == client.client_id.as_str(),
            serde_json::Value::Array(a) => a.iter().any(|v| v == client.client_id.as_str()),
            _ => false,
        };
        (claims["iss"] == self.settings.issuer.as_str() && aud_ok)
            .then(|| claims["sub"].as_str().map(str::to_owned))?
    }

    /// Continues a pending request after the citizen signed in.
    pub async fn resume_authorization(
        &self,
        handle: &str,
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(expired_request());
        };
        let Some(client) = self.clients.get_recent(&pending.client_id).await? else {
            return Ok(refused(
                "Unknown service",
                "The service that sent you here is no longer registered.",
            ));
        };
        self.proceed(pending, Some(handle), &client, session).await
    }

    pub(super) async fn load_pending(
        &self,
        handle: &str,
    ) -> Result<Option<PendingAuthorization>, OAuthError> {
        let bytes = self.cache.get(&pending_key(handle)).await?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Is the session good enough for this request?
    fn session_satisfies(
        &self,
        pending: &PendingAuthorization,
        client: &Client,
        session: &Session,
    ) -> bool {
        if session.restricted {
            return false; // a recovery session signs in nowhere
        }
        // OIDC Core §3.1.2.1: max_age is the time allowed since the last
        // authentication, measured when the request arrives. A sign-in made
        // for the request (after it arrived) meets it, and so does one that
        // met it then: the consent page and the chooser, however long the
        // citizen reads them, never ask for another (review M2).
        let fresh_enough = pending.max_age.is_none_or(|max| {
            session.auth_time.0 >= pending.created_at.0.saturating_sub_unsigned(max)
        });
        // prompt=login (and select_account, create) need a sign-in after the
        // request arrived: a session other than the one the browser had then
        // (every sign-in makes a new session id).
        let reauthenticated = pending.stale_sid.as_deref() != Some(session.sid.as_str());
        let forced = pending.prompt.login || pending.prompt.select_account || pending.prompt.create;
        let hinted_ok = pending
            .hinted_sub
            .as_ref()
            .is_none_or(|sub| *sub == self.pairwise.subject(client, &session.account_id));
        fresh_enough && (!forced || reauthenticated) && hinted_ok
    }

    pub(super) async fn proceed(
        &self,
        pending: PendingAuthorization,
        handle: Option<&str>,
        client: &Client,
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let usable = session.filter(|s| self.session_satisfies(&pending, client, s));
        let Some(session) = usable else {
            if pending.prompt.none {
                return self
                    .finish_with_error(
                        &pending,
                        handle,
                        "login_required",
                        "the citizen is not signed in",
                    )
                    .await;
            }
            let create = pending.prompt.create;
            let login_hint = pending.login_hint.clone();
            let handle = self.keep_pending(&pending, handle).await?;
            return Ok(Outcome::SignIn {
                handle,
                login_hint,
                create,
            });
        };
        // OIDC Core §3.1.2.1 (acr_values) and §5.5.1.1 (essential acr): never
        // a token below the demanded level.
        if let Some(required) = pending.required_acr.as_deref().and_then(Level::parse) {
            let achieved = Level::parse(&session.acr).unwrap_or(Level::Low);
            if achieved < required {
                if pending.prompt.none {
                    return self
                        .finish_with_error(
                            &pending,
                            handle,
                            "unmet_authentication_requirements",
                            "the level of assurance is not met",
                        )
                        .await;
                }
                let proofing = crate::eid::proofing_level(&self.db, &session.account_id).await?;
                // The session met the request's freshness; the level is
                // checked again at every step, so the step-up may raise it
                // in this session (eID) or in a new one (another passkey).
                let handle = self.keep_pending(&pending, handle).await?;
                let event = Event::citizen(Kind::StepUp, &session.account_id)
                    .client(client.client_id.as_str())
                    .with("outcome", "required")
                    .with("required", required.alias())
                    .with("achieved", achieved.alias());
                crate::audit::record_alone(&self.db, &event, self.clock.now()).await?;
                return Ok(Outcome::StepUp(StepUp {
                    handle,
                    csrf: pending.csrf.clone(),
                    client_name: client
                        .metadata
                        .client_name
                        .clone()
                        .unwrap_or_else(|| client.client_id.to_string()),
                    redirect_uri: pending.redirect_uri.clone(),
                    required,
                    achieved,
                    passkey_would_help: crate::passkeys::best_reach(
                        &self.db,
                        &session.account_id,
                        proofing,
                    )
                    .await?
                        >= required,
                }));
            }
        }
        if let Some(outcome) = self
            .chooser_step(&pending, handle, client, &session)
            .await?
        {
            return Ok(outcome);
        }
        let claims: Vec<String> = pending.claims.consent_names();
        // First-party clients skip consent, except for verified claims: the
        // citizen always sees what their eID is used to share.
        let consented = (client.first_party && pending.claims.verified_names().next().is_none())
            || consent::get(&self.db, &session.account_id, client.client_id.as_str())
                .await?
                .is_some_and(|c| c.covers(&pending.scope, &claims));
        if pending.prompt.consent || !consented {
            if pending.prompt.none {
                return self
                    .finish_with_error(
                        &pending,
                        handle,
                        "consent_required",
                        "the citizen has not consented",
                    )
                    .await;
            }
            let handle = self.keep_pending(&pending, handle).await?;
            return Ok(Outcome::Consent(
                self.consent_request(&pending, handle, client, claims),
            ));
        }
        self.issue_code(&pending, handle, client, &session).await
    }

    fn consent_request(
        &self,
        pending: &PendingAuthorization,
        handle: String,
        client: &Client,
        claims: Vec<String>,
    ) -> ConsentRequest {
        let claims = claims.iter().map(|c| describe_claim(c)).collect();
        ConsentRequest {
            handle,
            csrf: pending.csrf.clone(),
            client_name: client
                .metadata
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.to_string()),
            client_uri: client.metadata.client_uri.clone(),
            scopes: pending
                .scope
                .iter()
                .map(|s| (s.to_owned(), describe_scope(s)))
                .collect(),
            claims,
            redirect_uri: pending.redirect_uri.clone(),
        }
    }

    /// Stores the pending request under a new handle, or keeps the existing one.
    pub(super) async fn keep_pending(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
    ) -> Result<String, OAuthError> {
        if let Some(h) = handle {
            return Ok(h.to_owned());
        }
        let handle = random_token(24);
        let bytes = serde_json::to_vec(pending).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.cache
            .put(&pending_key(&handle), &bytes, PENDING_TTL)
            .await?;
        Ok(handle)
    }

    pub(super) async fn finish_with_error(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
        code: &'static str,
        description: &str,
    ) -> Result<Outcome, OAuthError> {
        if let Some(h) = handle {
            self.cache.delete(&pending_key(h)).await?;
        }
        Ok(Outcome::Respond(self.error_response(
            &pending.redirect_uri,
            pending.response_mode,
            pending.state.clone(),
            code,
            description,
        )))
    }

    /// An error response for a verified redirect URI (OIDC Core §3.1.2.6, RFC 9207).
    fn error_response(
        &self,
        redirect_uri: &str,
        mode: ResponseMode,
        state: Option<String>,
        code: &'static str,
        description: &str,
    ) -> AuthorizationResponse {
        let mut params = vec![
            ("error", code.to_owned()),
            ("error_description", description.to_owned()),
        ];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", self.settings.issuer.clone()));
        AuthorizationResponse {
            redirect_uri: redirect_uri.to_owned(),
            mode,
            params,
        }
    }

    /// Loads a pending request for one of its forms: checks the form's
    /// anti-forgery token, that the client still exists and that the session
    /// still satisfies the request. `Err` is the outcome to show instead.
    pub(super) async fn form_context(
        &self,
        handle: &str,
        csrf: &str,
        session: Option<Session>,
    ) -> Result<Result<(PendingAuthorization, Client, Session), Outcome>, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(Err(expired_request()));
        };
        if !Secret::new(pending.csrf.clone()).matches(csrf) {
            return Ok(Err(refused(
                "Request could not be verified",
                "The form was not sent from this page. Please start again from the service.",
            )));
        }
        let Some(client) = self.clients.get_recent(&pending.client_id).await? else {
            return Ok(Err(refused(
                "Unknown service",
                "The service that sent you here is no longer registered.",
            )));
        };
        let Some(session) = session.filter(|s| self.session_satisfies(&pending, &client, s)) else {
            let login_hint = pending.login_hint.clone();
            return Ok(Err(Outcome::SignIn {
                handle: handle.to_owned(),
                login_hint,
                create: false,
            }));
        };
        Ok(Ok((pending, client, session)))
    }

    /// The citizen gave up on reaching the demanded level: the client gets
    /// `unmet_authentication_requirements` (OpenID Connect Unmet
    /// Authentication Requirements 1.0), never a token at a lower level.
    pub async fn cancel_step_up(&self, handle: &str, csrf: &str) -> Result<Outcome, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(expired_request());
        };
        if !Secret::new(pending.csrf.clone()).matches(csrf) {
            return Ok(refused(
                "Request could not be verified",
                "Please start again from the service.",
            ));
        }
        self.finish_with_error(
            &pending,
            Some(handle),
            "unmet_authentication_requirements",
            "the citizen could not reach the required level of assurance",
        )
        .await
    }

    /// The consent page's content for a pending request, if the session can consent.
    pub async fn consent_page(
        &self,
        handle: &str,
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(expired_request());
        };
        let Some(client) = self.clients.get_recent(&pending.client_id).await? else {
            return Ok(refused(
                "Unknown service",
                "The service that sent you here is no longer registered.",
            ));
        };
        let Some(session) = session.filter(|s| self.session_satisfies(&pending, &client, s)) else {
            let login_hint = pending.login_hint.clone();
            return Ok(Outcome::SignIn {
                handle: handle.to_owned(),
                login_hint,
                create: false,
            });
        };
        // Another account's choice is not this one's to consent to.
        if let Some(outcome) = self
            .chooser_step(&pending, Some(handle), &client, &session)
            .await?
        {
            return Ok(outcome);
        }
        let claims = pending.claims.consent_names();
        Ok(Outcome::Consent(self.consent_request(
            &pending,
            handle.to_owned(),
            &client,
            claims,
        )))
    }

    /// The citizen's answer on the consent page.
    pub async fn decide_consent(
        &self,
        handle: &str,
        csrf: &str,
        allow: bool,
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let (pending, client, session) = match self.form_context(handle, csrf, session).await? {
            Ok(context) => context,
            Err(outcome) => return Ok(outcome),
        };
        if !allow {
            return self
                .finish_with_error(
                    &pending,
                    Some(handle),
                    "access_denied",
                    "the citizen declined",
                )
                .await;
        }
        // The session may have changed since the page was shown (another tab
        // signed in at a lower level): check the demanded level again.
        if let Some(required) = pending.required_acr.as_deref().and_then(Level::parse)
            && Level::parse(&session.acr).unwrap_or(Level::Low) < required
        {
            return self
                .proceed(pending, Some(handle), &client, Some(session))
                .await;
        }
        if let Some(outcome) = self
            .chooser_step(&pending, Some(handle), &client, &session)
            .await?
        {
            return Ok(outcome);
        }
        let claims: Vec<String> = pending.claims.consent_names();
        consent::grant(
            &self.db,
            &session.account_id,
            client.client_id.as_str(),
            &pending.scope,
            &claims,
            self.clock.now(),
        )
        .await?;
        self.issue_code(&pending, Some(handle), &client, &session)
            .await
    }

    /// Issues a single-use code bound to the client, redirect URI and PKCE
    /// challenge (RFC 6749 §4.1.2, RFC 7636 §4.4), living at most
    /// `tokens.authorization_code_ttl` (≤ 60 s). A representation goes into
    /// it only if the session's account chose it and still holds the power
    /// at the session's level; else the chooser comes again.
    async fn issue_code(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
        client: &Client,
        session: &Session,
    ) -> Result<Outcome, OAuthError> {
        let representation = match self.check_choice(pending, handle, client, session).await? {
            Checked::Holds(r) => r,
            Checked::Again(outcome) => return Ok(outcome),
        };
        if let Some(h) = handle
            && self.cache.take(&pending_key(h)).await?.is_none()
        {
            // Completed meanwhile (a double submit): the code went out once.
            return Ok(expired_request());
        }
        let code = Secret::generate();
        let grant = CodeGrant {
            client_id: client.client_id.as_str().to_owned(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            scope: pending.scope.clone(),
            claims: pending.claims.clone(),
            nonce: pending.nonce.clone(),
            account_id: session.account_id.clone(),
            sid: session.sid.clone(),
            auth_time: session.auth_time,
            acr: session.acr.clone(),
            amr: session.amr.clone(),
            representation,
        };
        let bytes = serde_json::to_vec(&grant).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.cache
            .put(
                &code_key(&code.hash()),
                &bytes,
                self.settings.tokens.authorization_code_ttl,
            )
            .await?;
        grants::record_session_client(
            &self.db,
            &session.sid,
            client.client_id.as_str(),
            &session.account_id,
            self.clock.now(),
        )
        .await?;
        let mut params = vec![("code", code.expose().to_owned())];
        if let Some(s) = &pending.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.settings.issuer.clone()));
        Ok(Outcome::Respond(AuthorizationResponse {
            redirect_uri: pending.redirect_uri.clone(),
            mode: pending.response_mode,
            params,
        }))
    }

    /// Takes a code (single use, atomically across instances).
    pub(crate) async fn take_code(&self, code: &str) -> Result<Option<CodeGrant>, OAuthError> {
        let bytes = self.cache.take(&code_key(&SecretHash::of(code))).await?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

fn expired_request() -> Outcome {
    refused(
        "This sign-in has expired",
        "Too much time passed, or this page was already used. Return to the service and start again.",
    )
}
