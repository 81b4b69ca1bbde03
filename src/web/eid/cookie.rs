//! The eID flow's own cookie, which binds a flow to the browser that began
//! it.
//!
//! The upstream eID provider is another site, and its redirect back to
//! `/eid/callback` is a cross-site navigation: browsers do not send the
//! `SameSite=Strict` CSRF cookie on it, but they do send a `SameSite=Lax`
//! cookie on a top-level GET. So the flow has a cookie of its own: a fresh
//! 256-bit value per flow (the flow stores only its hash), `SameSite=Lax`,
//! HttpOnly, host-only with `Path=/`, `Secure` and `__Host-` on https, living
//! as long as the flow, and cleared by the callback whatever its outcome.
//! A response delivered to any other browser finds no matching cookie and
//! binds nothing (no login CSRF into someone else's account).

use axum::http::{HeaderMap, HeaderValue};

use crate::config::Settings;
use crate::eid::connector::FLOW_TTL;
use crate::secrets::random_token;

fn name(settings: &Settings) -> &'static str {
    if settings.issuer_is_https() {
        "__Host-civitas_eid"
    } else {
        "civitas_eid"
    }
}

fn cookie(settings: &Settings, value: &str, max_age: u64) -> HeaderValue {
    let secure = if settings.issuer_is_https() {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        name(settings)
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A new binding value for a flow, and the `Set-Cookie` that gives it to the browser.
pub(super) fn issue(settings: &Settings) -> (String, HeaderValue) {
    let value = random_token(32);
    let set = cookie(settings, &value, FLOW_TTL.as_secs());
    (value, set)
}

/// The binding value the browser sent back, if any.
pub(super) fn read(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    super::super::cookies::read(headers, name(settings)).filter(|v| v.len() == 43)
}

/// The `Set-Cookie` that removes it.
pub(super) fn clear(settings: &Settings) -> HeaderValue {
    cookie(settings, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_lax_host_only_and_secure_on_https() {
        let https = Settings::from_toml("issuer = \"https://id.example.gov\"")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let (value, set) = issue(&https);
        let set = set.to_str().unwrap_or_default().to_owned();
        assert_eq!(value.len(), 43, "256 bits");
        assert!(
            set.starts_with(&format!("__Host-civitas_eid={value}; Path=/;")),
            "{set}"
        );
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Max-Age=600"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!set.contains("Domain"), "{set}");
        let cleared = clear(&https).to_str().unwrap_or_default().to_owned();
        assert!(
            cleared.starts_with("__Host-civitas_eid=; Path=/; Max-Age=0"),
            "{cleared}"
        );
        let http = Settings::from_toml("").unwrap_or_else(|e| unreachable!("{e}"));
        let (_, set) = issue(&http);
        let set = set.to_str().unwrap_or_default().to_owned();
        assert!(
            set.starts_with("civitas_eid=") && !set.contains("Secure"),
            "{set}"
        );
    }
}
