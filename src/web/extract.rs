//! Reading requests: bodies within the limit, JSON with errors that name the
//! field, and bearer tokens (RFC 6750 §2.1).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A request body read within the body limit; too large is a 413 JSON error.
#[derive(Debug)]
pub(crate) struct Body(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::Client {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        code: "invalid_request",
                        description: "the request body is too large".into(),
                        www_authenticate: None,
                    }
                } else {
                    ApiError::bad_request("invalid_request", "the request body could not be read")
                }
            })
    }
}

/// Parses a JSON body into `T`; a wrong content type, malformed JSON, invalid
/// UTF-8, a duplicate member or a wrong type is `code` with a description
/// that names the offending member.
pub(crate) fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    code: &'static str,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::Client {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code,
            description: "the request body must be application/json".into(),
            www_authenticate: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = if path == "." {
            format!("the request body is not valid JSON: {inner}")
        } else {
            format!("`{path}`: {inner}")
        };
        ApiError::bad_request(code, what)
    })?;
    de.end().map_err(|_| {
        ApiError::bad_request(
            code,
            "the request body has trailing data after the JSON value",
        )
    })?;
    Ok(value)
}

/// The bearer token of the `Authorization` header, if one is present.
///
/// # Errors
/// A 401 if the header is present but not a well-formed bearer token.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token(true, "the Authorization header is not valid"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::invalid_token(
            true,
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

/// The client's address as the per-address limits count it: the TCP peer,
/// or, when the peer is a trusted proxy (`limits.trusted_proxies`), the
/// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
/// (entries left of that one were written by the client and prove
/// nothing), then bucketed by [`limit_bucket`]: an IPv6 address by its
/// /64, since one subscriber commonly holds a whole /64 and could
/// otherwise pick a fresh address, and allowance, per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) std::net::IpAddr);

impl FromRequestParts<super::State> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::State,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal("the peer address is unknown".into()))?;
        Ok(Self(limit_bucket(client_ip(
            &state.settings.limits,
            &parts.headers,
            peer,
        ))))
    }
}

/// The address a limit counts for `ip`: an IPv4 address itself, an
/// IPv4-mapped IPv6 address as its IPv4 address, any other IPv6 address as
/// its /64 prefix (the interface identifier zeroed).
pub(crate) fn limit_bucket(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(v4) => v4.into(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => std::net::Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX)).into(),
        },
    }
}

/// See [`ClientIp`].
pub(crate) fn client_ip(
    limits: &crate::config::LimitSettings,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
) -> std::net::IpAddr {
    if !limits.is_trusted_proxy(peer) {
        return peer;
    }
    let mut hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    while let Some(hop) = hops.pop() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if limits.is_trusted_proxy(ip) => {}
            Ok(ip) => return ip,
            // A malformed entry: nothing left of it can be trusted.
            Err(_) => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_ipv6_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(limit_bucket(ip("203.0.113.5")), ip("203.0.113.5"));
        assert_eq!(
            limit_bucket(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limit_bucket(ip("2001:db8:1:2::1")),
            limit_bucket(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            limit_bucket(ip("2001:db8:1:2::1")),
            limit_bucket(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_bucket(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(limit_bucket(ip("::1")), ip("::"));
        // The key it makes holds no interface identifier.
        assert_eq!(
            limit_bucket(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::"
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let limits =
            crate::config::Settings::from_toml("[limits]\ntrusted_proxies = [\"10.0.0.0/8\"]")
                .unwrap()
                .limits;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.4, 10.0.0.9".parse().unwrap(),
        );
        // From the balancer: the rightmost untrusted hop, not the forged first one.
        assert_eq!(client_ip(&limits, &h, ip("10.0.0.2")), ip("198.51.100.4"));
        // From anyone else: the header is ignored.
        assert_eq!(client_ip(&limits, &h, ip("203.0.113.5")), ip("203.0.113.5"));
        // No header, or garbage: the peer.
        assert_eq!(
            client_ip(&limits, &HeaderMap::new(), ip("10.0.0.2")),
            ip("10.0.0.2")
        );
        h.insert("x-forwarded-for", "nonsense".parse().unwrap());
        assert_eq!(client_ip(&limits, &h, ip("10.0.0.2")), ip("10.0.0.2"));
    }
}
