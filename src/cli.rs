//! The command line: `civitas [serve]`, `migrate`, `keys`, `clients`, `config`.
//!
//! Operator commands use the same domain services as the server, so a client
//! added here is exactly what dynamic registration would have made.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::key_retention_secs;
use crate::audit::Actor;
use crate::clients::{Clients, MetadataRequest, OperatorOptions, SubjectType};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::keys::{Alg, KeyManager};
use crate::store::Database;

/// Civitas, an OpenID Connect identity provider for e-government.
mod audit;
use audit::{AuditCommand, cover_what_was_written};
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Optional unless given explicitly.
    #[arg(long, env = "CIVITAS_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Relying parties.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Organizations from the business register.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new key per algorithm, published now and signing after the delay.
    Rotate {
        /// Delay before the new keys sign, for example `1d` or `3600`
        /// (default: keys.activation_delay).
        #[arg(long)]
        delay: Option<String>,
        /// Only rotate this algorithm (ES256, RS256, PS256 or EdDSA); repeatable.
        #[arg(long = "alg")]
        algs: Vec<String>,
    },
    /// List the keys and their states.
    List,
}

#[derive(Debug, Subcommand)]
enum OrgsCommand {
    /// Import a business-register extract (JSON array, or CSV with the header
    /// country,code,name,rep_country,rep_person_identifier,rep_name,rep_role).
    Import {
        /// The extract.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its id and, once, its secret.
    Add {
        /// Display name shown to citizens.
        #[arg(long)]
        name: Option<String>,
        /// Exact redirect URI; repeatable.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Exact post-logout redirect URI; repeatable.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Grant type (authorization_code, refresh_token, client_credentials, or the token-exchange and jwt-bearer URNs); repeatable.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
        #[arg(long)]
        auth_method: Option<String>,
        /// Scopes the client may ask for, space-separated.
        #[arg(long)]
        scope: Option<String>,
        /// The client's JWK Set URL (private_key_jwt).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// First-party service: consent is not asked.
        #[arg(long)]
        first_party: bool,
        /// Public (non-pairwise) subject identifiers.
        #[arg(long)]
        public_subject: bool,
        /// Allow the admin API: the client may obtain `civitas:admin`
        /// tokens with client_credentials (add `--grant client_credentials`).
        #[arg(long)]
        admin: bool,
    },
    /// Allow (true) or forbid (false) a client the admin API; effective at
    /// its next admin call, even with a token issued before.
    SetAdmin {
        /// The client id.
        client_id: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        admin: bool,
    },
    /// Allow (true) or forbid (false) an admin client national identifiers
    /// in clear in the admin API's export (scope
    /// `civitas:admin:identifiers`); effective at its next call, and only
    /// while it is admin too.
    SetAdminIdentifiers {
        /// The client id.
        client_id: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        allowed: bool,
    },
    /// List every client.
    List,
    /// Show one client's metadata.
    Show {
        /// The client id.
        client_id: String,
    },
    /// Delete a client.
    Remove {
        /// The client id.
        client_id: String,
    },
    /// Issue a new secret, invalidating the old one at once.
    ResetSecret {
        /// The client id.
        client_id: String,
    },
    /// Allow the client to exchange tokens (RFC 8693) for a downstream audience.
    AllowExchange {
        /// The client id.
        client_id: String,
        /// The downstream service: its client id, or a resource URI.
        #[arg(long)]
        audience: String,
    },
    /// Set the verified claims (from eID proofing) the client may receive.
    AllowClaims {
        /// The client id.
        client_id: String,
        /// Comma-separated: given_name, family_name, birthdate, nationalities, person_identifier
        /// (empty to allow none).
        #[arg(long, default_value = "")]
        claims: String,
        /// The legal basis of the decision (for example the act and section).
        #[arg(long, default_value = "")]
        legal_basis: String,
    },
}

/// Runs the command line; the process exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (file, required) = match &cli.config {
        Some(f) => (f.clone(), true),
        None => (PathBuf::from("civitas.toml"), false),
    };
    let settings = match Settings::load(&file, required) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("civitas: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(settings.log.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("civitas: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("civitas: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

async fn run(command: Command, settings: Settings) -> CliResult {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Serve => serve(settings, clock).await,
        Command::Migrate => {
            let db = Database::connect(&settings.database_url, &settings.database).await?;
            db.migrate().await?;
            println!(
                "migrations applied to {}",
                redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::Config => {
            let mut shown = settings;
            shown.database_url = redact_url(&shown.database_url);
            shown.cache_url = redact_url(&shown.cache_url);
            println!("{shown:#?}");
            Ok(())
        }
        Command::Keys(k) => {
            let writes = matches!(k, KeysCommand::Rotate { .. });
            keys(k, &settings, &clock).await?;
            if writes {
                cover_what_was_written(&settings, &clock).await;
            }
            Ok(())
        }
        Command::Audit(a) => audit::audit(a, &settings, &clock).await,
        Command::Clients(c) => {
            let writes = !matches!(c, ClientsCommand::List | ClientsCommand::Show { .. });
            clients(c, &settings, clock.clone()).await?;
            if writes {
                cover_what_was_written(&settings, &clock).await;
            }
            Ok(())
        }
        Command::Orgs(OrgsCommand::Import { file }) => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let entries = crate::mandates::register::parse(&text)?;
            let db = Database::connect(&settings.database_url, &settings.database).await?;
            db.migrate().await?;
            let keys = crate::eid::EidKeys::load(&db, clock.now()).await?;
            let summary = crate::mandates::register::import(
                &db,
                &keys,
                &entries,
                Actor::Operator,
                clock.now(),
            )
            .await?;
            println!(
                "imported {} organizations with {} representatives; {} representatives removed",
                summary.organizations, summary.representatives, summary.removed
            );
            cover_what_was_written(&settings, &clock).await;
            Ok(())
        }
    }
}

async fn serve(settings: Settings, clock: SharedClock) -> CliResult {
    let issuer = settings.issuer.clone();
    let registration = settings.registration_token.is_some();
    let started = std::time::Instant::now();
    let server = crate::startup::start(settings, clock).await?;
    tracing::info!(
        issuer,
        listen = %server.addr,
        metrics = %server.metrics_addr.map_or_else(String::new, |a| a.to_string()),
        database = %redact_url(&server.app.settings.database_url),
        cache = server.app.cache.kind(),
        ms = started.elapsed().as_millis(),
        "Civitas is ready"
    );
    println!("Civitas is serving {issuer} (listening on {})", server.addr);
    println!("  discovery: {issuer}/.well-known/openid-configuration");
    if let Some(metrics) = server.metrics_addr {
        println!("  metrics (not public): http://{metrics}/metrics");
    }
    if registration {
        println!(
            "  register a client: POST {issuer}/register with `Authorization: Bearer $CIVITAS_REGISTRATION_TOKEN`"
        );
    } else {
        println!(
            "  register a first client: civitas clients add --name \"My portal\" --redirect-uri http://localhost:3000/callback"
        );
        println!(
            "  (or set CIVITAS_REGISTRATION_TOKEN to open dynamic registration at {issuer}/register)"
        );
    }
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn keys(command: KeysCommand, settings: &Settings, clock: &SharedClock) -> CliResult {
    let retention = key_retention_secs(settings);
    match command {
        KeysCommand::Rotate { delay, algs } => {
            let delay = match delay {
                Some(d) => parse_duration(&d)?,
                None => settings.keys.activation_delay,
            };
            let algs = if algs.is_empty() {
                Alg::ALL.to_vec()
            } else {
                algs.iter()
                    .map(|a| {
                        Alg::parse(a).ok_or_else(|| {
                            format!("unknown algorithm `{a}` (ES256, RS256, PS256 or EdDSA)")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let added = KeyManager::rotate(&settings.keys_dir, clock, &algs, delay.as_secs())?;
            // The keys live in files, not in the database: the entry follows
            // them, and a failure to write it is reported.
            let db = Database::connect(&settings.database_url, &settings.database).await?;
            db.migrate().await?;
            let event = crate::audit::Event::by(crate::audit::Kind::KeyRotated, Actor::Operator)
                .with(
                    "kids",
                    added.iter().map(|m| m.kid.clone()).collect::<Vec<_>>(),
                )
                .with("activates_in_secs", delay.as_secs());
            crate::audit::record_alone(&db, &event, clock.now()).await?;
            for meta in added {
                println!(
                    "added {} key {}: published now, signs from {} ({}s from now)",
                    meta.alg.as_str(),
                    meta.kid,
                    meta.activates_at,
                    delay.as_secs()
                );
            }
            Ok(())
        }
        KeysCommand::List => {
            for k in KeyManager::list(&settings.keys_dir, clock, retention)? {
                println!(
                    "{}  {:<5}  activates {}  {}",
                    k.kid,
                    k.alg.as_str(),
                    k.activates_at,
                    k.state
                );
            }
            Ok(())
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    Settings::from_toml(&format!("[keys]\nactivation_delay = {text:?}"))
        .map(|s| s.keys.activation_delay)
        .map_err(|_| {
            format!("invalid duration `{text}`: use seconds or a number with s, m, h or d")
        })
}

async fn clients(command: ClientsCommand, settings: &Settings, clock: SharedClock) -> CliResult {
    let db = Database::connect(&settings.database_url, &settings.database).await?;
    db.migrate().await?;
    let outbound = crate::outbound::Fetcher::for_issuer(&settings.issuer)?;
    let registry = Clients::new(db, clock, outbound);
    match command {
        ClientsCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            grants,
            auth_method,
            scope,
            jwks_uri,
            first_party,
            public_subject,
            admin,
        } => {
            let mut request = serde_json::json!({
                "client_name": name,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": post_logout_redirect_uris,
                "token_endpoint_auth_method": auth_method,
                "scope": scope,
                "jwks_uri": jwks_uri,
            });
            if !grants.is_empty() {
                request["grant_types"] = grants.into();
            }
            let request: MetadataRequest = serde_json::from_value(request)?;
            let metadata = request.validate()?;
            let issued = registry
                .register(
                    metadata,
                    OperatorOptions {
                        first_party,
                        subject_type: if public_subject {
                            SubjectType::Public
                        } else {
                            SubjectType::Pairwise
                        },
                        registration_token: false,
                        admin,
                    },
                    &Actor::Operator,
                )
                .await?;
            println!("client_id:     {}", issued.client.client_id);
            if let Some(secret) = issued.client_secret {
                println!("client_secret: {}", secret.expose());
                println!(
                    "(the secret is shown only now; store it in the relying party's secret store)"
                );
            }
            Ok(())
        }
        ClientsCommand::List => {
            for c in registry.list().await? {
                println!(
                    "{}  {:<30}  {}{}{}{}",
                    c.client_id,
                    c.metadata.client_name.as_deref().unwrap_or("-"),
                    c.metadata
                        .grant_types
                        .iter()
                        .map(|g| format!("{g:?}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    if c.first_party { "  first-party" } else { "" },
                    if c.admin { "  admin" } else { "" },
                    if c.admin_identifiers {
                        "  identifiers"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        ClientsCommand::Show { client_id } => {
            let c = registry
                .get(&client_id)
                .await?
                .ok_or_else(|| format!("no client `{client_id}`"))?;
            let mut out = serde_json::to_value(&c.metadata)?;
            out["client_id"] = c.client_id.as_str().into();
            out["first_party"] = c.first_party.into();
            out["admin"] = c.admin.into();
            out["admin_identifiers"] = c.admin_identifiers.into();
            out["subject_type"] = serde_json::to_value(c.subject_type)?;
            out["client_id_issued_at"] = c.created_at.0.into();
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        ClientsCommand::Remove { client_id } => {
            if registry.delete(&client_id, &Actor::Operator).await? {
                println!("removed {client_id}");
                Ok(())
            } else {
                Err(format!("no client `{client_id}`").into())
            }
        }
        ClientsCommand::AllowExchange {
            client_id,
            audience,
        } => {
            registry
                .allow_exchange(&client_id, &audience, &Actor::Operator)
                .await?;
            println!("{client_id} may exchange tokens for {audience}");
            Ok(())
        }
        ClientsCommand::AllowClaims {
            client_id,
            claims,
            legal_basis,
        } => {
            let claims: Vec<String> = claims
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            registry
                .allow_claims(&client_id, &claims, &legal_basis, &Actor::Operator)
                .await?;
            println!(
                "{client_id} may receive: {}",
                if claims.is_empty() {
                    "no verified claims".into()
                } else {
                    claims.join(", ")
                }
            );
            Ok(())
        }
        ClientsCommand::SetAdmin { client_id, admin } => {
            if registry
                .set_admin(&client_id, admin, &Actor::Operator)
                .await?
            {
                println!(
                    "{client_id} {} the admin API",
                    if admin {
                        "may use"
                    } else {
                        "may no longer use"
                    }
                );
                Ok(())
            } else {
                Err(format!("no client `{client_id}`").into())
            }
        }
        ClientsCommand::SetAdminIdentifiers { client_id, allowed } => {
            let Some(client) = registry.get(&client_id).await? else {
                return Err(format!("no client `{client_id}`").into());
            };
            registry
                .set_admin_identifiers(&client_id, allowed, &Actor::Operator)
                .await?;
            println!(
                "{client_id} {} national identifiers in the admin API's export",
                if allowed {
                    "may read"
                } else {
                    "may no longer read"
                }
            );
            if allowed && !client.admin {
                println!(
                    "(it is not admin: the flag counts only after `set-admin {client_id} true`)"
                );
            }
            Ok(())
        }
        ClientsCommand::ResetSecret { client_id } => {
            let secret = registry.reset_secret(&client_id, &Actor::Operator).await?;
            println!("client_secret: {}", secret.expose());
            Ok(())
        }
    }
}
