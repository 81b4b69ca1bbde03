//! Architecture invariants that a test can check: domain modules know
//! nothing of HTTP or pages, and nothing reads the wall clock but `clock`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn domain_modules_never_import_axum_askama_or_tower() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let adapters = ["web", "startup.rs", "cli.rs", "main.rs", "lib.rs"];
    let mut offenders = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        if adapters.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Outbound HTTP (reqwest) is allowed: fetching a client's JWKS or
        // posting a logout token is domain work, not an HTTP adapter.
        for forbidden in ["axum", "askama", "tower"] {
            if text
                .lines()
                .any(|l| !l.trim_start().starts_with("//") && l.contains(&format!("{forbidden}::")))
            {
                offenders.push(format!("{} uses {forbidden}", rel.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "domain modules must not know HTTP: {offenders:?}"
    );
}

#[test]
fn only_the_clock_module_reads_the_wall_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        if f.ends_with("clock.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("SystemTime::now"),
            "{} reads the wall clock; take a Clock",
            f.display()
        );
    }
}

/// Every outbound connection to a URL a client or an upstream chose goes
/// through `src/outbound` (review M3): no other module of the server builds
/// an HTTP client. The test kit and the benchmark are clients of Civitas,
/// not part of the server.
#[test]
fn only_the_outbound_module_builds_an_http_client() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed = ["outbound", "testkit", "bin"];
    let mut offenders = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        if allowed.contains(&top) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for built in [
            "reqwest::Client::builder",
            "reqwest::Client::new",
            "ClientBuilder",
        ] {
            if text.contains(built) {
                offenders.push(format!("{} uses {built}", rel.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "outbound fetches go through civitas::outbound::Fetcher: {offenders:?}"
    );
}
