//! The dashboard (`/admin`): figures for the operator and for agencies,
//! rendered on the server with SVG charts.
//!
//! It needs a full passkey session. An account with the `admin` role sees
//! every client's figures and the platform's own (sign-in methods, eID
//! enrollment, error rates by endpoint); an account that owns clients (an
//! agency's staff) sees those clients' figures and nothing else. Anyone
//! else gets a 403 page.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{PageError, State as AppState, charts, pages};
use crate::accounts::roles::{self, Role};
use crate::audit::stats::{self, Scope, Window};
use crate::clock::UnixTime;
use crate::oidc::OAuthError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    days: Option<i64>,
}

/// A row of a table: a name and its figures.
struct Row {
    name: String,
    values: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    operator: bool,
    days: i64,
    signins_chart: String,
    signins: Vec<Row>,
    claims: Vec<Row>,
    step_ups: Vec<Row>,
    methods_chart: String,
    enrollment: Vec<Row>,
    errors: Vec<Row>,
}

fn err(e: impl Into<OAuthError>) -> PageError {
    PageError::from(e.into())
}

async fn dashboard(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, PageError> {
    let Some(session) = super::authorize::full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let db = &app.db;
    let scope = if roles::has_role(db, &session.account_id, Role::Admin)
        .await
        .map_err(err)?
    {
        Scope::Operator
    } else {
        let owned = roles::owned_clients(db, &session.account_id)
            .await
            .map_err(err)?;
        if owned.is_empty() {
            return Err(PageError::Client {
                status: StatusCode::FORBIDDEN,
                title: "Not available",
                message: "The dashboard is for the operator and for agencies that run a service. \
                          Ask the operator if you should have access."
                    .into(),
            });
        }
        Scope::Clients(owned)
    };
    let days = p.days.filter(|d| [7, 30, 90].contains(d)).unwrap_or(30);
    let now = app.clock.now();
    let window = Window::ending(now, days);
    let labels: Vec<String> = (0..days)
        .map(|i| {
            let (_, m, d, ..) = UnixTime((window.first_day + i) * 86_400).civil();
            format!("{m:02}-{d:02}")
        })
        .collect();

    let per_client = stats::signins_per_client(db, &scope, window)
        .await
        .map_err(err)?;
    let claims = stats::claims_released(db, &scope, window)
        .await
        .map_err(err)?;
    let mut names = HashMap::new();
    for id in per_client.keys().chain(claims.keys().map(|(c, _)| c)) {
        if !names.contains_key(id) {
            let name = app
                .clients
                .get(id)
                .await
                .map_err(err)?
                .and_then(|c| c.metadata.client_name)
                .unwrap_or_else(|| id.clone());
            names.insert(id.clone(), name);
        }
    }
    let name = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
    let series: Vec<(String, Vec<u64>)> = per_client
        .iter()
        .map(|(c, v)| (name(c), v.clone()))
        .collect();
    let signins_chart = charts::stacked_bars("Sign-ins to services per day", &labels, &series);
    let signins = series
        .iter()
        .map(|(n, v)| Row {
            name: n.clone(),
            values: vec![v.iter().sum::<u64>().to_string()],
        })
        .collect();
    let claims = claims
        .iter()
        .map(|((c, claim), n)| Row {
            name: name(c),
            values: vec![claim.clone(), n.to_string()],
        })
        .collect();
    let step_ups = stats::step_ups(db, &scope, window)
        .await
        .map_err(err)?
        .into_iter()
        .map(|(outcome, n)| Row {
            name: outcome.replace('_', " "),
            values: vec![n.to_string()],
        })
        .collect();

    let (mut methods_chart, mut enrollment, mut errors) = (String::new(), Vec::new(), Vec::new());
    if scope.is_operator() {
        let methods: Vec<(String, Vec<u64>)> = stats::signin_methods(db, window)
            .await
            .map_err(err)?
            .into_iter()
            .collect();
        methods_chart = charts::stacked_bars("Sign-ins by method per day", &labels, &methods);
        enrollment = enrollment_rows(&stats::enrollment(db, window).await.map_err(err)?);
        errors = stats::endpoint_errors(db, window)
            .await
            .map_err(err)?
            .into_iter()
            .map(|(endpoint, all, c4, c5)| Row {
                name: endpoint,
                values: vec![
                    all.to_string(),
                    c4.to_string(),
                    c5.to_string(),
                    percent(c4 + c5, all),
                ],
            })
            .collect();
    }
    Ok(pages::render(&Dashboard {
        operator: scope.is_operator(),
        days,
        signins_chart,
        signins,
        claims,
        step_ups,
        methods_chart,
        enrollment,
        errors,
    }))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

fn enrollment_rows(e: &stats::Enrollment) -> Vec<Row> {
    let mut rows: Vec<Row> = e
        .by_level
        .iter()
        .map(|(level, n)| Row {
            name: format!("Accounts proven at {level}"),
            values: vec![n.to_string(), percent(*n, e.accounts)],
        })
        .collect();
    rows.push(Row {
        name: "First eID enrollments / accounts created in the period".to_owned(),
        values: vec![
            format!("{} / {}", e.enrolled_in_window, e.created_in_window),
            percent(e.enrolled_in_window, e.created_in_window),
        ],
    });
    rows
}
