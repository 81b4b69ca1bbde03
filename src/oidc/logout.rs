//! Logout: RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
//!
//! Ending a session revokes the grants made in it (except `offline_access`
//! ones, which outlive sessions by definition) and queues one logout token
//! for every relying party that received tokens in it and registered a
//! `backchannel_logout_uri`. The queue is a database table, so a delivery
//! survives restarts, any instance may send it, and a relying party that is
//! briefly down gets it at a later attempt (exponential backoff, abandoned
//! after [`MAX_ATTEMPTS`], about an hour). Tokens are signed at each attempt, so they are
//! always fresh.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::{OAuthError, Provider, grants};
use crate::accounts::AccountId;
use crate::clients::Client;
use crate::clock::UnixTime;
use crate::ephemeral::{Ephemeral as _, Key, Namespace};
use crate::outbound::Use;
use crate::secrets::{Secret, random_token};
use crate::sessions::Session;

/// Attempts before a delivery is abandoned (about 68 minutes with the backoff).
pub const MAX_ATTEMPTS: i64 = 12;
/// Lifetime of a logout token.
const LOGOUT_TOKEN_TTL: u64 = 120;
/// How long a logout confirmation waits.
const CONFIRM_TTL: Duration = Duration::from_secs(600);

/// Where to go after logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostLogout {
    /// A registered post-logout redirect URI, with `state` added.
    pub redirect: Option<String>,
    /// The client's name, for the signed-out page.
    pub client_name: Option<String>,
}

/// What the end-session endpoint decides.
#[derive(Debug)]
pub enum LogoutOutcome {
    /// Ask the citizen to confirm (the logout may not come from a relying party they use).
    Confirm {
        /// Pending logout handle.
        handle: String,
        /// Anti-forgery token of the form.
        csrf: String,
        /// Who asked, if known.
        client_name: Option<String>,
        /// Where the browser goes after confirming, if anywhere.
        redirect: Option<String>,
    },
    /// Signed out (or was not signed in): redirect or show the signed-out page.
    Done(PostLogout),
    /// The request is malformed: an error page.
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct PendingLogout {
    csrf: String,
    after: PostLogout,
    sid: Option<String>,
}

fn add_state(uri: &str, state: Option<&str>) -> String {
    match state {
        None => uri.to_owned(),
        Some(s) => {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("state", s)
                .finish();
            format!("{uri}{}{q}", if uri.contains('?') { '&' } else { '?' })
        }
    }
}

impl Provider {
    /// RP-Initiated Logout §2: validates the request and decides whether to
    /// sign out now or ask first. `session` is the browser's session.
    pub async fn end_session(
        &self,
        query: &[u8],
        session: Option<&Session>,
    ) -> Result<LogoutOutcome, OAuthError> {
        let params = match super::params::Params::parse(query) {
            Ok(p) => p,
            Err(e) => return Ok(LogoutOutcome::Invalid(e.to_string())),
        };
        // §2: the hint may have expired; its signature must be valid and ours.
        let hint = match params.get("id_token_hint") {
            None => None,
            Some(t) => match self.keys.verify(t) {
                Ok((_, claims)) if claims["iss"] == self.settings.issuer.as_str() => Some(claims),
                _ => {
                    return Ok(LogoutOutcome::Invalid(
                        "id_token_hint is not an ID token issued by Civitas".into(),
                    ));
                }
            },
        };
        let hinted_client = hint
            .as_ref()
            .and_then(|c| c["aud"].as_str().map(str::to_owned));
        if let (Some(a), Some(b)) = (&hinted_client, params.get("client_id"))
            && a != b
        {
            return Ok(LogoutOutcome::Invalid(
                "client_id does not match the id_token_hint".into(),
            ));
        }
        let client_id = hinted_client.or_else(|| params.get("client_id").map(str::to_owned));
        let client = match &client_id {
            Some(id) => self.clients.get(id).await?,
            None => None,
        };
        // §3: redirect only to a URI registered exactly for that client.
        let redirect = match (params.get("post_logout_redirect_uri"), &client) {
            (Some(uri), Some(c))
                if c.metadata
                    .post_logout_redirect_uris
                    .iter()
                    .any(|r| r.as_str() == uri) =>
            {
                Some(add_state(uri, params.get("state")))
            }
            _ => None,
        };
        let after = PostLogout {
            redirect,
            client_name: client.as_ref().and_then(|c| c.metadata.client_name.clone()),
        };
        let Some(session) = session else {
            return Ok(LogoutOutcome::Done(after));
        };
        // A hint naming this very session shows the RP is the citizen's own:
        // no need to ask.
        let same_session = hint
            .as_ref()
            .is_some_and(|h| h["sid"].as_str() == Some(session.sid.as_str()));
        if same_session {
            return Ok(LogoutOutcome::Done(after));
        }
        let handle = random_token(24);
        let csrf = random_token(24);
        let client_name = after.client_name.clone();
        let redirect = after.redirect.clone();
        let pending = PendingLogout {
            csrf: csrf.clone(),
            after,
            sid: Some(session.sid.clone()),
        };
        let bytes =
            serde_json::to_vec(&pending).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.cache
            .put(
                &Key::new(Namespace::AuthRequest, format!("logout:{handle}")),
                &bytes,
                CONFIRM_TTL,
            )
            .await?;
        Ok(LogoutOutcome::Confirm {
            handle,
            csrf,
            client_name,
            redirect,
        })
    }

    /// The citizen confirmed the logout; where to go next, if the form is genuine.
    pub async fn confirm_logout(
        &self,
        handle: &str,
        csrf: &str,
    ) -> Result<Option<PostLogout>, OAuthError> {
        let Some(bytes) = self
            .cache
            .take(&Key::new(
                Namespace::AuthRequest,
                format!("logout:{handle}"),
            ))
            .await?
        else {
            return Ok(None);
        };
        let Ok(pending) = serde_json::from_slice::<PendingLogout>(&bytes) else {
            return Ok(None);
        };
        if !Secret::new(pending.csrf).matches(csrf) {
            return Ok(None);
        }
        let _ = pending.sid;
        Ok(Some(pending.after))
    }

    /// After a session ended: revokes its grants and queues back-channel
    /// logout for every relying party that received tokens in it.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn session_ended(&self, session: &Session) -> Result<(), OAuthError> {
        let now = self.clock.now();
        grants::revoke_session(&self.db, &session.sid, now).await?;
        for client_id in grants::take_session_clients(&self.db, &session.sid).await? {
            let Some(client) = self.clients.get(&client_id).await? else {
                continue;
            };
            let Some(uri) = &client.metadata.backchannel_logout_uri else {
                continue;
            };
            sqlx::query(
                "INSERT INTO logout_deliveries (delivery_id, client_id, uri, account_id, sid, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
            )
            .bind(random_token(16))
            .bind(client.client_id.as_str())
            .bind(uri)
            .bind(session.account_id.as_str())
            .bind(&session.sid)
            .bind(now.0)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }

    /// A logout token for `client` (Back-Channel Logout §2.4).
    fn logout_token(
        &self,
        client: &Client,
        account: &AccountId,
        sid: &str,
    ) -> Result<String, OAuthError> {
        let now = self.clock.now();
        let claims = serde_json::json!({
            "iss": self.settings.issuer,
            "sub": self.pairwise.subject(client, account),
            "aud": client.client_id.as_str(),
            "iat": now.0,
            "exp": now.plus(LOGOUT_TOKEN_TTL).0,
            "jti": random_token(16),
            "sid": sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        Ok(self
            .keys
            .sign(Self::id_token_alg(client), "logout+jwt", &claims)?)
    }

    /// Sends the back-channel logouts that are due, through the outbound
    /// fetcher (a URI on a refused address is never posted to); returns how
    /// many were delivered. Safe to run on every instance at once: each
    /// delivery is claimed with a conditional update before it is sent.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn deliver_logouts(&self) -> Result<usize, OAuthError> {
        let now = self.clock.now();
        let due = sqlx::query(
            "SELECT delivery_id, client_id, uri, account_id, sid, attempts, next_attempt_at FROM logout_deliveries \
             WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT 20",
        )
        .bind(now.0)
        .fetch_all(self.db.pool())
        .await?;
        let mut delivered = 0;
        for row in due {
            let id: String = row.try_get("delivery_id")?;
            let attempts: i64 = row.try_get("attempts")?;
            let next: i64 = row.try_get("next_attempt_at")?;
            // Claim: push the next attempt out so no other instance sends it meanwhile.
            let claimed = sqlx::query(
                "UPDATE logout_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
                 WHERE delivery_id = $1 AND next_attempt_at = $2 AND delivered_at IS NULL",
            )
            .bind(&id)
            .bind(next)
            .bind(now.plus(backoff_secs(attempts + 1)).0)
            .execute(self.db.pool())
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let client_id: String = row.try_get("client_id")?;
            let uri: String = row.try_get("uri")?;
            let account = AccountId::new(row.try_get::<String, _>("account_id")?);
            let sid: String = row.try_get("sid")?;
            let result = match self.clients.get(&client_id).await? {
                None => Err("the client no longer exists".to_owned()),
                Some(client) => {
                    let token = self.logout_token(&client, &account, &sid)?;
                    // §2.8: 200 (or 204) means the RP logged the session out.
                    self.outbound
                        .post_form(&uri, &[("logout_token", &token)], Use::BackchannelLogout)
                        .await
                        .map_err(|e| format!("not delivered: {}", e.reason()))
                }
            };
            match result {
                Ok(()) => {
                    sqlx::query("UPDATE logout_deliveries SET delivered_at = $2, last_error = NULL WHERE delivery_id = $1")
                        .bind(&id)
                        .bind(self.clock.now().0)
                        .execute(self.db.pool())
                        .await?;
                    delivered += 1;
                }
                Err(e) => {
                    let abandon = attempts + 1 >= MAX_ATTEMPTS;
                    tracing::warn!(client_id, attempt = attempts + 1, abandon, error = %e, "back-channel logout not delivered");
                    sqlx::query(
                        "UPDATE logout_deliveries SET last_error = $2, abandoned_at = $3 WHERE delivery_id = $1",
                    )
                    .bind(&id)
                    .bind(e)
                    .bind(abandon.then_some(self.clock.now().0))
                    .execute(self.db.pool())
                    .await?;
                }
            }
        }
        Ok(delivered)
    }
}

/// Seconds before attempt `n` (1-based) is retried: 1, 2, 4 … capped at an hour.
fn backoff_secs(n: i64) -> u64 {
    1u64 << u32::try_from(n.clamp(0, 12)).unwrap_or(12).min(12)
}

/// When a delivery's next attempt is due (for tests and monitoring).
#[must_use]
pub fn next_attempt(attempts: i64, now: UnixTime) -> UnixTime {
    now.plus(backoff_secs(attempts))
}
