//! A scripted browser for the passkey pages: keeps cookies, reads the CSRF
//! token from pages, and calls the ceremony endpoints as `passkeys.js` does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::helpers::TestApp;

pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    pub csrf: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let pair = s.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if s.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    pub fn session_cookie(&self) -> Option<&str> {
        self.cookies.get("civitas_session").map(String::as_str)
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let res = self
            .app
            .http
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }

    /// GETs a page and remembers its CSRF token; the HTML.
    pub async fn page(&mut self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        let html = res.text().await.unwrap();
        for marker in ["data-csrf=\"", "name=\"csrf\" value=\""] {
            if let Some(i) = html.find(marker) {
                let rest = &html[i + marker.len()..];
                self.csrf = rest[..rest.find('"').unwrap()].to_owned();
                break;
            }
        }
        html
    }

    pub async fn post_json(&mut self, path: &str, body: &Value) -> (u16, Value) {
        self.post_json_with(path, body, &[]).await
    }

    /// `post_json` with extra request headers (for example what a proxy adds).
    pub async fn post_json_with(
        &mut self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("x-csrf-token", &self.csrf)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        self.keep(&res);
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        let res = self
            .app
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .form(&fields)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        res
    }

    /// Creates an account with `authenticator`; the `next` URL.
    pub async fn create_account(
        &mut self,
        authn: &mut SoftAuthenticator,
        name: &str,
        email: &str,
        auth: Option<&str>,
    ) -> String {
        self.page(&format!("/signin/create?auth={}", auth.unwrap_or_default()))
            .await;
        let (status, begin) = self
            .post_json(
                "/passkeys/register/begin",
                &json!({"display_name": name, "email": email}),
            )
            .await;
        assert_eq!(status, 200, "{begin}");
        let credential = authn.create(&begin["options"]);
        let (status, done) = self
            .post_json(
                "/passkeys/register/finish",
                &json!({"ceremony": begin["ceremony"], "credential": credential, "name": "Laptop", "auth": auth}),
            )
            .await;
        assert_eq!(status, 200, "{done}");
        done["next"].as_str().unwrap().to_owned()
    }

    /// Signs in usernameless; the finish response.
    pub async fn sign_in(
        &mut self,
        authn: &mut SoftAuthenticator,
        auth: Option<&str>,
    ) -> (u16, Value) {
        self.page(&format!("/signin?auth={}", auth.unwrap_or_default()))
            .await;
        let (status, begin) = self.post_json("/passkeys/signin/begin", &json!({})).await;
        assert_eq!(status, 200, "{begin}");
        let credential = authn.get(&begin["options"]);
        self.post_json(
            "/passkeys/signin/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential, "auth": auth}),
        )
        .await
    }
}
