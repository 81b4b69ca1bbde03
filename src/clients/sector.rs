//! The pairwise sector of a client (OIDC Core §8.1): what its pairwise
//! subjects are computed from, fixed when it is registered and stored with
//! it (`clients.sector`), so that no later change of its metadata can make
//! it see the subjects of another sector (protocol review H1).
//!
//! At registration the sector is the host of the `sector_identifier_uri`
//! if there is one, else the host of the redirect URIs. A client whose
//! redirect URIs are all on loopback hosts (a native app or a developer's
//! machine, RFC 8252 §7.3), or that has none, is a sector of its own: its
//! `client_id` (protocol review M7). An update keeps the stored sector and
//! is refused when its metadata would give another one, unless that
//! metadata names a `sector_identifier_uri` on the stored sector, whose
//! document (fetched and checked by `fetched::verify_sector`) then lists
//! every new redirect URI.
//!
//! Clients registered before the sector was stored (migration 0012) get it
//! from their metadata exactly as it was computed then ([`legacy`]),
//! loopback-only clients included: their citizens' subjects do not change,
//! and those clients keep sharing the loopback sector among themselves. It
//! is stored at start-up ([`fill_legacy`]) and, for a row an instance of the
//! earlier version writes during a rolling upgrade, at the first edit by
//! this version ([`fix`]), from the metadata as stored before that edit.

use sqlx::Row as _;
use url::Url;

use super::{ClientError, ClientId, ClientMetadata};
use crate::config::is_loopback_host;
use crate::store::{Database, StoreError};

fn host_of(uri: &str) -> Option<String> {
    Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

fn sector_uri_host(metadata: &ClientMetadata) -> Option<String> {
    metadata.sector_identifier_uri.as_deref().and_then(host_of)
}

/// Are all the redirect URIs (at least one) on loopback hosts?
#[must_use]
pub fn loopback_only(metadata: &ClientMetadata) -> bool {
    !metadata.redirect_uris.is_empty()
        && metadata
            .redirect_uris
            .iter()
            .all(|u| host_of(u.as_str()).is_some_and(|h| is_loopback_host(&h)))
}

/// The sector that `metadata` gives a client registered now.
#[must_use]
pub fn derive(metadata: &ClientMetadata, client_id: &ClientId) -> String {
    if let Some(host) = sector_uri_host(metadata) {
        return host;
    }
    if loopback_only(metadata) {
        return client_id.as_str().to_owned();
    }
    legacy(metadata, client_id)
}

/// The sector as computed before it was stored (up to migration 0012): the
/// host of the `sector_identifier_uri`, else of the first redirect URI,
/// else the `client_id`.
#[must_use]
pub fn legacy(metadata: &ClientMetadata, client_id: &ClientId) -> String {
    sector_uri_host(metadata)
        .or_else(|| {
            metadata
                .redirect_uris
                .first()
                .and_then(|u| host_of(u.as_str()))
        })
        .unwrap_or_else(|| client_id.as_str().to_owned())
}

/// May a client of sector `stored` take `metadata`? Only if the metadata
/// gives the same sector; or, for a client of the shared loopback sector of
/// before 0012, if it stays loopback-only (the sector stays what it was).
/// The sector document itself is checked by `fetched::verify_sector`.
///
/// # Errors
/// `invalid_client_metadata` for a `sector_identifier_uri` on another host,
/// `invalid_redirect_uri` for redirect URIs outside the sector.
pub fn check_update(
    stored: &str,
    metadata: &ClientMetadata,
    client_id: &ClientId,
) -> Result<(), ClientError> {
    if let Some(host) = sector_uri_host(metadata) {
        if host == stored {
            return Ok(());
        }
        return Err(ClientError::InvalidMetadata(format!(
            "sector_identifier_uri is on `{host}`, but this client's pairwise sector is `{stored}`, \
             fixed at registration (OIDC Core §8.1); use a sector_identifier_uri on `{stored}`, \
             or register a new client"
        )));
    }
    let derived = derive(metadata, client_id);
    if derived == stored || (is_loopback_host(stored) && loopback_only(metadata)) {
        return Ok(());
    }
    Err(ClientError::InvalidRedirectUri(format!(
        "these redirect URIs would move this client out of its pairwise sector `{stored}`, fixed at \
         registration (OIDC Core §8.1); keep them on that sector, list them in a \
         sector_identifier_uri on `{stored}`, or register a new client"
    )))
}

/// Fixes the sector of `client_id`, inside the caller's transaction, and
/// returns it (`None` for no such client). A row whose `sector` is still
/// NULL (stored before migration 0012, or written during a rolling upgrade
/// by an instance of the version before it, which knows no such column)
/// gets [`legacy`] of its metadata as stored now: the sector every instance
/// computes for it until then. The row is locked first, so the metadata
/// read is the metadata the sector is stored beside.
///
/// Every edit of a client row, or of the operator's permissions of a
/// client, calls this first: the sector is fixed at the first touch, and a
/// later PUT by an instance of the earlier version can no longer move it
/// (security review finding 9).
///
/// # Errors
/// If the database fails, or the client's metadata cannot be read.
pub(super) async fn fix(
    conn: &mut sqlx::AnyConnection,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    let locked = sqlx::query("UPDATE clients SET client_id = client_id WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT metadata, sector FROM clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(&mut *conn)
        .await?;
    if let Some(sector) = row.try_get::<Option<String>, _>("sector")? {
        return Ok(Some(sector));
    }
    let metadata: ClientMetadata = serde_json::from_str(&row.try_get::<String, _>("metadata")?)
        .map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))?;
    let sector = legacy(&metadata, &ClientId::new(client_id));
    sqlx::query("UPDATE clients SET sector = $2 WHERE client_id = $1")
        .bind(client_id)
        .bind(&sector)
        .execute(&mut *conn)
        .await?;
    Ok(Some(sector))
}

/// Fills the sector of every client still without one ([`fix`]); the
/// number filled. Runs at every start-up: rows written by an instance of
/// the earlier version during a rolling upgrade get it at the next start,
/// if no edit by this version fixed it sooner.
///
/// # Errors
/// If the database fails, or a client's metadata cannot be read.
pub async fn fill_legacy(db: &Database) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let rows = sqlx::query("SELECT client_id FROM clients WHERE sector IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    let mut filled = 0;
    for row in rows {
        if fix(&mut tx, &row.try_get::<String, _>("client_id")?)
            .await?
            .is_some()
        {
            filled += 1;
        }
    }
    tx.commit().await?;
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::MetadataRequest;

    fn meta(json: serde_json::Value) -> ClientMetadata {
        serde_json::from_value::<MetadataRequest>(json)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn the_sector_is_the_sector_uri_host_else_the_redirect_host_else_the_client() {
        let id = ClientId::new("c1");
        let web = meta(serde_json::json!({"redirect_uris": ["https://Portal.Agency.example/cb"]}));
        assert_eq!(derive(&web, &id), "portal.agency.example");
        let grouped = meta(serde_json::json!({
            "redirect_uris": ["https://a.example/cb", "http://127.0.0.1/cb"],
            "sector_identifier_uri": "https://agency.example/sector.json"}));
        assert_eq!(derive(&grouped, &id), "agency.example");
        let native = meta(
            serde_json::json!({"redirect_uris": ["http://127.0.0.1:8400/cb", "http://[::1]:8400/cb"]}),
        );
        assert_eq!(derive(&native, &id), "c1");
        assert_eq!(legacy(&native, &id), "127.0.0.1");
        let machine = meta(serde_json::json!({"grant_types": ["client_credentials"]}));
        assert_eq!(derive(&machine, &id), "c1");
        assert_eq!(legacy(&machine, &id), "c1");
    }

    #[test]
    fn an_update_keeps_the_sector_or_is_refused() {
        let id = ClientId::new("c1");
        let same_host =
            meta(serde_json::json!({"redirect_uris": ["https://portal.agency.example/v2"]}));
        assert!(check_update("portal.agency.example", &same_host, &id).is_ok());
        assert!(matches!(
            check_update("rp.attacker.example", &same_host, &id),
            Err(ClientError::InvalidRedirectUri(_))
        ));
        let listed = meta(serde_json::json!({
            "redirect_uris": ["https://new.example/cb"],
            "sector_identifier_uri": "https://portal.agency.example/sector.json"}));
        assert!(check_update("portal.agency.example", &listed, &id).is_ok());
        assert!(matches!(
            check_update("other.example", &listed, &id),
            Err(ClientError::InvalidMetadata(_))
        ));
        let native = meta(serde_json::json!({"redirect_uris": ["http://localhost:9000/cb"]}));
        assert!(check_update("c1", &native, &id).is_ok());
        assert!(
            check_update("127.0.0.1", &native, &id).is_ok(),
            "a loopback client of before 0012 keeps its sector"
        );
        assert!(check_update("c1", &same_host, &id).is_err());
        assert!(check_update("127.0.0.1", &same_host, &id).is_err());
    }
}
