//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.6;
//! OIDC Core §3.1.3), introspection (RFC 7662) and revocation (RFC 7009).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::authorize::CodeGrant;
use super::grants::{self, Grant, RefreshUse};
use super::params::{Params, Scope};
use super::tokens::IdTokenClaims;
use super::{ClientCredentials, OAuthError, Provider};
use crate::audit::{Actor, Event, Kind};
use crate::clients::{AuthMethod, Client, GrantType};
use crate::secrets::{Secret, SecretHash, random_token};

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (an RFC 9068 JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scopes.
    pub scope: String,
    /// The ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// A refresh token, with `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 8693 §2.2.1: the type of an exchanged token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// RFC 8693 §2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, in constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

impl Provider {
    /// Handles a token request from an authenticated client.
    ///
    /// # Errors
    /// The RFC 6749 §5.2 error.
    pub async fn token(
        &self,
        mut params: Params,
        creds: &ClientCredentials,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = params
            .take("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
        // RFC 7523 §2.1: the assertion itself authenticates the client when
        // no other credentials are sent.
        let bare = creds.basic.is_none()
            && creds.client_secret.is_none()
            && creds.client_assertion.is_none();
        let client = if grant_type == JWT_BEARER && bare {
            let assertion = params
                .get("assertion")
                .ok_or_else(|| OAuthError::invalid_request("assertion is missing"))?;
            self.check_assertion(
                assertion,
                creds.client_id.as_deref(),
                &self.endpoints.token,
                super::client_auth::MAX_GRANT_ASSERTION_LIFETIME,
            )
            .await
            .map_err(|e| match e {
                OAuthError::Protocol { description, .. } => OAuthError::invalid_grant(description),
                other => other,
            })?
        } else {
            self.authenticate_client(creds, &self.endpoints.token)
                .await?
        };
        match grant_type.as_str() {
            "authorization_code" => self.redeem_code(&client, &mut params).await,
            "refresh_token" => self.refresh(&client, &mut params).await,
            "client_credentials" => {
                self.machine_token(&client, &mut params, GrantType::ClientCredentials)
                    .await
            }
            JWT_BEARER if bare => {
                self.machine_token(&client, &mut params, GrantType::JwtBearer)
                    .await
            }
            JWT_BEARER => Err(OAuthError::invalid_request(
                "send the assertion alone; it authenticates the client",
            )),
            TOKEN_EXCHANGE => self.exchange(&client, &mut params).await,
            _ => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type `{grant_type}` is not supported"),
            )),
        }
    }

    pub(super) fn require_grant(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
        if client.metadata.grant_types.contains(&grant) {
            Ok(())
        } else {
            Err(OAuthError::new(
                "unauthorized_client",
                "the client is not registered for this grant type",
            ))
        }
    }

    async fn redeem_code(
        &self,
        client: &Client,
        params: &mut Params,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::AuthorizationCode)?;
        let code = params
            .take("code")
            .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let redirect_uri = params
            .take("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is missing"))?;
        let verifier = params.take("code_verifier").ok_or_else(|| {
            OAuthError::invalid_request("code_verifier is missing (PKCE is required)")
        })?;
        let code_hash = SecretHash::of(&code);
        let Some(granted) = self.take_code(&code).await? else {
            // RFC 6749 §4.1.2 and RFC 9700 §4.2.4: a code used twice revokes
            // every token issued from it.
            if let Some(g) = grants::by_code(&self.db, &code_hash).await? {
                grants::revoke(&self.db, &g.grant_id, self.clock.now()).await?;
                tracing::warn!(client_id = %g.client_id, grant_id = %g.grant_id, "authorization code reused; grant revoked");
                return Err(OAuthError::invalid_grant(
                    "the code was already used; the tokens issued from it are revoked",
                ));
            }
            return Err(OAuthError::invalid_grant(
                "the code is invalid or has expired",
            ));
        };
        // The code is consumed from here on, whatever happens next.
        if granted.client_id != client.client_id.as_str() {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if granted.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if !is_code_verifier(&verifier) || !pkce_matches(&verifier, &granted.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let grant = self.new_grant(client, &granted);
        // The power may have ended since the code was issued: no grant, no
        // tokens, no `mandate.used` then.
        if !self.grant_power_holds(&grant).await? {
            tracing::info!(client_id = %client.client_id, "code refused: its mandate has ended");
            return Err(super::representation::mandate_ended());
        }
        let mut events = vec![self.released(client, &grant).await?];
        if let Some(r) = &grant.representation {
            events.push(
                Event::citizen(Kind::MandateUsed, &grant.account_id)
                    .client(client.client_id.as_str())
                    .with("org", r.org_id.as_str())
                    .with("mandate", r.mandate.as_str()),
            );
        }
        if !grants::insert(&self.db, &grant, Some(&code_hash), &events).await? {
            return Err(OAuthError::invalid_grant(
                "the account was locked or erased after the code was issued",
            ));
        }
        self.issue_tokens(client, &grant, granted.nonce.as_deref(), &grant.scope, true)
            .await
    }

    /// The audit entry of a sign-in to `client`: the level and methods, and
    /// which claims the grant releases, verified ones with the legal basis
    /// the operator recorded for the client.
    async fn released(&self, client: &Client, grant: &Grant) -> Result<Event, OAuthError> {
        let mut claims: Vec<String> = Vec::new();
        let scope_claims: Vec<&str> = super::userinfo::claims_of_scope(&grant.scope).collect();
        for name in scope_claims
            .into_iter()
            .chain(grant.claims.userinfo.keys().map(String::as_str))
            .chain(grant.claims.id_token.keys().map(String::as_str))
        {
            if super::userinfo::SUPPORTED_CLAIMS.contains(&name)
                && name != "sub"
                && !claims.iter().any(|c| c == name)
            {
                claims.push(name.to_owned());
            }
        }
        let mut verified = Vec::new();
        let requested: Vec<&String> = grant
            .claims
            .verified_userinfo
            .iter()
            .chain(&grant.claims.verified_id_token)
            .collect();
        if !requested.is_empty() {
            for (claim, basis) in self
                .clients
                .allowed_claims(client.client_id.as_str())
                .await?
            {
                if requested.contains(&&claim) {
                    verified.push(serde_json::json!({ "claim": claim, "legal_basis": basis }));
                }
            }
        }
        Ok(Event::citizen(Kind::ClaimsReleased, &grant.account_id)
            .client(client.client_id.as_str())
            .with("scope", grant.scope.to_string())
            .with("claims", claims)
            .with("verified_claims", verified)
            .with("acr", grant.acr.as_str())
            .with("amr", grant.amr.join(" ")))
    }

    fn new_grant(&self, client: &Client, code: &CodeGrant) -> Grant {
        let now = self.clock.now();
        let offline = code.scope.contains("offline_access")
            && client
                .metadata
                .grant_types
                .contains(&GrantType::RefreshToken);
        Grant {
            grant_id: random_token(16),
            client_id: code.client_id.clone(),
            account_id: code.account_id.clone(),
            sid: Some(code.sid.clone()),
            scope: code.scope.clone(),
            claims: code.claims.clone(),
            auth_time: code.auth_time,
            acr: code.acr.clone(),
            amr: code.amr.clone(),
            offline,
            created_at: now,
            expires_at: now.plus(self.settings.tokens.refresh_token_absolute_ttl.as_secs()),
            revoked_at: None,
            representation: code.representation.clone(),
        }
    }

    /// Issues an access token, an ID token (with `openid`) and, for an offline
    /// grant on first issue, a refresh token.
    async fn issue_tokens(
        &self,
        client: &Client,
        grant: &Grant,
        nonce: Option<&str>,
        scope: &Scope,
        new_refresh: bool,
    ) -> Result<TokenResponse, OAuthError> {
        let sub = self.pairwise.subject(client, &grant.account_id);
        let mut claims =
            self.access_claims(sub.clone(), client.client_id.as_str(), scope.to_string());
        claims.auth_time = Some(grant.auth_time.0);
        claims.acr = Some(grant.acr.clone());
        claims.amr = Some(grant.amr.clone());
        claims.gid = Some(grant.grant_id.clone());
        if let Some(r) = &grant.representation {
            // RFC 8693 §4.1: the organization is the subject; the citizen acts.
            claims.sub = r.org_id.clone();
            claims.act = Some(serde_json::json!({ "sub": sub }));
            claims.authorization_details = Some(r.authorization_details());
        }
        let access_token = self.sign_access_token(&claims)?;
        let id_token = if scope.contains("openid") {
            Some(
                self.id_token(client, grant, &sub, nonce, Some(&access_token))
                    .await?,
            )
        } else {
            None
        };
        let refresh_token = if grant.offline && new_refresh {
            let token = Secret::generate();
            let now = self.clock.now();
            let expires = now
                .plus(self.settings.tokens.refresh_token_idle_ttl.as_secs())
                .min(grant.expires_at);
            grants::insert_refresh(&self.db, &token.hash(), &grant.grant_id, now, expires).await?;
            Some(token.expose().to_owned())
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.tokens.access_token_ttl.as_secs(),
            scope: scope.to_string(),
            id_token,
            refresh_token,
            issued_token_type: None,
        })
    }

    /// Signs an ID token for `client` (OIDC Core §2, §3.1.3.6, §5.5).
    async fn id_token(
        &self,
        client: &Client,
        grant: &Grant,
        sub: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, OAuthError> {
        let alg = Self::id_token_alg(client);
        let now = self.clock.now();
        let mut extra = BTreeMap::new();
        if !grant.claims.id_token.is_empty() {
            let released = self
                .user_claims(
                    &grant.account_id,
                    &grant.scope,
                    grant.claims.id_token.keys().map(String::as_str),
                    false,
                )
                .await?;
            extra.extend(released);
        }
        if let Some(vc) = self
            .verified_claims(
                client.client_id.as_str(),
                &grant.account_id,
                &grant.claims.verified_id_token,
            )
            .await?
        {
            extra.insert("verified_claims".into(), vc);
        }
        if let Some(r) = &grant.representation {
            extra.insert(
                "representation".into(),
                serde_json::json!({
                    "organization": { "id": r.org_id, "name": r.org_name },
                    "powers": r.powers,
                    "mandate": r.mandate,
                }),
            );
        }
        let claims = IdTokenClaims {
            iss: &self.settings.issuer,
            sub,
            aud: client.client_id.as_str(),
            exp: now.plus(self.settings.tokens.id_token_ttl.as_secs()).0,
            iat: now.0,
            auth_time: grant.auth_time.0,
            nonce,
            acr: &grant.acr,
            amr: &grant.amr,
            azp: client.client_id.as_str(),
            sid: grant.sid.as_deref(),
            at_hash: access_token.map(|t| alg.left_half_hash(t.as_bytes())),
            extra,
        };
        Ok(self.keys.sign(alg, "JWT", &claims)?)
    }

    async fn refresh(
        &self,
        client: &Client,
        params: &mut Params,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::RefreshToken)?;
        let presented = params
            .take("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let narrowed = match params.take("scope") {
            None => None,
            Some(s) => Some(Scope::parse(&s).map_err(|e| OAuthError::new("invalid_scope", e))?),
        };
        let successor = Secret::generate();
        let now = self.clock.now();
        let used = grants::rotate_refresh(
            &self.db,
            client.client_id.as_str(),
            &SecretHash::of(&presented),
            &successor.hash(),
            now,
            self.settings.tokens.refresh_token_idle_ttl.as_secs(),
        )
        .await?;
        let grant = match used {
            RefreshUse::Rotated(g) => *g,
            RefreshUse::Reused(grant_id) => {
                grants::revoke(&self.db, &grant_id, now).await?;
                tracing::warn!(client_id = %client.client_id, grant_id, "refresh token reused; token family revoked");
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; every token of this grant is revoked",
                ));
            }
            RefreshUse::Expired => {
                return Err(OAuthError::invalid_grant(
                    "the refresh token has expired or been revoked",
                ));
            }
            RefreshUse::Unknown => {
                return Err(OAuthError::invalid_grant("the refresh token is invalid"));
            }
        };
        // A mandate revoked or expired after sign-in stops working here.
        self.require_mandate(&grant).await?;
        let scope = match narrowed {
            Some(s) if !s.is_subset(&grant.scope) => {
                return Err(OAuthError::new(
                    "invalid_scope",
                    "a refresh can only narrow the granted scope",
                ));
            }
            Some(s) => s,
            None => grant.scope.clone(),
        };
        let mut response = self
            .issue_tokens(client, &grant, None, &scope, false)
            .await?;
        response.refresh_token = Some(successor.expose().to_owned());
        Ok(response)
    }

    /// RFC 7662: the state of a token, for an authenticated confidential client.
    ///
    /// # Errors
    /// `invalid_client`, or `invalid_request` without a token.
    pub async fn introspect(
        &self,
        mut params: Params,
        creds: &ClientCredentials,
    ) -> Result<serde_json::Value, OAuthError> {
        let client = self
            .authenticate_client(creds, &self.endpoints.introspection)
            .await?;
        if client.metadata.token_endpoint_auth_method == AuthMethod::None {
            return Err(OAuthError::invalid_client(
                "public clients may not introspect tokens",
            ));
        }
        let token = params
            .take("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        if let Ok(claims) = self.verify_access_token(&token).await {
            let mut out =
                serde_json::to_value(&claims).map_err(|e| OAuthError::Internal(e.to_string()))?;
            if let Some(map) = out.as_object_mut() {
                map.remove("gid");
                map.insert("active".into(), true.into());
                map.insert("token_type".into(), "Bearer".into());
            }
            return Ok(out);
        }
        if let Some((grant, used, expires)) =
            grants::refresh_grant(&self.db, &SecretHash::of(&token)).await?
        {
            let now = self.clock.now();
            if grant.client_id == client.client_id.as_str()
                && !used
                && now < expires
                && grant.is_active(now)
            {
                let owner = self.clients.get(&grant.client_id).await?;
                let sub = owner
                    .map(|c| self.pairwise.subject(&c, &grant.account_id))
                    .unwrap_or_default();
                return Ok(serde_json::json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "client_id": grant.client_id,
                    "scope": grant.scope.to_string(),
                    "sub": sub,
                    "iss": self.settings.issuer,
                    "exp": expires.0,
                }));
            }
        }
        Ok(serde_json::json!({ "active": false }))
    }

    /// RFC 7009: revokes a token of the calling client. A refresh token
    /// revokes its whole grant (§2.1: the access tokens of the same grant go
    /// too); an access token is revoked alone. Unknown tokens, and tokens of
    /// other clients, are answered the same way and left alone (§2.2).
    ///
    /// # Errors
    /// `invalid_client`, or `invalid_request` without a token.
    pub async fn revoke(
        &self,
        mut params: Params,
        creds: &ClientCredentials,
    ) -> Result<(), OAuthError> {
        let client = self
            .authenticate_client(creds, &self.endpoints.revocation)
            .await?;
        let token = params
            .take("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        if let Some(hint) = params.get("token_type_hint")
            && hint != "access_token"
            && hint != "refresh_token"
        {
            return Err(OAuthError::new(
                "unsupported_token_type",
                "token_type_hint must be access_token or refresh_token",
            ));
        }
        if let Some((grant, _, _)) =
            grants::refresh_grant(&self.db, &SecretHash::of(&token)).await?
        {
            if grant.client_id == client.client_id.as_str() {
                grants::revoke(&self.db, &grant.grant_id, self.clock.now()).await?;
            }
            return Ok(());
        }
        if let Ok(claims) = self.verify_access_token(&token).await
            && claims.client_id == client.client_id.as_str()
        {
            self.revoke_access_token(&claims).await?;
        }
        Ok(())
    }
}

impl Provider {
    /// RFC 8693 token exchange: a service that holds an access token (as its
    /// client, or as its audience) gets one for a downstream service the
    /// operator allowed it to call (`may_act`). The new token keeps the
    /// subject, can only narrow scope and powers, nests `act` to record the
    /// chain, never outlives the original, and stays tied to the original
    /// grant (revoking it revokes every exchanged token).
    async fn exchange(
        &self,
        client: &Client,
        params: &mut Params,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::TokenExchange)?;
        if params.get("actor_token").is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token is not supported; the authenticated client is the actor",
            ));
        }
        let token = params
            .take("subject_token")
            .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
        if params.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
            return Err(OAuthError::invalid_request(
                "subject_token_type must be an access token",
            ));
        }
        if let Some(t) = params.get("requested_token_type")
            && t != ACCESS_TOKEN_TYPE
        {
            return Err(OAuthError::invalid_request(
                "only access tokens can be requested",
            ));
        }
        // RFC 8707 resource or RFC 8693 audience: the downstream service.
        let target = params
            .take("resource")
            .or_else(|| params.take("audience"))
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_target",
                    "name the downstream service (audience or resource)",
                )
            })?;
        if !self
            .clients
            .may_exchange(client.client_id.as_str(), &target)
            .await?
        {
            return Err(OAuthError::new(
                "invalid_target",
                "this client may not exchange tokens for that audience",
            ));
        }
        let subject = self.verify_access_token(&token).await.map_err(|_| {
            OAuthError::invalid_grant("subject_token is not a valid Civitas access token")
        })?;
        // Only the token's holder may exchange it: its client, or its audience.
        if subject.client_id != client.client_id.as_str()
            && subject.aud != client.client_id.as_str()
        {
            return Err(OAuthError::invalid_grant(
                "subject_token was not issued to or for this client",
            ));
        }
        let held = Scope::parse(&subject.scope).unwrap_or_default();
        let scope = match params.take("scope") {
            None => held.clone(),
            Some(s) => Scope::parse(&s).map_err(|e| OAuthError::new("invalid_scope", e))?,
        };
        if !scope.is_subset(&held) {
            return Err(OAuthError::new(
                "invalid_scope",
                "an exchange can only narrow the scope",
            ));
        }
        let details = match (
            &subject.authorization_details,
            params.get("authorization_details"),
        ) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(OAuthError::new(
                    "invalid_authorization_details",
                    "the subject token carries no powers to narrow",
                ));
            }
            (Some(held), requested) => {
                let mut entry = held.get(0).cloned().unwrap_or_default();
                if let Some(raw) = requested {
                    let wanted = super::representation::parse_request(Some(raw), false)
                        .map_err(|e| OAuthError::new("invalid_authorization_details", e))?
                        .unwrap_or_default();
                    let have: Vec<String> = entry["powers"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let all = have.iter().any(|h| h == crate::mandates::ALL_POWERS);
                    if wanted.is_empty() || !(all || wanted.iter().all(|w| have.contains(w))) {
                        return Err(OAuthError::new(
                            "invalid_authorization_details",
                            "an exchange can only narrow the powers",
                        ));
                    }
                    entry["powers"] = serde_json::json!(wanted);
                }
                Some(serde_json::json!([entry]))
            }
        };
        // The mandate behind the token must still hold.
        let grant = match &subject.gid {
            Some(gid) => grants::get(&self.db, gid).await?,
            None => None,
        };
        if let Some(grant) = &grant {
            self.require_mandate(grant).await?;
        }
        let mut event = Event::by(
            Kind::TokenExchanged,
            Actor::Client(client.client_id.to_string()),
        )
        .client(client.client_id.as_str())
        .with("audience", target.as_str())
        .with("subject_client", subject.client_id.as_str())
        .with("scope", scope.to_string());
        if let Some(grant) = &grant {
            event = event.account(&grant.account_id);
        }
        crate::audit::record_alone(&self.db, &event, self.clock.now()).await?;
        let mut claims = self.access_claims(
            subject.sub.clone(),
            client.client_id.as_str(),
            scope.to_string(),
        );
        claims.aud = target;
        claims.exp = claims.exp.min(subject.exp);
        claims.auth_time = subject.auth_time;
        claims.acr = subject.acr.clone();
        claims.amr = subject.amr.clone();
        claims.gid = subject.gid.clone();
        claims.authorization_details = details;
        // RFC 8693 §4.1: the client acts now; earlier actors nest inside.
        let mut act = serde_json::json!({ "sub": client.client_id.as_str() });
        if let Some(prior) = subject.act {
            act["act"] = prior;
        }
        claims.act = Some(act);
        let expires_in = u64::try_from(claims.exp - claims.iat).unwrap_or(0);
        Ok(TokenResponse {
            access_token: self.sign_access_token(&claims)?,
            token_type: "Bearer",
            expires_in,
            scope: scope.to_string(),
            id_token: None,
            refresh_token: None,
            issued_token_type: Some(ACCESS_TOKEN_TYPE),
        })
    }
}
