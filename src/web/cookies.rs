//! Reading Civitas's cookies from a request. Every cookie Civitas sets is
//! host-only with `Path=/` and HttpOnly; with an https issuer it is `Secure`
//! and carries the `__Host-` prefix, so no other host and no script can set
//! or read it.

use axum::http::{HeaderMap, header};

/// The value of the cookie `name` the browser sent, if any.
pub(super) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
