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
//! sessions. Ending them (a lock, an unlock, an erasure) instead writes a
//! marker, `locked:<account>` in the session namespace, that says which of
//! the account's sessions are ended: those begun before a time
//! ([`Sessions::end_begun_before`]), or all of them, whenever begun
//! ([`Sessions::end_all_of`], while the account is locked or after it was
//! erased). [`Sessions::current`] reads it with the session, on every
//! instance at once (they share the store). The cost is one more read of
//! the ephemeral store per session load (in process, a shard lock; with
//! Redis, one round trip). The marker and the sessions live in the same
//! store, so they are lost together or not at all.
//!
//! "All" is what makes a lock hold against a sign-in that was in flight
//! when it committed (it passed its `locked_at` check before, and calls
//! [`Sessions::establish`] after): its session is ended at its first load,
//! however late it was established, without a database read per request.
//! An unlock replaces "all" with "before the unlock", so sessions from
//! before and during the lock stay ended and those begun after it live.
//! During the lock the marker compares with no clock at all; at an unlock
//! the boundary is the unlocking instance's second, so with clocks `s`
//! seconds apart a sign-in on a slow instance in the first `s` seconds
//! after the unlock is ended too (the citizen signs in again): no grace is
//! added, because one would end more sessions, not fewer.
//!
//! A session is written once, when established; later writes replace it
//! only if it is still there: the touch that restarts its idle timer with
//! [`Ephemeral::put_existing`], and [`Sessions::raise_acr`] by taking it
//! before writing it under a new cookie. So a request that read it before a
//! sign-out cannot bring it back after.
//!
//! A marker lives for [`MARKER_LIFETIME_MARGIN`] longer than the absolute
//! timeout, so it outlives every session it ends: those begun before its
//! time, and those of in-flight sign-ins, begun within seconds of the lock.
//! An account locked for longer loses its marker, but then no session of it
//! from before the lock or from its in-flight sign-ins is still alive, and
//! the database check at sign-in refuses every new one.
//!
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::accounts::AccountId;
use crate::clock::{SharedClock, UnixTime};
use crate::config::SessionSettings;
use crate::ephemeral::{Cache, Ephemeral, EphemeralError, Key, Namespace};
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

/// The marker that ends an account's sessions (see the module documentation).
fn ended_key(account: &AccountId) -> Key {
    Key::new(Namespace::Session, format!("locked:{}", account.as_str()))
}

/// How much longer than the absolute timeout a marker lives: more than a
/// sign-in takes from its `locked_at` check to [`Sessions::establish`], plus
/// any clock skew between instances.
pub const MARKER_LIFETIME_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Which sessions of an account a marker ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Those begun before this time (`before:<unix seconds>`).
    Before(i64),
    /// Every one, whenever begun (`all`).
    All,
}

impl Ended {
    fn encode(self) -> String {
        match self {
            Self::Before(t) => format!("before:{t}"),
            Self::All => "all".to_owned(),
        }
    }

    /// The stored marker. A bare number `T` is the earlier format, "begun
    /// at or before `T`"; anything unreadable ends every session.
    fn decode(bytes: &[u8]) -> Self {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let before = match text.strip_prefix("before:") {
            Some(t) => t.parse::<i64>().ok(),
            None => text.parse::<i64>().ok().map(|t| t.saturating_add(1)),
        };
        before.map_or(Self::All, Self::Before)
    }

    fn ends(self, created_at: UnixTime) -> bool {
        match self {
            Self::Before(t) => created_at.0 < t,
            Self::All => true,
        }
    }
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
    /// identity proofing during the session) and gives it a new cookie: a
    /// privilege change rotates the session identifier's secret, so a cookie
    /// copied before the proof never carries the higher level. The session
    /// id (`sid`, what relying parties know) stays. The old cookie is taken
    /// atomically: `None` if there was no live session, also if it ended
    /// while this ran (it is not brought back).
    ///
    /// # Errors
    /// If the ephemeral store is unavailable.
    pub async fn raise_acr(
        &self,
        cookie: &str,
        acr: &str,
    ) -> Result<Option<(Session, Secret)>, EphemeralError> {
        if self.current(cookie).await?.is_none() {
            return Ok(None);
        }
        let Some(bytes) = self.cache.take(&key(cookie)).await? else {
            return Ok(None);
        };
        let Ok(mut session) = serde_json::from_slice::<Session>(&bytes) else {
            return Ok(None);
        };
        session.acr = acr.to_owned();
        let rotated = Secret::generate();
        self.write(&rotated, &session).await?;
        Ok(Some((session, rotated)))
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
        let Some(session) = self.load(cookie).await? else {
            return Ok(None);
        };
        self.touch(cookie, session).await
    }

    /// The live session named by `cookie`, as stored; one that idled out,
    /// outlived the absolute timeout or was ended by its account's marker
    /// is deleted.
    async fn load(&self, cookie: &str) -> Result<Option<Session>, EphemeralError> {
        let Some(bytes) = self.cache.get(&key(cookie)).await? else {
            return Ok(None);
        };
        let Ok(session) = serde_json::from_slice::<Session>(&bytes) else {
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
        Ok(Some(session))
    }

    /// Restarts the idle timer of `session`, loaded from `cookie`, if it was
    /// last restarted [`TOUCH_EVERY`] seconds ago or more; `None` if the
    /// session ended meanwhile.
    async fn touch(
        &self,
        cookie: &str,
        mut session: Session,
    ) -> Result<Option<Session>, EphemeralError> {
        let now = self.clock.now();
        if session.last_seen.secs_until(now) >= TOUCH_EVERY {
            session.last_seen = now;
            if !self.rewrite(cookie, &session).await? {
                return Ok(None);
            }
        }
        Ok(Some(session))
    }

    /// Writes `session` back under `cookie` only if it is still there
    /// ([`Ephemeral::put_existing`]); `false` if it ended meanwhile (a
    /// sign-out, a replacing sign-in, an expiry), which then stays ended.
    async fn rewrite(&self, cookie: &str, session: &Session) -> Result<bool, EphemeralError> {
        let bytes = serde_json::to_vec(session).unwrap_or_default();
        self.cache
            .put_existing(&key(cookie), &bytes, self.ttl(session))
            .await
    }

    /// Ends, on every instance, every session of `account` that began
    /// before `at` (an unlock: sessions from before and during the lock stay
    /// ended; or the first step of a lock or an erasure, before its
    /// transaction). Replaces the account's marker. See the module
    /// documentation for how and at what cost.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable; nothing is ended then.
    pub async fn end_begun_before(
        &self,
        account: &AccountId,
        at: UnixTime,
    ) -> Result<(), EphemeralError> {
        self.mark(account, Ended::Before(at.0)).await
    }

    /// Ends, on every instance, every session of `account`, whenever begun
    /// (before, or by a sign-in that was in flight), until an unlock
    /// replaces the marker with [`Sessions::end_begun_before`]. For a locked
    /// or erased account only: written for an account that can sign in, it
    /// would end each of its sessions at once.
    ///
    /// # Errors
    /// If the ephemeral store is unavailable; nothing is ended then.
    pub async fn end_all_of(&self, account: &AccountId) -> Result<(), EphemeralError> {
        self.mark(account, Ended::All).await
    }

    async fn mark(&self, account: &AccountId, ended: Ended) -> Result<(), EphemeralError> {
        let lifetime = self.settings.absolute_timeout + MARKER_LIFETIME_MARGIN;
        self.cache
            .put(&ended_key(account), ended.encode().as_bytes(), lifetime)
            .await
    }

    /// Did a marker end `session`?
    async fn ended_for_account(&self, session: &Session) -> Result<bool, EphemeralError> {
        let Some(bytes) = self.cache.get(&ended_key(&session.account_id)).await? else {
            return Ok(false);
        };
        Ok(Ended::decode(&bytes).ends(session.created_at))
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

#[cfg(test)]
mod tests;
