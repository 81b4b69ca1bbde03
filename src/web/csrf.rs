//! Cross-site request forgery protection for Civitas's own forms and
//! ceremony calls: a double-submit token. Each page that posts carries the
//! token of a `SameSite=Strict`, HttpOnly cookie; a POST is accepted only if
//! it presents the same value (form field `csrf` or header `X-CSRF-Token`).
//! A cross-site page can neither read the cookie nor make the browser send it.

use axum::http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::secrets::random_token;

fn name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-civitas_csrf"
    } else {
        "civitas_csrf"
    }
}

fn read(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    super::cookies::read(headers, name(settings)).filter(|v| v.len() == 32)
}

/// The browser's token, or a new one with the `Set-Cookie` that stores it.
pub(crate) fn token(settings: &Settings, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(t) = read(settings, headers) {
        return (t, None);
    }
    let t = random_token(24);
    let secure = if settings.issuer_is_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={t}; Path=/; HttpOnly; SameSite=Strict{secure}",
        name(settings)
    );
    (t, HeaderValue::from_str(&cookie).ok())
}

/// Does the request present the token of its cookie?
pub(crate) fn check(settings: &Settings, headers: &HeaderMap, presented: Option<&str>) -> bool {
    let presented = presented.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
    match (read(settings, headers), presented) {
        (Some(cookie), Some(p)) => cookie.as_bytes().ct_eq(p.as_bytes()).into(),
        _ => false,
    }
}
