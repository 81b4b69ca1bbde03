//! The `audit` commands: `verify` (with `--trusted`), `checkpoint`,
//! `export`, and the audit entry of `keys rotate`.

use std::path::Path;
use std::process::Output;

use civitas::store::Database;
use serde_json::Value;

use super::exec;

/// Runs the binary in `dir` against the SQLite database `url`.
fn civitas(dir: &Path, url: &str, args: &[&str]) -> Output {
    civitas_logging(dir, url, "warn", args)
}

/// …logging at `level`, as JSON.
fn civitas_logging(dir: &Path, url: &str, level: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", level)
        .env("CIVITAS_LOG__FORMAT", "json")
        .env("CIVITAS_DATABASE_URL", url)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `civitas audit verify` at the command line: exit 0 on a clean chain,
/// exit 1 naming the first broken entry; `civitas keys rotate` is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_commands_verify_export_and_record_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let run = |args: &[&str]| civitas(dir.path(), &url, args);
    ok(&run(&["keys", "rotate", "--delay", "0"]));
    assert!(ok(&run(&["audit", "verify"])).contains("intact"));
    ok(&run(&["audit", "checkpoint"]));
    let text = ok(&run(&["audit", "export"]));
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "key.rotated");
    assert_eq!(first["actor"], "operator");
    assert_eq!(first["detail"]["kids"].as_array().unwrap().len(), 4);

    let db = Database::connect(&url, &civitas::config::DatabaseSettings::default())
        .await
        .unwrap();
    exec(
        &db,
        "UPDATE audit_log SET kind = 'client.deleted' WHERE seq = 1",
    )
    .await;
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken at entry 1"), "{err}");
}

/// A command that writes entries signs a checkpoint and exports it to
/// `audit.checkpoint_file` (by default under `data/`), and `verify
/// --trusted` finds against it what the database alone no longer shows:
/// here a tail cut together with its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_trusted_checks_the_log_against_the_exported_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let run = |args: &[&str]| civitas(dir.path(), &url, args);
    ok(&run(&["keys", "rotate", "--delay", "0"]));
    let out = ok(&run(&["audit", "checkpoint"]));
    // The command that wrote the entry signed it already, as no instance
    // runs to do so.
    assert!(out.contains("already has a checkpoint"), "{out}");
    ok(&run(&["keys", "rotate", "--delay", "0", "--alg", "ES256"]));
    let file = dir.path().join("data/audit-checkpoints.jsonl");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["seq"].as_i64(), lines[1]["seq"].as_i64()),
        (Some(1), Some(2))
    );
    // The signing key's public key travels with each.
    for l in &lines {
        assert_eq!(l["jwk"]["kid"], l["kid"]);
        assert_eq!(l["jwk"]["crv"], "P-256");
        assert!(l["jwk"].get("d").is_none(), "no private member");
    }
    let trusted = [
        "audit",
        "verify",
        "--trusted",
        "data/audit-checkpoints.jsonl",
    ];
    let out = ok(&run(&trusted));
    assert!(out.contains("2 exported checkpoints checked"), "{out}");
    assert!(out.contains("intact"), "{out}");

    // The tail cut, the head rolled back, the checkpoint deleted.
    let db = Database::connect(&url, &civitas::config::DatabaseSettings::default())
        .await
        .unwrap();
    exec(
        &db,
        "UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM audit_log WHERE seq = 1) WHERE id = 1",
    )
    .await;
    exec(&db, "DELETE FROM audit_log WHERE seq > 1").await;
    exec(&db, "DELETE FROM audit_checkpoints WHERE seq > 1").await;
    db.close().await;
    assert!(
        ok(&run(&["audit", "verify"])).contains("intact"),
        "not visible in the database"
    );
    let out = run(&trusted);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken at entry 2"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("audit-checkpoints.jsonl:2"), "{err}");

    // A trusted file that is not there, or holds no checkpoint, is an error.
    let out = run(&["audit", "verify", "--trusted", "nowhere.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.jsonl"));
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let out = run(&["audit", "verify", "--trusted", "empty.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no checkpoint"));
}

/// The `info` log line of a checkpoint carries what `verify --trusted`
/// needs: JSON log lines shipped by a log pipeline serve as the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_of_checkpoints_serve_as_trusted_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let out = civitas_logging(
        dir.path(),
        &url,
        "info",
        &["keys", "rotate", "--delay", "0"],
    );
    let logged: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("audit checkpoint signed"))
        .collect();
    assert_eq!(logged.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    let line: Value = serde_json::from_str(logged[0]).unwrap();
    assert_eq!(line["seq"], 1);
    assert!(line["jws"].as_str().unwrap().starts_with("eyJ"));
    // Shipped with other log lines around it.
    std::fs::write(
        dir.path().join("shipped.log"),
        format!("{{\"message\":\"other\"}}\n{}\n", logged[0]),
    )
    .unwrap();
    let out = ok(&civitas(
        dir.path(),
        &url,
        &["audit", "verify", "--trusted", "shipped.log"],
    ));
    assert!(out.contains("1 exported checkpoints checked"), "{out}");
    // A line changed in the copy is not taken for a checkpoint.
    let forged = logged[0].replace("\"seq\":1", "\"seq\":2");
    std::fs::write(dir.path().join("forged.log"), format!("{forged}\n")).unwrap();
    let out = civitas(
        dir.path(),
        &url,
        &["audit", "verify", "--trusted", "forged.log"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not say what its checkpoint signs"),
        "{err}"
    );
}

/// `verify --trusted` checks a line only with a key of Civitas (the keys
/// directory) or one the operator pins with `--trusted-key` (a JWK, or the
/// JWKS Civitas published), never with the key the line carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_line_is_checked_only_with_a_key_of_civitas_or_one_the_operator_pins() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let run = |args: &[&str]| civitas(dir.path(), &url, args);
    ok(&run(&["keys", "rotate", "--delay", "0"]));
    ok(&run(&["keys", "rotate", "--delay", "0", "--alg", "ES256"]));
    let file = dir.path().join("data/audit-checkpoints.jsonl");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = lines[0]["kid"].as_str().unwrap().to_owned();
    assert_ne!(
        lines[1]["kid"], first,
        "the second was signed by the new key"
    );
    // What the operator kept: the JWKS Civitas published.
    let keys = civitas::keys::KeyManager::open(
        &dir.path().join("keys"),
        std::sync::Arc::new(civitas::clock::SystemClock),
        86_400,
    )
    .unwrap();
    let jwks: Value = serde_json::from_slice(&keys.jwks()).unwrap();
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == first.as_str())
        .unwrap();
    std::fs::write(dir.path().join("first.jwk"), jwk.to_string()).unwrap();
    let rsa: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .collect();
    std::fs::write(
        dir.path().join("rsa.json"),
        serde_json::json!({ "keys": rsa }).to_string(),
    )
    .unwrap();
    for ext in ["pem", "json"] {
        std::fs::remove_file(dir.path().join(format!("keys/{first}.{ext}"))).unwrap();
    }
    let trusted = [
        "audit",
        "verify",
        "--trusted",
        "data/audit-checkpoints.jsonl",
    ];
    let out = run(&trusted);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken at entry 1"), "{err}");
    assert!(err.contains("audit-checkpoints.jsonl:1"), "{err}");
    assert!(err.contains("not a key of Civitas"), "{err}");
    for pin in ["jwks.json", "first.jwk"] {
        let out = ok(&run(&[&trusted[..], &["--trusted-key", pin]].concat()));
        assert!(out.contains("intact"), "{out}");
        assert!(out.contains("(0 signed by keys not at hand)"), "{out}");
    }
    let out = run(&[&trusted[..], &["--trusted-key", "rsa.json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no P-256 public key"), "{err}");
}

/// `audit accept` does not sign a start of the log that was moved after a
/// version that signs it ran (here, the commands' own checkpoints carry
/// it): it exits 1 and signs nothing, and `verify` still reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_does_not_sign_a_start_of_the_log_moved_after_it_was_signed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("civitas.db").display());
    let run = |args: &[&str]| civitas(dir.path(), &url, args);
    ok(&run(&["keys", "rotate", "--delay", "0"]));
    ok(&run(&["keys", "rotate", "--delay", "0", "--alg", "ES256"]));
    let db = Database::connect(&url, &civitas::config::DatabaseSettings::default())
        .await
        .unwrap();
    exec(
        &db,
        "UPDATE audit_head SET pruned_seq = 1, pruned_hash = (SELECT hash FROM audit_log WHERE seq = 1) WHERE id = 1",
    )
    .await;
    exec(&db, "DELETE FROM audit_log WHERE seq <= 1").await;
    db.close().await;
    let out = run(&["audit", "accept"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint 2 in the database"), "{err}");
    assert!(err.contains("nothing was signed"), "{err}");
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing signed says retention removed them"),
        "{err}"
    );
}
