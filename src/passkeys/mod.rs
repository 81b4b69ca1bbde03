//! Passkeys: WebAuthn registration and usernameless sign-in (webauthn-rs).
//!
//! ```text
//! browser                    Civitas                         store
//!  | begin (POST)  ------->   | challenge + state ------->   | ephemeral, 5 min, taken once
//!  | <------ options          |                              |
//!  | navigator.credentials    |                              |
//!  | finish (POST) ------->   | take state, verify, record   | database (one transaction
//!  | <------ next step        |                              |  for a new account)
//! ```
//!
//! Invariants, written beside the code that depends on them:
//! - The relying-party id and origin come from the issuer URL. Changing the
//!   issuer's host invalidates every credential.
//! - Credentials are bound to the account's user handle (a random UUID),
//!   never to the email or display name.
//! - User verification is required in every ceremony; ceremony state lives
//!   in the ephemeral store and is taken once, so a ceremony started on one
//!   instance can finish on another, and a replayed response finds no state.
//! - A new account exists only together with its first passkey (one
//!   transaction): no account without a passkey is ever left behind.

mod store;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Webauthn, WebauthnBuilder,
};

pub use store::PasskeyInfo;

use crate::accounts::{Account, AccountId};
use crate::assurance::Level;
use crate::audit::{Event, Kind};
use crate::clock::SharedClock;
use crate::ephemeral::{Cache, Ephemeral as _, EphemeralError, Key, Namespace};
use crate::secrets::random_token;
use crate::sessions::amr;
use crate::store::{Database, StoreError};

/// Why a passkey operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The ceremony is unknown, expired or already finished (a replay).
    #[error("this sign-in attempt has expired or was already used; please try again")]
    Expired,
    /// The authenticator's response does not verify (wrong origin, bad
    /// signature, no user verification, unknown credential …).
    #[error("the passkey could not be verified: {0}")]
    Rejected(String),
    /// The last passkey of an account without recovery codes cannot go.
    #[error("this is your only way to sign in; set up recovery codes or add another passkey first")]
    LastPasskey,
    /// No such passkey on this account.
    #[error("no such passkey")]
    NotFound,
    /// The account is locked by the operator: it cannot sign in.
    #[error("this account is locked; contact the service desk")]
    Locked,
    /// The issuer URL cannot serve as a WebAuthn relying party.
    #[error("WebAuthn configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ephemeral store failed.
    #[error(transparent)]
    Cache(#[from] EphemeralError),
}

/// What a registration ceremony is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Purpose {
    /// Create an account with this passkey.
    NewAccount {
        /// The name to greet the citizen with.
        display_name: String,
        /// Contact address (verified later).
        email: Option<String>,
    },
    /// Add a passkey to an existing account.
    AddTo(AccountId),
}

#[derive(Serialize, Deserialize)]
struct RegistrationCeremony {
    purpose: Purpose,
    user_handle: Uuid,
    state: PasskeyRegistration,
}

/// The outcome of a registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The account (new or existing).
    pub account: Account,
    /// Was the account created by this ceremony?
    pub new_account: bool,
    /// The new credential's id.
    pub credential_id: String,
    /// Is the new passkey bound to one device?
    pub device_bound: bool,
    /// The highest level it may sign in at: the level of the context that
    /// enrolled it (low for a new account).
    pub max_level: Level,
}

/// The outcome of a sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub account_id: AccountId,
    /// RFC 8176 methods: `user`, `mfa`, and `hwk` (device-bound) or `swk` (synced).
    pub amr: Vec<String>,
    /// Was the passkey device-bound?
    pub device_bound: bool,
    /// The level of assurance the sign-in reached (with the account's eID,
    /// never above the passkey's own ceiling).
    pub acr: Level,
    /// The credential that signed in (the session remembers it, so that an
    /// eID proof in that session can raise this passkey's ceiling).
    pub credential_id: String,
}

/// The RFC 8176 methods of a user-verified passkey.
#[must_use]
pub fn amr_for(device_bound: bool) -> Vec<String> {
    vec![
        amr::USER.to_owned(),
        amr::MFA.to_owned(),
        if device_bound { amr::HWK } else { amr::SWK }.to_owned(),
    ]
}

fn ceremony_key(id: &str) -> Key {
    Key::new(Namespace::Challenge, id)
}

/// Passkey ceremonies and credentials.
#[derive(Clone)]
pub struct Passkeys {
    webauthn: Arc<Webauthn>,
    ttl: Duration,
    db: Database,
    cache: Cache,
    clock: SharedClock,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys").finish_non_exhaustive()
    }
}

impl Passkeys {
    /// The relying party of `issuer`: its host is the RP id, its origin the
    /// only accepted origin.
    ///
    /// # Errors
    /// If the issuer URL cannot be a WebAuthn relying party.
    pub fn new(
        issuer: &str,
        ttl: Duration,
        db: Database,
        cache: Cache,
        clock: SharedClock,
    ) -> Result<Self, PasskeyError> {
        let origin = Url::parse(issuer).map_err(|e| PasskeyError::Config(e.to_string()))?;
        let rp_id = origin
            .host_str()
            .ok_or_else(|| PasskeyError::Config("the issuer has no host".into()))?
            .to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("Civitas").timeout(ttl).build())
            .map_err(|e| PasskeyError::Config(e.to_string()))?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            ttl,
            db,
            cache,
            clock,
        })
    }

    /// Starts a registration; returns the ceremony id and the options for
    /// `navigator.credentials.create()`.
    ///
    /// # Errors
    /// If the stores fail.
    pub async fn begin_registration(
        &self,
        purpose: Purpose,
    ) -> Result<(String, serde_json::Value), PasskeyError> {
        let (user_handle, name, display, exclude) = match &purpose {
            Purpose::NewAccount {
                display_name,
                email,
            } => (
                Uuid::new_v4(),
                email.clone().unwrap_or_else(|| display_name.clone()),
                display_name.clone(),
                None,
            ),
            Purpose::AddTo(account) => {
                let (handle, acc) = store::user_handle(&self.db, account)
                    .await?
                    .ok_or(PasskeyError::NotFound)?;
                let existing = store::credential_ids(&self.db, account).await?;
                (
                    handle,
                    acc.email
                        .clone()
                        .unwrap_or_else(|| acc.display_name.clone()),
                    acc.display_name,
                    Some(existing),
                )
            }
        };
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle, &name, &display, exclude)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let id = random_token(24);
        let ceremony = RegistrationCeremony {
            purpose,
            user_handle,
            state,
        };
        let bytes =
            serde_json::to_vec(&ceremony).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        self.cache
            .put(&ceremony_key(&format!("reg:{id}")), &bytes, self.ttl)
            .await?;
        let mut options =
            serde_json::to_value(&options).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        // Usernameless sign-in needs a discoverable credential: ask for one.
        if let Some(sel) = options["publicKey"]
            .get_mut("authenticatorSelection")
            .and_then(|v| v.as_object_mut())
        {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        Ok((id, options))
    }

    /// Finishes a registration: verifies the response and stores the passkey
    /// (with the new account, in one transaction, for [`Purpose::NewAccount`]).
    /// `acting` is the account of the browser's session, if any, and the
    /// level of that session: the new passkey never counts above it (a
    /// recovery session's level is what the recovery proved: low for a
    /// recovery code). A new account's first passkey counts at low.
    ///
    /// # Errors
    /// [`PasskeyError::Expired`] for an unknown or used ceremony,
    /// [`PasskeyError::Rejected`] for a response that does not verify.
    pub async fn finish_registration(
        &self,
        ceremony_id: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<&str>,
        acting: Option<(&AccountId, Level)>,
    ) -> Result<Registered, PasskeyError> {
        let bytes = self
            .cache
            .take(&ceremony_key(&format!("reg:{ceremony_id}")))
            .await?
            .ok_or(PasskeyError::Expired)?;
        let ceremony: RegistrationCeremony =
            serde_json::from_slice(&bytes).map_err(|_| PasskeyError::Expired)?;
        // A passkey is added to an account only by that account's session.
        let max_level = match (&ceremony.purpose, acting) {
            (Purpose::NewAccount { .. }, _) => Level::Low,
            (Purpose::AddTo(owner), Some((account, level))) if account == owner => level,
            (Purpose::AddTo(_), _) => {
                return Err(PasskeyError::Rejected(
                    "this ceremony belongs to another session".into(),
                ));
            }
        };
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &ceremony.state)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let record = store::NewPasskey::from_registration(
            &passkey,
            credential,
            name,
            self.clock.now(),
            max_level,
        )?;
        let device_bound = !record.backup_eligible;
        let (account, new_account) = match ceremony.purpose {
            Purpose::NewAccount {
                display_name,
                email,
            } => {
                let account = Account {
                    id: AccountId::generate(),
                    display_name,
                    email,
                    email_verified: false,
                    created_at: self.clock.now(),
                };
                let events = [
                    Event::citizen(Kind::AccountCreated, &account.id),
                    Event::citizen(Kind::PasskeyAdded, &account.id)
                        .with("device_bound", device_bound)
                        .with("max_level", max_level.alias()),
                ];
                store::create_account_with_passkey(
                    &self.db,
                    &account,
                    ceremony.user_handle,
                    &record,
                    &events,
                )
                .await?;
                (account, true)
            }
            Purpose::AddTo(account_id) => {
                let event = Event::citizen(Kind::PasskeyAdded, &account_id)
                    .with("device_bound", device_bound)
                    .with("max_level", max_level.alias());
                store::add_passkey(&self.db, &account_id, &record, &event).await?;
                let (_, account) = store::user_handle(&self.db, &account_id)
                    .await?
                    .ok_or(PasskeyError::NotFound)?;
                (account, false)
            }
        };
        Ok(Registered {
            account,
            new_account,
            credential_id: record.credential_id,
            device_bound,
            max_level,
        })
    }

    /// Starts a usernameless sign-in; the ceremony id and the options for
    /// `navigator.credentials.get()` (also used for conditional mediation).
    ///
    /// # Errors
    /// If the ephemeral store fails.
    pub async fn begin_signin(&self) -> Result<(String, serde_json::Value), PasskeyError> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let id = random_token(24);
        let bytes =
            serde_json::to_vec(&state).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        self.cache
            .put(&ceremony_key(&format!("auth:{id}")), &bytes, self.ttl)
            .await?;
        let options =
            serde_json::to_value(&options).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        Ok((id, options))
    }

    /// Finishes a sign-in: finds the credential by the user handle and id the
    /// authenticator returned, verifies the assertion (origin, challenge,
    /// signature, user verification, counter) and records its use.
    ///
    /// # Errors
    /// [`PasskeyError::Expired`], [`PasskeyError::Rejected`], or
    /// [`PasskeyError::Locked`] for a locked account.
    pub async fn finish_signin(
        &self,
        ceremony_id: &str,
        credential: &PublicKeyCredential,
        client: Option<&str>,
    ) -> Result<SignedIn, PasskeyError> {
        let bytes = self
            .cache
            .take(&ceremony_key(&format!("auth:{ceremony_id}")))
            .await?
            .ok_or(PasskeyError::Expired)?;
        let state: DiscoverableAuthentication =
            serde_json::from_slice(&bytes).map_err(|_| PasskeyError::Expired)?;
        let (user_handle, cred_id) = self
            .webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let cred_id = base64_url(cred_id);
        let store::Found {
            account_id,
            mut passkey,
            device_bound,
            locked,
            max_level,
        } = store::find_passkey(&self.db, &cred_id, user_handle)
            .await?
            .ok_or_else(|| {
                PasskeyError::Rejected("this passkey is not registered with Civitas".into())
            })?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        // Refused only after the assertion verified: only the passkey's
        // holder learns that the account is locked.
        if locked {
            return Err(PasskeyError::Locked);
        }
        passkey.update_credential(&result);
        let proofing = crate::eid::proofing_level(&self.db, &account_id).await?;
        let acr = Level::with_passkey(proofing, device_bound, max_level);
        let amr = amr_for(device_bound);
        let mut event = Event::citizen(Kind::SignIn, &account_id)
            .with("method", "passkey")
            .with("acr", acr.alias())
            .with("amr", amr.join(" "));
        if let Some(c) = client {
            event = event.client(c);
        }
        store::record_use(
            &self.db,
            &cred_id,
            &passkey,
            result.backup_state(),
            self.clock.now(),
            &event,
        )
        .await?;
        Ok(SignedIn {
            account_id,
            amr,
            device_bound,
            acr,
            credential_id: cred_id,
        })
    }

    /// Raises the ceiling of `account`'s passkey `credential_id` to `level`
    /// after an eID proof at that level in a session of that passkey; a
    /// passkey is never lowered. Whether it changed.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn raise_level(
        &self,
        account: &AccountId,
        credential_id: &str,
        level: Level,
    ) -> Result<bool, PasskeyError> {
        Ok(store::raise_level(&self.db, account, credential_id, level).await?)
    }

    /// The passkeys of an account, oldest first.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<PasskeyInfo>, PasskeyError> {
        Ok(store::list(&self.db, account).await?)
    }

    /// Renames a passkey of `account`.
    ///
    /// # Errors
    /// [`PasskeyError::NotFound`] if it is not this account's.
    pub async fn rename(
        &self,
        account: &AccountId,
        credential_id: &str,
        name: &str,
    ) -> Result<(), PasskeyError> {
        let name = clean_name(Some(name));
        if store::rename(&self.db, account, credential_id, &name).await? {
            Ok(())
        } else {
            Err(PasskeyError::NotFound)
        }
    }

    /// Removes a passkey of `account`, unless it is the last one and no
    /// recovery code is left.
    ///
    /// # Errors
    /// [`PasskeyError::LastPasskey`] or [`PasskeyError::NotFound`].
    pub async fn remove(
        &self,
        account: &AccountId,
        credential_id: &str,
    ) -> Result<(), PasskeyError> {
        store::remove(&self.db, account, credential_id, self.clock.now()).await
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A passkey name: trimmed, at most 60 characters, never empty.
fn clean_name(name: Option<&str>) -> String {
    let n: String = name
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect::<String>()
        .trim()
        .to_owned();
    if n.is_empty() {
        "Passkey".to_owned()
    } else {
        n
    }
}

/// Extracts the AAGUID from an attestation object (authData bytes 37..53,
/// when attested credential data is present).
fn aaguid(attestation_object: &[u8]) -> Option<String> {
    let value: serde_cbor_2::Value = serde_cbor_2::from_slice(attestation_object).ok()?;
    let serde_cbor_2::Value::Map(map) = value else {
        return None;
    };
    let auth_data = map.iter().find_map(|(k, v)| match (k, v) {
        (serde_cbor_2::Value::Text(t), serde_cbor_2::Value::Bytes(b)) if t == "authData" => Some(b),
        _ => None,
    })?;
    if auth_data.len() < 53 || auth_data[32] & 0x40 == 0 {
        return None;
    }
    Some(Uuid::from_slice(&auth_data[37..53]).ok()?.to_string())
}

pub use self::store::{best_reach, passkey_count};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name(Some("  Laptop\u{0}  ")), "Laptop");
        assert_eq!(clean_name(Some("")), "Passkey");
        assert_eq!(clean_name(None), "Passkey");
        assert_eq!(clean_name(Some(&"x".repeat(100))).len(), 60);
    }

    #[test]
    fn amr_says_how_the_key_is_held() {
        assert_eq!(amr_for(true), ["user", "mfa", "hwk"]);
        assert_eq!(amr_for(false), ["user", "mfa", "swk"]);
    }
}
