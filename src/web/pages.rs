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
    pub(crate) handle_prefix: &'a str,
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
