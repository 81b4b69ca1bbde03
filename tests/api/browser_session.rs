//! A scripted browser for the passkey pages: `civitas::testkit`'s
//! `WebSession` (cookies, the CSRF token from pages, the ceremony endpoints
//! called as `passkeys.js` does) bound to one test instance, panicking on
//! transport failures so that tests read as plain steps.

use civitas::testkit::browser::WebSession;
use serde_json::Value;

use crate::authenticator::SoftAuthenticator;
use crate::helpers::TestApp;

pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub web: WebSession,
}

impl std::ops::Deref for Browser<'_> {
    type Target = WebSession;
    fn deref(&self) -> &WebSession {
        &self.web
    }
}

impl std::ops::DerefMut for Browser<'_> {
    fn deref_mut(&mut self) -> &mut WebSession {
        &mut self.web
    }
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            web: WebSession::new(app.http.clone(), &app.url("")),
        }
    }

    /// The same browser (cookies, CSRF token) whose next requests land on `app`.
    pub fn moved_to<'b>(&self, app: &'b TestApp) -> Browser<'b> {
        let mut web = self.web.clone();
        web.base = app.url("").trim_end_matches('/').to_owned();
        Browser { app, web }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        self.web.get(path).await.unwrap()
    }

    /// GETs a page and remembers its CSRF token; the HTML.
    pub async fn page(&mut self, path: &str) -> String {
        self.web
            .page(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post_json(&mut self, path: &str, body: &Value) -> (u16, Value) {
        self.web.post_json(path, body).await.unwrap()
    }

    /// `post_json` with extra request headers (for example what a proxy adds).
    pub async fn post_json_with(
        &mut self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.web.post_json_with(path, body, headers).await.unwrap()
    }

    /// The account of this browser's live session.
    pub async fn account_id(&self) -> civitas::accounts::AccountId {
        self.app
            .app()
            .sessions
            .current(self.session_cookie().expect("a session cookie"))
            .await
            .expect("the session store")
            .expect("a live session")
            .account_id
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.web.post_form(path, form).await.unwrap()
    }

    /// Creates an account with `authenticator`; the `next` URL.
    pub async fn create_account(
        &mut self,
        authn: &mut SoftAuthenticator,
        name: &str,
        email: &str,
        auth: Option<&str>,
    ) -> String {
        self.web
            .create_account(authn, name, email, auth)
            .await
            .unwrap_or_else(|e| panic!("account creation: {e}"))
    }

    /// Signs in usernameless; the finish response.
    pub async fn sign_in(
        &mut self,
        authn: &mut SoftAuthenticator,
        auth: Option<&str>,
    ) -> (u16, Value) {
        self.web
            .sign_in(authn, auth)
            .await
            .unwrap_or_else(|e| panic!("sign-in: {e}"))
    }
}
