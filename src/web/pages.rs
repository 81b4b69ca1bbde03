//! Page templates (askama) and their rendering.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::PageError;

/// Renders a template with status 200, or an internal error page.
pub(crate) fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut res = (StatusCode::OK, Html(html)).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => PageError::Internal(format!("template: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignIn<'a> {
    pub(crate) client_name: Option<&'a str>,
    pub(crate) csrf: &'a str,
    pub(crate) auth: &'a str,
    pub(crate) login_hint: &'a str,
}

#[derive(Template)]
#[template(path = "create.html")]
pub(crate) struct Create<'a> {
    pub(crate) client_name: Option<&'a str>,
    pub(crate) csrf: &'a str,
    pub(crate) auth: &'a str,
}

/// A passkey row of the account page.
pub(crate) struct PasskeyRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    /// The level a sign-in with it reaches now.
    pub(crate) level: &'static str,
    /// Its enrolment holds it below what the eID binding allows.
    pub(crate) held_back: bool,
    pub(crate) created: String,
    pub(crate) last_used: String,
}

/// A consent row of the account page.
pub(crate) struct ConsentRow {
    pub(crate) client_id: String,
    pub(crate) name: String,
    pub(crate) scope: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub(crate) struct Account<'a> {
    pub(crate) restricted: bool,
    pub(crate) notice: Option<&'a str>,
    pub(crate) display_name: &'a str,
    /// The internal account id, for the service desk and the operator.
    pub(crate) account_ref: &'a str,
    pub(crate) email: Option<&'a str>,
    pub(crate) email_verified: bool,
    pub(crate) passkeys: Vec<PasskeyRow>,
    pub(crate) recovery_remaining: i64,
    pub(crate) consents: Vec<ConsentRow>,
    pub(crate) activity: Vec<(String, String)>,
    pub(crate) csrf: &'a str,
    pub(crate) connectors: Vec<(String, String)>,
    /// Scheme, level and date of the eID binding.
    pub(crate) eid: Option<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub(crate) struct RecoveryCodes<'a> {
    pub(crate) codes: &'a [String],
}

#[derive(Template)]
#[template(path = "recover.html")]
pub(crate) struct Recover<'a> {
    pub(crate) csrf: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) connectors: Vec<(String, String)>,
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn format_time(t: crate::clock::UnixTime) -> String {
    let (y, m, d, hh, mm, _) = t.civil();
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_formatted_as_utc_dates() {
        assert_eq!(
            super::format_time(crate::clock::UnixTime(0)),
            "1970-01-01 00:00 UTC"
        );
        assert_eq!(
            super::format_time(crate::clock::UnixTime(1_795_000_000)),
            "2026-11-18 11:06 UTC"
        );
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct Consent<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) client_uri: Option<&'a str>,
    pub(crate) scopes: &'a [(String, &'static str)],
    pub(crate) claims: &'a [String],
    pub(crate) handle: &'a str,
    pub(crate) csrf: &'a str,
}

#[derive(Template)]
#[template(path = "step_up.html")]
pub(crate) struct StepUp<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) required: &'a str,
    pub(crate) achieved: &'a str,
    pub(crate) passkey_would_help: bool,
    pub(crate) handle: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) connectors: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "chooser.html")]
pub(crate) struct Chooser<'a> {
    pub(crate) client_name: &'a str,
    pub(crate) requested: String,
    pub(crate) options: &'a [(String, String, String)],
    pub(crate) handle: &'a str,
    pub(crate) csrf: &'a str,
}

#[derive(Template)]
#[template(path = "organizations.html")]
pub(crate) struct Organizations<'a> {
    pub(crate) notice: Option<&'a str>,
    pub(crate) invitation: Option<&'a str>,
    /// Organization, powers, basis, mandate id (empty for statutory).
    pub(crate) powers: Vec<(String, String, String, String)>,
    /// Mandate id, organization, powers.
    pub(crate) pending: Vec<(String, String, String)>,
    /// Mandate id, organization, powers, state.
    pub(crate) granted: Vec<(String, String, String, String)>,
    /// Mandate reference, label.
    pub(crate) delegable: Vec<(String, String)>,
    pub(crate) csrf: &'a str,
}

#[derive(Template)]
#[template(path = "invitation.html")]
pub(crate) struct Invitation<'a> {
    pub(crate) csrf: &'a str,
    /// With a full session: the form; without: how to sign in first.
    pub(crate) signed_in: bool,
}

#[derive(Template)]
#[template(path = "form_post.html")]
pub(crate) struct FormPost<'a> {
    pub(crate) action: &'a str,
    pub(crate) params: &'a [(&'static str, String)],
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
pub(crate) struct LogoutConfirm<'a> {
    pub(crate) client_name: Option<&'a str>,
    pub(crate) handle: &'a str,
    pub(crate) csrf: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub(crate) struct SignedOut<'a> {
    pub(crate) client_name: Option<&'a str>,
}
