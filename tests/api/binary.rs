//! The `civitas` binary: layered configuration from the environment, and the
//! operator's commands.

use std::process::Command;

fn civitas(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_civitas"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn an_unknown_environment_setting_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = civitas(dir.path())
        .arg("config")
        .env("CIVITAS_ISUER", "https://id.example.gov")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("isuer"), "{err}");
}

#[test]
fn the_production_binary_has_no_eid_simulator_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = civitas(dir.path())
        .args(["eid-simulator", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown command");
    // Not merely hidden: the simulator's code and page are not linked in.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_civitas")).unwrap();
    for needle in [&b"Development eID simulator"[..], b"tampered-state"] {
        assert!(
            !binary.windows(needle.len()).any(|w| w == needle),
            "the binary contains {:?}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn an_unknown_file_setting_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("civitas.toml"),
        "[tokens]\naccess_ttl = \"5m\"\n",
    )
    .unwrap();
    let out = civitas(dir.path()).arg("config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("access_ttl"), "{err}");
}

#[test]
fn the_environment_overrides_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("civitas.toml"),
        "issuer = \"https://file.example.gov\"\nlisten = \"127.0.0.1:9999\"\n[tokens]\naccess_token_ttl = \"10m\"\n",
    )
    .unwrap();
    let out = civitas(dir.path())
        .arg("config")
        .env("CIVITAS_ISSUER", "https://env.example.gov")
        .env("CIVITAS_REGISTRATION_TOKEN", "super-secret-initial-token")
        .env("CIVITAS_TOKENS__ID_TOKEN_TTL", "120")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("https://env.example.gov"), "{text}");
    assert!(text.contains("127.0.0.1:9999"), "{text}");
    assert!(text.contains("access_token_ttl: 600s"), "{text}");
    assert!(text.contains("id_token_ttl: 120s"), "{text}");
    assert!(text.contains("cache_url: \"memory\""), "{text}");
    assert!(
        !text.contains("super-secret-initial-token"),
        "secrets are redacted: {text}"
    );
}

#[test]
fn operators_add_list_show_and_remove_clients_and_rotate_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = civitas(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let added = run(&[
        "clients",
        "add",
        "--name",
        "Tax portal",
        "--redirect-uri",
        "https://tax.agency.example/cb",
        "--first-party",
    ]);
    let client_id = added
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(added.contains("client_secret:"));
    assert!(
        dir.path().join("data/civitas.db").exists(),
        "the SQLite file is created under data/"
    );
    assert!(run(&["clients", "list"]).contains("Tax portal"));
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["clients", "show", &client_id])).unwrap();
    assert_eq!(shown["first_party"], true);
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["https://tax.agency.example/cb"])
    );
    assert_eq!(shown["admin"], false);
    // Only the operator marks a client admin, and can take it back.
    assert!(run(&["clients", "set-admin", &client_id, "true"]).contains("may use"));
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["clients", "show", &client_id])).unwrap();
    assert_eq!(shown["admin"], true);
    assert!(run(&["clients", "list"]).contains("admin"));
    // National identifiers in the export: a flag of its own.
    assert_eq!(shown["admin_identifiers"], false);
    assert!(run(&["clients", "set-admin-identifiers", &client_id, "true"]).contains("may read"));
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["clients", "show", &client_id])).unwrap();
    assert_eq!(shown["admin_identifiers"], true);
    assert!(run(&["clients", "list"]).contains("identifiers"));
    run(&["clients", "set-admin", &client_id, "false"]);
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["clients", "show", &client_id])).unwrap();
    assert_eq!(shown["admin"], false);
    let console = run(&[
        "clients",
        "add",
        "--name",
        "Console",
        "--grant",
        "client_credentials",
        "--admin",
    ]);
    let console_id = console
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["clients", "show", &console_id])).unwrap();
    assert_eq!(shown["admin"], true);
    assert!(
        !civitas(dir.path())
            .args(["clients", "set-admin", "no-such-client", "true"])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(run(&["clients", "reset-secret", &client_id]).contains("client_secret:"));
    run(&["clients", "remove", &client_id]);
    assert!(!run(&["clients", "list"]).contains("Tax portal"));
    let out = civitas(dir.path())
        .args(["clients", "add", "--redirect-uri", "http://evil.example/cb"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));

    // Keys: generated on first use, rotated on demand.
    run(&["migrate"]);
    let out = civitas(dir.path())
        .args(["keys", "rotate", "--delay", "1h", "--alg", "ES256"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = run(&["keys", "list"]);
    assert!(listed.contains("pending"), "{listed}");
}

#[test]
fn operators_import_a_business_register_extract() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("register.csv");
    std::fs::write(
        &file,
        "country,code,name,rep_country,rep_person_identifier,rep_name,rep_role\n\
         EE,12345678,Acme OÜ,EE,38001085718,Mari Maasikas,board member\n",
    )
    .unwrap();
    let out = civitas(dir.path())
        .args(["orgs", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("imported 1 organizations with 1 representatives"),
        "{text}"
    );
    std::fs::write(&file, "country;code\n").unwrap();
    let out = civitas(dir.path())
        .args(["orgs", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("header"));
}
