//! What the pages around a pending authorization request may read of it:
//! the client's name (the sign-in page), the client itself (audit entries
//! of a sign-in made for it), and the way back to the client with an error
//! (pages that end a step-up).

use super::{OAuthError, Provider};

/// The way back to the client of a pending request ([`Provider::pending_return`]).
#[derive(Debug, Clone)]
pub struct PendingReturn {
    /// The pending request's handle.
    pub handle: String,
    /// The client's name.
    pub client_name: String,
    /// The anti-forgery token of the request's forms.
    pub csrf: String,
    /// Where the client receives the answer.
    pub redirect_uri: String,
}

impl Provider {
    /// The client's name and the login hint of a pending request, for the
    /// sign-in page; `None` if the handle is unknown or expired.
    pub async fn pending_summary(
        &self,
        handle: &str,
    ) -> Result<Option<(String, Option<String>)>, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(None);
        };
        let name = self.clients.get_recent(&pending.client_id).await?.map(|c| {
            c.metadata
                .client_name
                .clone()
                .unwrap_or_else(|| c.client_id.to_string())
        });
        Ok(name.map(|n| (n, pending.login_hint)))
    }

    /// The client of a pending request, if the handle names one: the
    /// service a sign-in is for, in its audit entry.
    ///
    /// # Errors
    /// If the ephemeral store fails.
    pub async fn pending_client(&self, handle: &str) -> Result<Option<String>, OAuthError> {
        Ok(self.load_pending(handle).await?.map(|p| p.client_id))
    }

    /// What a page needs to send the citizen back to the client of a
    /// pending request with an error (the step-up's cancel form): the
    /// client's name, the form's anti-forgery token and the redirect URI.
    ///
    /// # Errors
    /// If the ephemeral store or the database fails.
    pub async fn pending_return(&self, handle: &str) -> Result<Option<PendingReturn>, OAuthError> {
        let Some(pending) = self.load_pending(handle).await? else {
            return Ok(None);
        };
        let Some(client) = self.clients.get_recent(&pending.client_id).await? else {
            return Ok(None);
        };
        Ok(Some(PendingReturn {
            handle: handle.to_owned(),
            client_name: client
                .metadata
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.to_string()),
            csrf: pending.csrf,
            redirect_uri: pending.redirect_uri,
        }))
    }
}
