//! The OP browser session (single sign-on) and the authenticator interface.
//!
//! An authenticator (the passkey ceremony, later eID re-proofing) proves who
//! the citizen is and hands an [`Authentication`] to [`Sessions::establish`],
//! which always creates a new session with a new id (no session fixation)
//! and ends the one it replaces. The browser holds only a random 256-bit
//! cookie value; the session lives in the ephemeral store under the hash of
//! that value, so any instance can read it and a dump of the store reveals no
//! usable cookie.
//!
//! A session ends when idle for `sessions.idle_timeout` (`idle_timeout_high`
//! at level of assurance high), when older than
//! `sessions.absolute_timeout`, at logout, or when its account is locked or
//! erased.
//!
//! Sessions are keyed by cookie hash, so the store cannot list an account's
//! sessions. Locking an account instead writes a marker, `locked:<account>`
//! in the session namespace, holding the time of the lock, for as long as
//! any session may live (`absolute_timeout`). [`Sessions::current`] reads
//! it with the session and ends a session that began at or before that
//! time, on every instance at once (they share the store). The cost is one
//! more read of the ephemeral store per session load (in process, a shard
//! lock; with Redis, one round trip). The marker and the sessions live in
//! the same store, so they are lost together or not at all. It stays after
//! an unlock: sessions from before the lock never come back, and sessions
//! begun after it are not affected (one begun in the very second of the lock
//! ends too).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::accounts::AccountId;
use crate::clock::{SharedClock, UnixTime};
use crate::config::SessionSettings;
use crate::ephemeral::{Cache, Ephemeral as _, EphemeralError, Key, Namespace};
use crate::secrets::{Secret, SecretHash, random_token};

/// Authentication Method Reference values (RFC 8176) Civitas records.
pub mod amr {
    /// User presence and verification on the authenticator (biometric or PIN).
    pub const USER: &str = "user";
    /// Multiple factors (possession plus verification).
    pub const MFA: &str = "mfa";
    /// Proof of possession of a hardware-secured key (device-bound passkey).
    pub const HWK: &str = "hwk";
    /// Proof of possession of a software-secured key (synced passkey).
    pub const SWK: &str = "swk";
}

/// What an authenticator proved: the contract between a sign-in method and
/// the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// Who signed in.
    pub account_id: AccountId,
    /// How (RFC 8176 values).
    pub amr: Vec<String>,
    /// The level of assurance achieved.
    pub acr: String,
    /// The passkey that signed in (its credential id), if a passkey did.
    pub credential: Option<String>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Public session id, the `sid` claim (OIDC Front/Back-Channel Logout).
    pub sid: String,
    /// Who is signed in.
    pub account_id: AccountId,
    /// When the citizen authenticated (the `auth_time` claim).
    pub auth_time: UnixTime,
    /// How they authenticated.
    pub amr: Vec<String>,
    /// The level of assurance of that authentication.
    pub acr: String,
    /// When the session began.
    pub created_at: UnixTime,
    /// When it was last used.
    pub last_seen: UnixTime,
    /// A recovery session: good only for registering a new passkey, never
    /// for signing in to a service. Its `acr` is what the recovery proved
    /// (low for a recovery code), the ceiling of the passkey it registers.
    #[serde(default)]
    pub restricted: bool,
    /// The passkey this session was signed in with, if any: an eID proof
    /// in this session raises that passkey's ceiling.
    #[serde(default)]
    pub credential: Option<String>,
}

/// The sessions, in the ephemeral store.
#[derive(Debug, Clone)]
pub struct Sessions {
    cache: Cache,
    clock: SharedClock,
    settings: SessionSettings,
}

/// A session is re-written (its idle timer restarted) at most this often.
const TOUCH_EVERY: u64 = 60;

fn key(cookie: &str) -> Key {
    Key::new(Namespace::Session, SecretHash::of(cookie).as_str())
}

/// The marker that ends an account's sessions begun at or before a time.
fn ended_key(account: &AccountId) -> Key {
    Key::new(Namespace::Session, format!("locked:{}", account.as_str()))
}

impl Sessions {
    /// Sessions in `cache`.
    #[must_use]
    pub fn new(cache: Cache, clock: SharedClock, settings: SessionSettings) -> Self {
        Self {
            cache,
            clock,
            settings,
        }
    }

    /// Starts a new session for `auth`, ending `previous` (the cookie the
    /// browser presented, if any). Returns the session and the new cookie value.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn establish(
        &self,
        auth: Authentication,
        previous: Option<&str>,
    ) -> Result<(Session, Secret), EphemeralError> {
        if let Some(old) = previous {
            self.cache.delete(&key(old)).await?;
        }
        let now = self.clock.now();
        let session = Session {
            sid: random_token(16),
            account_id: auth.account_id,
            auth_time: now,
            amr: auth.amr,
            acr: auth.acr,
            created_at: now,
            last_seen: now,
            restricted: false,
            credential: auth.credential,
        };
        let cookie = Secret::generate();
        self.write(&cookie, &session).await?;
        tracing::info!(sid = %session.sid, "session established");
        Ok((session, cookie))
    }

    /// Starts a recovery session for `account_id` (after a recovery code or
    /// an eID recovery): it lets the citizen register a new passkey and
    /// nothing else. `proved` is the level the recovery proved (low for a
    /// recovery code), which the new passkey will never exceed.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn establish_recovery(
        &self,
        account_id: AccountId,
        proved: crate::assurance::Level,
        previous: Option<&str>,
    ) -> Result<(Session, Secret), EphemeralError> {
        let auth = Authentication {
            account_id,
            amr: vec!["rec".to_owned()],
            acr: proved.uri().to_owned(),
            credential: None,
        };
        let (mut session, cookie) = self.establish(auth, previous).await?;
        session.restricted = true;
        self.write(&cookie, &session).await?;
        Ok((session, cookie))
    }

    /// Raises the level of assurance of the session named by `cookie` (after
    /// identity proofing during the session); the session id stays.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn set_acr(
        &self,
        cookie: &str,
        acr: &str,
    ) -> Result<Option<Session>, EphemeralError> {
        let Some(mut session) = self.current(cookie).await? else {
            return Ok(None);
        };
        session.acr = acr.to_owned();
        self.write(&Secret::new(cookie), &session).await?;
        Ok(Some(session))
    }

    async fn write(&self, cookie: &Secret, session: &Session) -> Result<(), EphemeralError> {
        let bytes = serde_json::to_vec(session).unwrap_or_default();
        self.cache
            .put(&key(cookie.expose()), &bytes, self.ttl(session))
            .await
    }

    /// The idle timeout of `session`: shorter at level of assurance high.
    fn idle_timeout(&self, session: &Session) -> u64 {
        if session.acr == crate::assurance::Level::High.uri() {
            self.settings.idle_timeout_high.as_secs()
        } else {
            self.settings.idle_timeout.as_secs()
        }
    }

    /// Time to live: the idle timeout, but never past the absolute end.
    fn ttl(&self, session: &Session) -> Duration {
        let absolute_end = session
            .created_at
            .plus(self.settings.absolute_timeout.as_secs());
        let remaining = self.clock.now().secs_until(absolute_end);
        Duration::from_secs(self.idle_timeout(session).min(remaining).max(1))
    }

    /// The live session named by `cookie`, if any; restarts its idle timer.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn current(&self, cookie: &str) -> Result<Option<Session>, EphemeralError> {
        let Some(bytes) = self.cache.get(&key(cookie)).await? else {
            return Ok(None);
        };
        let Ok(mut session) = serde_json::from_slice::<Session>(&bytes) else {
            return Ok(None);
        };
        let now = self.clock.now();
        if session.last_seen.secs_until(now) >= self.idle_timeout(&session)
            || session.created_at.secs_until(now) >= self.settings.absolute_timeout.as_secs()
            || self.ended_for_account(&session).await?
        {
            self.cache.delete(&key(cookie)).await?;
            return Ok(None);
        }
        if session.last_seen.secs_until(now) >= TOUCH_EVERY {
            session.last_seen = now;
            self.write(&Secret::new(cookie), &session).await?;
        }
        Ok(Some(session))
    }

    /// Ends, on every instance, every session of `account` that began at or
    /// before `at` (an account locked or erased). See the module
    /// documentation for how and at what cost.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable; nothing is ended then.
    pub async fn end_all_of(
        &self,
        account: &AccountId,
        at: UnixTime,
    ) -> Result<(), EphemeralError> {
        self.cache
            .put(
                &ended_key(account),
                at.0.to_string().as_bytes(),
                Duration::from_secs(self.settings.absolute_timeout.as_secs().max(1)),
            )
            .await
    }

    /// Did [`Sessions::end_all_of`] end `session`?
    async fn ended_for_account(&self, session: &Session) -> Result<bool, EphemeralError> {
        let Some(bytes) = self.cache.get(&ended_key(&session.account_id)).await? else {
            return Ok(false);
        };
        let ended_at = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        Ok(session.created_at.0 <= ended_at)
    }

    /// Ends the session named by `cookie`; the session, if there was one.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn end(&self, cookie: &str) -> Result<Option<Session>, EphemeralError> {
        let taken = self.cache.take(&key(cookie)).await?;
        let session = taken.and_then(|b| serde_json::from_slice::<Session>(&b).ok());
        if let Some(s) = &session {
            tracing::info!(sid = %s.sid, "session ended");
        }
        Ok(session)
    }
}
