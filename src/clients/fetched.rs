//! The metadata Civitas fetches or posts to: `jwks_uri`,
//! `sector_identifier_uri` and `backchannel_logout_uri` (review M3).
//!
//! At registration and update each must be a URL the instance's
//! [`Fetcher`] would fetch: `https` (`http` only to a loopback host while
//! Civitas's own issuer is `localhost`), no user information, and no IP
//! literal or `localhost` name of a refused address class
//! ([`crate::outbound::Policy::check_url`]). That check is early and
//! readable; the one that holds is the fetcher's at each fetch, because a
//! name's addresses can change after registration. The sector document
//! is fetched here, through the fetcher, and must list every redirect URI.

use super::{ClientError, ClientMetadata};
use crate::outbound::{Fetcher, Use};

/// Refuses metadata naming a URL the fetcher would refuse, before anything
/// is fetched, with the member and the reason.
///
/// # Errors
/// `invalid_client_metadata`.
pub fn check_uris(metadata: &ClientMetadata, fetcher: &Fetcher) -> Result<(), ClientError> {
    let members = [
        ("jwks_uri", metadata.jwks_uri.as_deref()),
        (
            "sector_identifier_uri",
            metadata.sector_identifier_uri.as_deref(),
        ),
        (
            "backchannel_logout_uri",
            metadata.backchannel_logout_uri.as_deref(),
        ),
    ];
    for (name, uri) in members {
        let Some(uri) = uri else { continue };
        let url = url::Url::parse(uri)
            .map_err(|_| ClientError::InvalidMetadata(format!("{name} is not an absolute URL")))?;
        fetcher
            .policy()
            .check_url(&url)
            .map_err(|refusal| ClientError::InvalidMetadata(format!("{name} {refusal}")))?;
    }
    Ok(())
}

/// OIDC Registration §5: the document at `sector_identifier_uri` must be a
/// JSON array that holds every redirect URI of the client.
///
/// # Errors
/// `invalid_client_metadata` if it cannot be fetched (one message for every
/// reason: the reason is logged) or does not list them all.
pub async fn verify_sector(
    metadata: &ClientMetadata,
    fetcher: &Fetcher,
) -> Result<(), ClientError> {
    let Some(uri) = &metadata.sector_identifier_uri else {
        return Ok(());
    };
    let listed: Vec<String> = fetcher
        .get_json(uri, Use::SectorDocument)
        .await
        .map_err(|_| {
            ClientError::InvalidMetadata(
                "sector_identifier_uri could not be fetched as a JSON array of URIs".into(),
            )
        })?;
    if let Some(missing) = metadata
        .redirect_uris
        .iter()
        .find(|r| !listed.iter().any(|l| l == r.as_str()))
    {
        return Err(ClientError::InvalidMetadata(format!(
            "sector_identifier_uri does not list the redirect URI `{}`",
            missing.as_str()
        )));
    }
    Ok(())
}
