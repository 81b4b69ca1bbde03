//! A browser's side of Civitas's pages for the tests and the benchmark:
//! cookies, the CSRF token read from each page, the ceremony endpoints
//! called as `passkeys.js` calls them, with any software authenticator.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::authenticator::SoftAuthenticator;
use super::citizen::{FlowError, Result, next_of};

/// A browser's side of Civitas's pages: cookies, the page's CSRF token, and
/// requests as the pages and `passkeys.js` make them.
#[derive(Debug, Clone)]
pub struct WebSession {
    http: reqwest::Client,
    /// Where requests go: one instance, or a load balancer. May change
    /// between steps (a flow begun on one instance, finished on another).
    pub base: String,
    /// The cookies, by name.
    pub cookies: BTreeMap<String, String>,
    /// The CSRF token of the last page (tests may forge it).
    pub csrf: String,
}

impl WebSession {
    /// A browser with no cookies whose requests go to `base`.
    #[must_use]
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    /// Closes the browser: cookies are gone, the passkey stays.
    pub fn forget_cookies(&mut self) {
        self.cookies.clear();
        self.csrf.clear();
    }

    /// The session cookie, if signed in.
    #[must_use]
    pub fn session_cookie(&self) -> Option<&str> {
        self.cookies.get("civitas_session").map(String::as_str)
    }

    fn cookie_header(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.cookies {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let Ok(s) = v.to_str() else { continue };
            let Some((k, v)) = s.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if s.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    /// GET `path` with the browser's cookies (no redirect followed).
    ///
    /// # Errors
    /// If the request fails.
    pub async fn get(&mut self, path: &str) -> Result<reqwest::Response> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await?;
        self.keep(&res);
        Ok(res)
    }

    /// GETs a page, remembers its CSRF token and returns its HTML.
    ///
    /// # Errors
    /// If the page is not a 200.
    pub async fn page(&mut self, path: &str) -> Result<String> {
        let res = self.get(path).await?;
        let status = res.status().as_u16();
        let html = res.text().await?;
        if status != 200 {
            return Err(FlowError::Status {
                what: "page",
                status,
                body: html,
            });
        }
        self.remember_csrf(&html);
        Ok(html)
    }

    /// Remembers the CSRF token of a page read without [`WebSession::page`].
    pub fn remember_csrf(&mut self, html: &str) {
        for marker in ["data-csrf=\"", "name=\"csrf\" value=\""] {
            if let Some(i) = html.find(marker) {
                let rest = &html[i + marker.len()..];
                if let Some(end) = rest.find('"') {
                    self.csrf = rest[..end].to_owned();
                }
                break;
            }
        }
    }

    /// POSTs JSON with the CSRF header, as `passkeys.js` does; the status and body.
    ///
    /// # Errors
    /// If the request fails.
    pub async fn post_json(&mut self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.post_json_with(path, body, &[]).await
    }

    /// [`WebSession::post_json`] with extra request headers (for example
    /// what a proxy adds).
    ///
    /// # Errors
    /// If the request fails.
    pub async fn post_json_with(
        &mut self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("x-csrf-token", &self.csrf)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await?;
        self.keep(&res);
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs a form (with the page's CSRF token) and returns the response.
    ///
    /// # Errors
    /// If the request fails.
    pub async fn post_form(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response> {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(&fields)
            .send()
            .await?;
        self.keep(&res);
        Ok(res)
    }

    /// Creates an account with a new passkey made by `authn`; the URL to
    /// go on to.
    ///
    /// # Errors
    /// If a ceremony step is refused.
    pub async fn create_account(
        &mut self,
        authn: &mut SoftAuthenticator,
        name: &str,
        email: &str,
        auth: Option<&str>,
    ) -> Result<String> {
        self.page(&format!("/signin/create?auth={}", auth.unwrap_or_default()))
            .await?;
        let body = json!({"display_name": name, "email": email});
        let (status, begin) = self.post_json("/passkeys/register/begin", &body).await?;
        if status != 200 {
            return Err(FlowError::Status {
                what: "register begin",
                status,
                body: begin.to_string(),
            });
        }
        let credential = authn.create(&begin["options"]);
        let body = json!({"ceremony": begin["ceremony"], "credential": credential, "name": "Phone", "auth": auth});
        let (status, done) = self.post_json("/passkeys/register/finish", &body).await?;
        next_of("register finish", status, &done)
    }

    /// Signs in with `authn`, without a username; the status and body of
    /// the finishing request (tests also look at refusals).
    ///
    /// # Errors
    /// If the page or the ceremony's beginning is refused.
    pub async fn sign_in(
        &mut self,
        authn: &mut SoftAuthenticator,
        auth: Option<&str>,
    ) -> Result<(u16, Value)> {
        self.page(&format!("/signin?auth={}", auth.unwrap_or_default()))
            .await?;
        let (status, begin) = self.post_json("/passkeys/signin/begin", &json!({})).await?;
        if status != 200 {
            return Err(FlowError::Status {
                what: "sign-in begin",
                status,
                body: begin.to_string(),
            });
        }
        let credential = authn.get(&begin["options"]);
        let body = json!({"ceremony": begin["ceremony"], "credential": credential, "auth": auth});
        self.post_json("/passkeys/signin/finish", &body).await
    }
}
