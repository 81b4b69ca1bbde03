//! One person, one identifier: a national identifier matches the same
//! person whether it is spelled bare (`38001085718`), prefixed as TARA and
//! the simulator return it (`EE38001085718`) or as an eIDAS unique
//! identifier (`EE/EE/38001085718`), in the register, in an eID binding
//! and in a mandate's addressee; a prefix of another country is refused;
//! bindings stored by earlier versions are recomputed at start-up; the
//! verified claim `person_identifier` is released only in the canonical
//! form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use civitas::accounts::AccountId;
use civitas::eid;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Stack, TestApp, TestEnv};
use crate::mandate_guarantees::{
    ANNE, JAAN, MARI, acme_with_mari, estonian, give, given, ids_under, proven,
};
use crate::on_both_stacks;

const SPELLINGS: [&str; 3] = ["bare", "prefixed", "eIDAS"];

fn spelled(spelling: &str, id: &str) -> String {
    match spelling {
        "bare" => id.to_owned(),
        "prefixed" => format!("EE{id}"),
        _ => format!("EE/EE/{id}"),
    }
}

async fn import(app: &TestApp, token: &str, body: String) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/admin/register"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn a_register_in_any_spelling_matches_an_eid_in_any_spelling(stack: Stack) {
    let Some((app, _sim)) = crate::eid::with_simulator(stack).await else {
        return;
    };
    let (_, admin) = crate::admin::admin(&app).await;
    // Six organizations: for each spelling, one imported as JSON and one as
    // CSV, each listing Mari, Jaan and Anne in that spelling.
    let people = [
        (MARI, "Mari Maasikas"),
        (JAAN, "Jaan Tamm"),
        (ANNE, "Anne Kask"),
    ];
    let json_extract: Vec<Value> = SPELLINGS
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let reps: Vec<Value> = people
                .iter()
                .map(|(id, name)| json!({"country": "EE", "person_identifier": spelled(s, id), "name": name}))
                .collect();
            json!({"country": "EE", "code": format!("1000000{n}"), "name": format!("{s} JSON OÜ"), "representatives": reps})
        })
        .collect();
    let (status, summary) = import(&app, &admin, json!(json_extract).to_string()).await;
    assert_eq!(
        (status, summary["representatives"].as_i64()),
        (200, Some(9)),
        "{summary}"
    );
    let mut csv =
        "country,code,name,rep_country,rep_person_identifier,rep_name,rep_role\n".to_owned();
    for (n, s) in SPELLINGS.iter().enumerate() {
        for (id, name) in people {
            csv.push_str(&format!(
                "ee,2000000{n},{s} CSV OÜ,ee,{},{name},\n",
                spelled(s, id)
            ));
        }
    }
    let (status, summary) = import(&app, &admin, csv).await;
    assert_eq!(
        (status, summary["representatives"].as_i64()),
        (200, Some(9)),
        "{summary}"
    );

    // Mari proves her identity through the simulator, which returns it
    // prefixed; Jaan's eID returns it bare, Anne's in the eIDAS form.
    let (mut mari, _mk, mari_id) = crate::eid::signed_up(&app, true).await;
    crate::eid::through_eid(
        &mut mari,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    let (_jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    let (_anne, _ak, anne_id) = proven(&app, &spelled("eIDAS", ANNE), "anne@example.eu").await;

    for (who, account) in [("Mari", &mari_id), ("Jaan", &jaan_id), ("Anne", &anne_id)] {
        let powers = app.app().mandates.powers_of(account).await.unwrap();
        let mut orgs: Vec<&str> = powers.iter().map(|p| p.org_name.as_str()).collect();
        orgs.sort_unstable();
        assert_eq!(
            orgs,
            [
                "bare CSV OÜ",
                "bare JSON OÜ",
                "eIDAS CSV OÜ",
                "eIDAS JSON OÜ",
                "prefixed CSV OÜ",
                "prefixed JSON OÜ"
            ],
            "{who} is a board member of every organization"
        );
        assert!(
            powers
                .iter()
                .all(|p| p.mandate_ref.starts_with("statutory:"))
        );
    }
    let page = mari.page("/account/organizations").await;
    assert_eq!(
        page.matches("statutory representative").count(),
        6,
        "{page}"
    );

    // What is stored and released is the canonical form; every spelling
    // finds the same account (eID recovery).
    let (db, keys) = (&app.app().db, &app.app().eid_keys);
    for (account, id) in [(&mari_id, MARI), (&anne_id, ANNE)] {
        let binding = eid::binding(db, keys, account).await.unwrap().unwrap();
        assert_eq!(binding.identity.person_identifier, id);
        for s in SPELLINGS {
            assert_eq!(
                eid::account_of(db, keys, &estonian(&spelled(s, id)))
                    .await
                    .unwrap()
                    .as_ref(),
                Some(account),
                "{s}"
            );
        }
    }
}

on_both_stacks!(a_register_in_any_spelling_matches_an_eid_in_any_spelling);

async fn a_mandate_addressed_in_any_spelling_reaches_the_citizen_whose_eid_spells_it_otherwise(
    stack: Stack,
) {
    let Some((app, _sim)) = crate::eid::with_simulator(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    // The register names Mari bare; her eID spells it the eIDAS way.
    let (mut mari, _mk, _) = proven(&app, &spelled("eIDAS", MARI), "mari@example.eu").await;
    // Jaan's eID is the simulator's, which prefixes; Anne's returns it bare.
    let (mut jaan, _jk, jaan_id) = crate::eid::signed_up(&app, true).await;
    crate::eid::through_eid(
        &mut jaan,
        "/account/eid/start?connector=sim",
        "jaan",
        "substantial",
        "",
        true,
    )
    .await;
    let (mut anne, _ak, anne_id) = proven(&app, ANNE, "anne@example.eu").await;

    for s in SPELLINGS {
        for id in [JAAN, ANNE] {
            let power = format!("power.{}", s.to_lowercase());
            given(
                &mut mari,
                "statutory:EE:12345678",
                &power,
                Some(("EE", &spelled(s, id))),
                false,
            )
            .await;
        }
    }
    for (b, account) in [(&mut jaan, &jaan_id), (&mut anne, &anne_id)] {
        let waiting = ids_under(b, "Mandates waiting for you").await;
        assert_eq!(waiting.len(), 3, "one mandate per spelling");
        for id in &waiting {
            let res = b
                .post_form("/account/organizations/accept", &[("mandate_id", id)])
                .await;
            assert_eq!(res.status(), 303);
        }
        let mut powers: Vec<String> = app
            .app()
            .mandates
            .powers_of(account)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|p| p.powers)
            .collect();
        powers.sort_unstable();
        assert_eq!(powers, ["power.bare", "power.eidas", "power.prefixed"]);
    }
}

on_both_stacks!(
    a_mandate_addressed_in_any_spelling_reaches_the_citizen_whose_eid_spells_it_otherwise
);

async fn an_identifier_prefixed_with_another_country_is_refused_at_import_grant_and_binding(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (_, admin) = crate::admin::admin(&app).await;
    let json = json!([{"country": "EE", "code": "12345678", "name": "Acme OÜ",
        "representatives": [{"country": "EE", "person_identifier": "LV38001085718", "name": "Mari Maasikas"}]}]);
    let csv = "country,code,name,rep_country,rep_person_identifier,rep_name,rep_role\n\
               EE,12345678,Acme OÜ,EE,LV/EE/38001085718,Mari Maasikas,\n";
    for body in [json.to_string(), csv.to_owned()] {
        let (status, error) = import(&app, &admin, body).await;
        assert_eq!(status, 400, "{error}");
        let text = error["error_description"].as_str().unwrap();
        assert!(text.contains("prefixed with country LV, not EE"), "{text}");
        assert!(
            !text.contains("38001085718"),
            "the error repeats no identifier"
        );
    }
    assert!(app.app().mandates.organizations().await.unwrap().is_empty());

    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    for (country, id, says) in [
        ("EE", "LV39912310174", "prefixed with country LV, not EE"),
        (
            "EE",
            "LT/EE/39912310174",
            "prefixed with country LT, not EE",
        ),
        ("EST", JAAN, "two letters"),
        ("EE", "3991231017", "11 digits"),
    ] {
        let res = give(
            &mut mari,
            "statutory:EE:12345678",
            "tax.file",
            Some((country, id)),
            false,
            "",
        )
        .await;
        assert_eq!(res.status(), 400, "{country} {id}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(says) && !html.contains("3991231017"),
            "{html}"
        );
    }
    assert!(
        ids_under(&mut mari, "Mandates you granted")
            .await
            .is_empty()
    );

    let anne = app.app().accounts.create("Anne", None).await.unwrap().id;
    let (db, keys) = (&app.app().db, &app.app().eid_keys);
    let err = eid::bind(
        db,
        keys,
        &anne,
        &estonian("LV49403136526"),
        app.app().clock.now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, eid::EidError::Identifier(_)) && err.to_string().contains("LV"),
        "{err}"
    );
    assert!(eid::binding(db, keys, &anne).await.unwrap().is_none());
}

on_both_stacks!(an_identifier_prefixed_with_another_country_is_refused_at_import_grant_and_binding);

/// The binding keys as stored in `server_secrets`.
async fn binding_keys(app: &TestApp) -> (Vec<u8>, Vec<u8>) {
    let key = |name: &'static str| async move {
        let (v,): (String,) = sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(app.app().db.pool())
            .await
            .unwrap();
        URL_SAFE_NO_PAD.decode(v).unwrap()
    };
    (
        key("eid-binding-hash").await,
        key("eid-identifier-encryption").await,
    )
}

fn hmac(key: &[u8], prefix: &[u8], parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(prefix);
    for p in parts {
        mac.update(&u32::try_from(p.len()).unwrap().to_be_bytes());
        mac.update(p.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Writes the binding of `account` exactly as the previous version did for
/// an eID that returned `identifier`: hashes over the identifier as
/// returned, the identifier encrypted as returned, the same INSERT.
async fn write_old_binding(app: &TestApp, account: &AccountId, identifier: &str) {
    let (hash_key, enc_key) = binding_keys(app).await;
    let iv: [u8; 12] = civitas::secrets::random_bytes();
    let mut tag = [0u8; 16];
    let sealed = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        &enc_key,
        Some(&iv),
        account.as_str().as_bytes(),
        identifier.as_bytes(),
        &mut tag,
    )
    .unwrap();
    let stored = URL_SAFE_NO_PAD.encode([&iv[..], &sealed, &tag].concat());
    sqlx::query(
        "INSERT INTO eid_bindings (account_id, identity_hash, connector, scheme, country, person_identifier_enc, \
         given_name, family_name, birthdate, level, verified_at, created_at, person_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
    )
    .bind(account.as_str())
    .bind(hmac(&hash_key, b"", &["simulated-eid", "EE", identifier]))
    .bind("sim")
    .bind("simulated-eid")
    .bind("EE")
    .bind(stored)
    .bind(Option::<String>::None)
    .bind(Option::<String>::None)
    .bind(Option::<String>::None)
    .bind("substantial")
    .bind(app.app().clock.now().0)
    .bind(hmac(&hash_key, b"person\0", &["EE", identifier]))
    .execute(app.app().db.pool())
    .await
    .unwrap();
}

async fn version_of(app: &TestApp, account: &AccountId) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT identifier_version FROM eid_bindings WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_one(app.app().db.pool())
        .await
        .unwrap()
        .0
}

async fn bindings_stored_by_an_earlier_version_are_recomputed_once_at_start_up(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let old = env.spawn().await;
    acme_with_mari(&old).await;
    let accounts = &old.app().accounts;
    let mari = accounts.create("Mari", None).await.unwrap().id;
    write_old_binding(&old, &mari, "EE38001085718").await;
    // The same person bound twice under two spellings (possible before),
    // and an identifier of no Estonian form.
    let jaan_prefixed = accounts.create("Jaan", None).await.unwrap().id;
    write_old_binding(&old, &jaan_prefixed, "EE39912310174").await;
    let jaan_bare = accounts.create("Jaan again", None).await.unwrap().id;
    write_old_binding(&old, &jaan_bare, JAAN).await;
    let odd = accounts.create("Odd", None).await.unwrap().id;
    write_old_binding(&old, &odd, "LV12345").await;
    assert!(
        old.app()
            .mandates
            .powers_of(&mari)
            .await
            .unwrap()
            .is_empty(),
        "stored prefixed, Mari misses the register that names her bare"
    );

    // Two instances of the new version start together.
    let (a, b) = tokio::join!(env.spawn(), env.spawn());
    let app = &a;
    let (db, keys) = (&app.app().db, &app.app().eid_keys);
    let powers = app.app().mandates.powers_of(&mari).await.unwrap();
    assert_eq!(powers.len(), 1, "Mari now matches the register");
    assert_eq!(b.app().mandates.powers_of(&mari).await.unwrap().len(), 1);
    let binding = eid::binding(db, keys, &mari).await.unwrap().unwrap();
    assert_eq!(
        binding.identity.person_identifier, MARI,
        "re-encrypted canonical"
    );
    assert_eq!(version_of(app, &mari).await, 1);
    for s in SPELLINGS {
        assert_eq!(
            eid::account_of(db, keys, &estonian(&spelled(s, MARI)))
                .await
                .unwrap(),
            Some(mari.clone()),
            "recovery with the {s} spelling"
        );
    }
    // The twin that would collide keeps its old form; the other is canonical.
    assert_eq!(version_of(app, &jaan_bare).await, 1);
    assert_eq!(version_of(app, &jaan_prefixed).await, 0);
    assert_eq!(
        eid::account_of(db, keys, &estonian("EE39912310174"))
            .await
            .unwrap(),
        Some(jaan_bare)
    );
    assert_eq!(version_of(app, &odd).await, 0);

    // Idempotent: what is left is what cannot be done.
    let again = eid::recompute_bindings(db, keys).await.unwrap();
    assert_eq!(
        again,
        eid::Recomputed {
            updated: 0,
            conflicting: 1,
            unusable: 1
        }
    );
    assert_eq!(
        eid::binding(db, keys, &mari).await.unwrap().unwrap(),
        binding
    );
}

on_both_stacks!(bindings_stored_by_an_earlier_version_are_recomputed_once_at_start_up);

/// The `person_identifier` (and `nationalities`) that `rp` receives for
/// `account` in the ID token and from userinfo, asked for in both.
async fn released_identifier(app: &TestApp, rp: &crate::rp::Rp, account: &AccountId) -> [Value; 2] {
    let account = app.app().accounts.get(account).await.unwrap().unwrap();
    let browser = app.sign_in_as(&account, None).await;
    let asked = json!({"verification": {"trust_framework": null},
        "claims": {"person_identifier": null, "nationalities": null}});
    let request =
        json!({"id_token": {"verified_claims": asked}, "userinfo": {"verified_claims": asked}});
    let (q, verifier) = app.auth_query(
        rp,
        "openid",
        &format!("&claims={}", crate::rp::urlencode(&request.to_string())),
    );
    let params = app.front_channel(&browser, &q).await;
    let code = crate::rp::param(&params, "code").unwrap();
    let tokens: Value = app
        .exchange(rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    let info: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    [
        id["verified_claims"]["claims"].clone(),
        info["verified_claims"]["claims"].clone(),
    ]
}

/// Security review finding 8: relying parties see the canonical identifier
/// (`38001085718`), never the eID's spelling (`EE38001085718`), including
/// from a binding that start-up had to leave in its earlier form.
async fn the_verified_person_identifier_is_released_in_its_canonical_form_only(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let old = env.spawn().await;
    let accounts = &old.app().accounts;
    // Jaan bound twice by the earlier version, under two spellings: the
    // prefixed twin cannot be recomputed (its canonical identity is taken).
    let jaan_prefixed = accounts.create("Jaan", None).await.unwrap().id;
    write_old_binding(&old, &jaan_prefixed, "EE39912310174").await;
    let jaan_bare = accounts.create("Jaan again", None).await.unwrap().id;
    write_old_binding(&old, &jaan_bare, JAAN).await;
    // No Estonian identifier at all.
    let odd = accounts.create("Odd", None).await.unwrap().id;
    write_old_binding(&old, &odd, "LV12345").await;
    old.stop().await;

    let app = env.spawn().await;
    assert_eq!(version_of(&app, &jaan_prefixed).await, 0);
    assert_eq!(version_of(&app, &odd).await, 0);
    // Mari, bound now through an eID that spells her identifier prefixed.
    let mari = app.app().accounts.create("Mari", None).await.unwrap().id;
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &mari,
        &estonian("EE38001085718"),
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let rp = app.portal(json!({"client_name": "Tax office"})).await;
    app.app()
        .clients
        .allow_claims(
            &rp.client_id,
            &["person_identifier".into(), "nationalities".into()],
            "Taxation Act §3",
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();

    for (account, canonical) in [(&mari, MARI), (&jaan_prefixed, JAAN), (&jaan_bare, JAAN)] {
        for claims in released_identifier(&app, &rp, account).await {
            assert_eq!(
                claims,
                json!({"person_identifier": canonical, "nationalities": ["EE"]}),
                "in the ID token and from userinfo"
            );
        }
    }
    // An identifier that has no canonical form is not released at all.
    for claims in released_identifier(&app, &rp, &odd).await {
        assert_eq!(claims, json!({"nationalities": ["EE"]}));
    }
}

on_both_stacks!(the_verified_person_identifier_is_released_in_its_canonical_form_only);
