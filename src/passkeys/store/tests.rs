//! `record_use` driven directly, after real WebAuthn verification: the
//! interleaving of two sign-ins is chosen by the test, so the result does
//! not depend on scheduling (on SQLite; the HTTP tests in
//! `tests/api/passkey_races.rs` force the same interleaving on PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::Row as _;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Webauthn, WebauthnBuilder,
};

use super::{NewPasskey, create_account_with_passkey, record_use};
use crate::accounts::{Account, AccountId};
use crate::assurance::Level;
use crate::audit::{Event, Kind};
use crate::clock::UnixTime;
use crate::config::DatabaseSettings;
use crate::passkeys::{PasskeyError, base64_url};
use crate::store::Database;
use crate::testkit::authenticator::SoftAuthenticator;

const ORIGIN: &str = "http://localhost:8080";
const NOW: UnixTime = UnixTime(1_800_000_000);

struct Fixture {
    _dir: tempfile::TempDir,
    db: Database,
    webauthn: Webauthn,
    account: AccountId,
    stored: Passkey,
    credential_id: String,
}

/// An SQLite database with one account whose passkey is on `key`.
async fn fixture(key: &mut SoftAuthenticator) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let db = Database::connect(&url, &DatabaseSettings::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let origin = Url::parse(ORIGIN).unwrap();
    let webauthn = WebauthnBuilder::new("localhost", &origin)
        .unwrap()
        .build()
        .unwrap();
    let handle = Uuid::new_v4();
    let (options, state) = webauthn
        .start_passkey_registration(handle, "kai", "Kai", None)
        .unwrap();
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(key.create(&serde_json::to_value(&options).unwrap())).unwrap();
    let stored = webauthn
        .finish_passkey_registration(&response, &state)
        .unwrap();
    let account = Account {
        id: AccountId::generate(),
        display_name: "Kai".into(),
        email: None,
        email_verified: false,
        created_at: NOW,
    };
    let new = NewPasskey::from_registration(&stored, &response, None, NOW, Level::Low).unwrap();
    create_account_with_passkey(&db, &account, handle, &new, &[])
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        db,
        webauthn,
        account: account.id,
        credential_id: base64_url(stored.cred_id()),
        stored,
    }
}

impl Fixture {
    /// A sign-in answered by `key`, verified against the passkey as stored
    /// at the start: what `finish_signin` holds just before `record_use`.
    fn verified(&self, key: &mut SoftAuthenticator) -> (Passkey, bool) {
        let (options, state) = self.webauthn.start_discoverable_authentication().unwrap();
        let answer: PublicKeyCredential =
            serde_json::from_value(key.get(&serde_json::to_value(&options).unwrap())).unwrap();
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&answer, state, &self.stored)
            .unwrap();
        let mut passkey = self.stored.clone();
        passkey.update_credential(&result);
        (passkey, result.backup_state())
    }

    async fn record(&self, (passkey, backed_up): &(Passkey, bool)) -> Result<(), PasskeyError> {
        let event = Event::citizen(Kind::SignIn, &self.account).with("method", "passkey");
        record_use(
            &self.db,
            &self.credential_id,
            passkey,
            *backed_up,
            NOW.plus(1),
            &event,
        )
        .await
    }

    async fn sign_ins_recorded(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE kind = 'signin'")
            .fetch_one(self.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    async fn stored_counter(&self) -> i64 {
        sqlx::query("SELECT sign_count FROM passkeys WHERE credential_id = $1")
            .bind(&self.credential_id)
            .fetch_one(self.db.pool())
            .await
            .unwrap()
            .try_get("sign_count")
            .unwrap()
    }
}

#[tokio::test]
async fn of_two_sign_ins_verified_at_the_same_counter_only_the_first_is_recorded() {
    let mut phone = SoftAuthenticator::new(ORIGIN, false);
    let f = fixture(&mut phone).await;
    let mut clone = phone.clone();
    // Both copies answer with counter 1, and both verify against the
    // stored counter 0, before either is recorded.
    let first = f.verified(&mut phone);
    let second = f.verified(&mut clone);

    f.record(&first).await.unwrap();
    let refused = f.record(&second).await;
    assert!(
        matches!(refused, Err(PasskeyError::Rejected(_))),
        "{refused:?}"
    );
    assert_eq!(
        f.sign_ins_recorded().await,
        1,
        "no entry for the refused one"
    );
    assert_eq!(f.stored_counter().await, 1);

    // The original goes on (counter 2); the copy, behind, stays refused.
    let next = f.verified(&mut phone);
    f.record(&next).await.unwrap();
    assert_eq!(f.stored_counter().await, 2);
}

#[tokio::test]
async fn an_authenticator_that_always_reports_zero_is_recorded_every_time() {
    let mut synced = SoftAuthenticator::new(ORIGIN, true);
    synced.zero_counter = true;
    let f = fixture(&mut synced).await;
    let mut clone = synced.clone();
    let first = f.verified(&mut synced);
    let second = f.verified(&mut clone);
    f.record(&first).await.unwrap();
    f.record(&second).await.unwrap();
    assert_eq!(f.sign_ins_recorded().await, 2);
    assert_eq!(f.stored_counter().await, 0);
}
