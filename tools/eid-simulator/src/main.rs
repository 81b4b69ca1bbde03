//! `civitas-eid-simulator`: runs the development eID provider on a loopback
//! address until interrupted. Never for production: anyone who reaches it
//! can choose any identity at any level.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use civitas_eid_simulator::{SimulatorConfig, start};
use clap::Parser;

/// A development eID provider for Civitas (a test OpenID provider; never for production).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; loopback addresses only.
    #[arg(long, default_value = "127.0.0.1:9091")]
    listen: SocketAddr,
    /// Its issuer URL. The default is another site than Civitas's default
    /// issuer (`http://localhost:8080`), as a real eID provider is.
    #[arg(long, default_value = "http://127.0.0.1:9091")]
    issuer: String,
    /// Fixture file of test identities.
    #[arg(long, default_value = "tests/fixtures/eid-identities.json")]
    fixtures: PathBuf,
    /// Directory of the simulator's own signing key.
    #[arg(long, default_value = "data/eid-simulator-keys")]
    keys_dir: PathBuf,
    /// Civitas's client id at the simulator.
    #[arg(long, default_value = "civitas")]
    client_id: String,
    /// Civitas's redirect URI (its issuer + /eid/callback).
    #[arg(long, default_value = "http://localhost:8080/eid/callback")]
    redirect_uri: String,
    /// Civitas's connector key set (its issuer + /eid/jwks).
    #[arg(long, default_value = "http://localhost:8080/eid/jwks")]
    client_jwks_uri: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: the eID simulator listens on loopback addresses only, not {}",
            args.listen
        );
        return ExitCode::from(2);
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let issuer = args.issuer.clone();
    let sim = match start(
        listener,
        SimulatorConfig {
            issuer: args.issuer,
            fixtures: args.fixtures,
            keys_dir: args.keys_dir,
            client_id: args.client_id,
            redirect_uri: args.redirect_uri,
            client_jwks_uri: args.client_jwks_uri,
        },
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "eID simulator (development only) at {issuer}, listening on {}",
        sim.addr
    );
    let _ = tokio::signal::ctrl_c().await;
    sim.stop();
    ExitCode::SUCCESS
}
