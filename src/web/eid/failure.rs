//! How an eID flow that cannot finish ends: a page in the citizen's words
//! that says nothing was changed and always offers a way forward: back to
//! the account or to recovery, to sign in again, or, during a step-up on
//! the way to a service, back to that service with an OAuth error (the
//! step-up's own cancel form, `unmet_authentication_requirements`) or to
//! the step-up page to try again.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::super::PageError;
use super::super::authorize::allow_form_target;
use crate::eid::connector::{FlowError, FlowPurpose};
use crate::oidc::OAuthError;
use crate::oidc::pending::PendingReturn;

/// Where the citizen can go from the page.
#[derive(Debug)]
pub(super) enum Forward {
    /// Their account page (which asks them to sign in if they are not).
    Account,
    /// The recovery page.
    Recover,
    /// Sign in again, resuming the pending request if there is one.
    SignIn(Option<String>),
    /// Back to the service of a pending request, or try the step-up again.
    Service(PendingReturn),
}

/// A flow that ended without binding or signing in anything.
#[derive(Debug)]
pub(super) struct Stop {
    pub(super) status: StatusCode,
    pub(super) title: &'static str,
    pub(super) message: String,
    pub(super) forward: Forward,
}

/// Why the callback ends with a page: the flow stopped, or a dependency failed.
#[derive(Debug)]
pub(super) enum Failure {
    Stop(Stop),
    Page(PageError),
}

impl From<PageError> for Failure {
    fn from(e: PageError) -> Self {
        Self::Page(e)
    }
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Self::Page(e.into())
    }
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Self {
        Self::Stop(s)
    }
}

/// Where a failed flow for `purpose` leads: the service of the request it
/// was resuming if that request is still pending, else the account or the
/// recovery page.
pub(super) fn forward_of(purpose: Option<&FlowPurpose>, service: Option<PendingReturn>) -> Forward {
    match (purpose, service) {
        (_, Some(s)) => Forward::Service(s),
        (Some(FlowPurpose::Recover), None) => Forward::Recover,
        _ => Forward::Account,
    }
}

/// The page for a [`FlowError`]; the cache failing is a 503 page instead.
pub(super) fn stop_for(e: FlowError, forward: Forward) -> Failure {
    let (status, title, message) = match e {
        FlowError::Cache(c) => return Failure::Page(OAuthError::from(c).into()),
        FlowError::UnknownConnector => (
            StatusCode::NOT_FOUND,
            "This eID is not offered",
            e.to_string(),
        ),
        FlowError::BadState => (
            StatusCode::BAD_REQUEST,
            "Your eID could not be used",
            "This eID response does not belong to a sign-in started in this browser, or it took too long. \
             Nothing was changed; start again from where you were."
                .to_owned(),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            "Your eID could not be used",
            format!("{other}. Nothing was changed; you can try again."),
        ),
    };
    Failure::Stop(Stop {
        status,
        title,
        message,
        forward,
    })
}

#[derive(Template)]
#[template(path = "eid_error.html")]
struct Page<'a> {
    title: &'a str,
    message: &'a str,
    service: Option<&'a PendingReturn>,
    back: Option<(&'a str, &'a str)>,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let stop = match self {
            Self::Page(p) => return p.into_response(),
            Self::Stop(s) => s,
        };
        let sign_in;
        let back = match &stop.forward {
            Forward::Account => Some(("/account", "Back to your account")),
            Forward::Recover => Some(("/recover", "Back to account recovery")),
            Forward::SignIn(resume) => {
                sign_in = match resume {
                    Some(h) => format!("/signin?auth={h}"),
                    None => "/signin".to_owned(),
                };
                Some((sign_in.as_str(), "Sign in again"))
            }
            Forward::Service(_) => None,
        };
        let service = match &stop.forward {
            Forward::Service(s) => Some(s),
            _ => None,
        };
        let page = Page {
            title: stop.title,
            message: &stop.message,
            service,
            back,
        };
        match page.render() {
            Ok(html) => {
                let res = (stop.status, Html(html)).into_response();
                // The "return" form ends at the client's redirect URI.
                allow_form_target(res, service.map(|s| s.redirect_uri.as_str()))
            }
            Err(e) => PageError::Internal(format!("template: {e}")).into_response(),
        }
    }
}
