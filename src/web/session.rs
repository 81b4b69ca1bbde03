//! The OP session cookie: HttpOnly, SameSite=Lax, host-only, `Secure` (and
//! the `__Host-` prefix) whenever the issuer is https.

use axum::http::{HeaderMap, HeaderValue};

use crate::config::Settings;

/// The cookie's name for this deployment.
#[must_use]
pub fn cookie_name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-civitas_session"
    } else {
        "civitas_session"
    }
}

/// The session cookie value the browser sent, if any.
pub(crate) fn read(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    super::cookies::read(headers, cookie_name(settings)).filter(|v| !v.is_empty() && v.len() <= 128)
}

/// A `Set-Cookie` value that stores `value` as the session cookie.
pub fn set(settings: &Settings, value: &str) -> HeaderValue {
    let secure = if settings.issuer_is_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}",
        cookie_name(settings)
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear(settings: &Settings) -> HeaderValue {
    let secure = if settings.issuer_is_https() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(settings)
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}
