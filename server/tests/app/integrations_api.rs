//! `/api/v1/integrations` for Bitbucket Data Center, against the simulator:
//! credentials checked before anything is stored, secrets never shown but
//! where entitled, the permission table, and every bad input.

use bitbucket_simulator::{
    datacenter::{DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::world::{world_with_bitbucket, World};

fn body(name: &str, scope: &str, space: Option<Uuid>, url: &str, token: &str) -> Value {
    json!({
        "name": name, "provider": "bitbucket_datacenter", "scope": scope, "space_id": space,
        "labels": ["prod", "eu"], "description": "The *main* Bitbucket.",
        "options": {"vcs_checks": "aggregated"},
        "datacenter": {"api_url": url, "username": DEMO_USER, "access_token": token}
    })
}

async fn count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap()
}

#[tokio::test]
async fn a_checked_integration_is_created_and_its_secrets_stay_hidden() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let (status, created) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("DC main", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["slug"].as_str(), created["scope"].as_str()), (Some("dc-main"), Some("space")));
    assert_eq!(created["webhook_url"], format!("{}/webhooks/bitbucket/dc-main", w.app.base));
    assert_eq!(created["datacenter"]["access_token_last4"], &DEMO_TOKEN[DEMO_TOKEN.len() - 4..]);
    assert_eq!(created["datacenter"]["user_facing_url"], created["datacenter"]["api_url"]);
    assert_eq!(created["options"]["vcs_checks"], "aggregated");
    assert_eq!(created["options"]["commit_status"], true, "defaults apply");
    assert_eq!(created["health"]["state"], "connected");
    assert!(created.get("cloud").is_none(), "exactly one of datacenter and cloud");
    let id = created["id"].as_str().unwrap().to_owned();

    // The token is nowhere: not in answers, not in clear in the database.
    let (_, listed) = w.call(admin, Method::GET, "/api/v1/integrations", None).await;
    let (_, got) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    for answer in [&created, &listed, &got] {
        assert!(!answer.to_string().contains(DEMO_TOKEN), "the token leaked: {answer}");
    }
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT access_token FROM datacenter_credentials").fetch_one(&w.app.pool).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(DEMO_TOKEN));

    // The webhook secret only through its own endpoint, not cached, audited.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/{id}/webhook", w.app.base))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, webhook) =
        crate::contract::checked(Method::GET, &format!("/api/v1/integrations/{id}/webhook"), response).await;
    assert_eq!(status, 200);
    let secret = webhook["secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "256 bits");
    for answer in [&created, &listed, &got] {
        assert!(!answer.to_string().contains(secret));
    }
    let actions = w.app.audit_actions().await;
    assert!(actions.contains(&"integration.created".to_owned()));
    assert!(actions.contains(&"integration.webhook_secret_revealed".to_owned()));

    // Test again: a revoked token turns the health to error.
    let (status, tested) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!((status.as_u16(), tested["health"]["state"].as_str()), (200, Some("connected")));
    sim.configure(|dc| dc.tokens.clear());
    let (_, tested) = w.call(admin, Method::POST, &format!("/api/v1/integrations/{id}/test"), None).await;
    assert_eq!(tested["health"]["state"], "error");
    assert_eq!(tested["checks"][1]["ok"], false);
    assert!(tested["health"]["message"].as_str().unwrap().contains("refused the token"));

    // Delete: stacks are detached, not deleted.
    sqlx::query(
        "INSERT INTO stacks (name, space_id, provider, integration_id, repository_id, repository_name, branch, created_by_label)
         VALUES ('web', $1, 'bitbucket_datacenter', $2, '1', 'PRJ/my-repo', 'main', 'test')",
    )
    .bind(w.team)
    .bind(Uuid::parse_str(&id).unwrap())
    .execute(&w.app.pool)
    .await
    .unwrap();
    let (status, _) = w.call(admin, Method::DELETE, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(status, 204);
    let detached: Option<Uuid> =
        sqlx::query_scalar("SELECT integration_id FROM stacks").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(detached, None);
    let (status, _) = w.call(admin, Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_input_and_failed_checks_store_nothing() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("account admin");

    let (status, answer) =
        w.call(admin, Method::POST, "/api/v1/integrations", Some(json!({"scope": "space", "colour": 1}))).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        answer["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    for field in ["colour", "space_id", "name", "provider"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }

    for (url, why) in [
        ("ftp://bitbucket.example.com", "http:// or https://"),
        ("https://me:pw@bitbucket.example.com", "user name and password"),
        ("https://bitbucket.example.com/?q=1", "query"),
    ] {
        let (status, answer) = w
            .call(admin, Method::POST, "/api/v1/integrations", Some(body("dc", "space", Some(w.team), url, DEMO_TOKEN)))
            .await;
        assert_eq!(status, 422, "{url}");
        let detail = &answer["error"]["details"][0];
        assert_eq!(detail["field"], "datacenter.api_url");
        assert!(detail["message"].as_str().unwrap().contains(why), "{detail}");
    }
    let mut bad = body("dc", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    bad["datacenter"]["ca_certificate"] = json!("not a certificate");
    bad["options"]["vcs_checks"] = json!("some");
    bad["options"]["pr_comments"] = json!("sometimes");
    bad["datacenter"]["access_token"] = json!(" ");
    let (status, answer) = w.call(admin, Method::POST, "/api/v1/integrations", Some(bad)).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        answer["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    for field in ["datacenter.ca_certificate", "options.vcs_checks", "options.pr_comments", "datacenter.access_token"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }

    // Failed checks: each on its field, with what to fix.
    let (status, answer) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("dc", "space", Some(w.team), &sim.url, "BBDC-wrong")),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["details"][0]["code"], "check_token");
    assert_eq!(answer["error"]["details"][0]["field"], "datacenter.access_token");
    let mut other_user = body("dc", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    other_user["datacenter"]["username"] = json!("jsmith");
    let (_, answer) = w.call(admin, Method::POST, "/api/v1/integrations", Some(other_user)).await;
    assert_eq!(answer["error"]["details"][0]["field"], "datacenter.username");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, answer) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("dc", "space", Some(w.team), &format!("http://127.0.0.1:{port}"), DEMO_TOKEN)),
        )
        .await;
    assert!(answer["error"]["details"][0]["message"].as_str().unwrap().contains("refused the connection"));
    assert_eq!(count(&w).await, 0, "nothing was stored");

    // Conflicts: name, slug, a second default.
    let (status, _) = w
        .call(admin, Method::POST, "/api/v1/integrations", Some(body("DC Main", "default", None, &sim.url, DEMO_TOKEN)))
        .await;
    assert_eq!(status, 201);
    for (name, scope, space, code) in [
        ("dc main", "space", Some(w.team), "taken"),
        ("DC-MAIN", "space", Some(w.team), "slug_taken"),
        ("another", "default", None, "default_exists"),
    ] {
        let (status, answer) = w
            .call(admin, Method::POST, "/api/v1/integrations", Some(body(name, scope, space, &sim.url, DEMO_TOKEN)))
            .await;
        assert_eq!((status.as_u16(), answer["error"]["details"][0]["code"].as_str()), (409, Some(code)), "{name}");
    }
    assert_eq!(count(&w).await, 1);
}

#[tokio::test]
async fn the_permission_table_holds_on_every_integration_endpoint() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("account admin");
    let create = |name: &str, scope: &str, space: Option<Uuid>| body(name, scope, space, &sim.url, DEMO_TOKEN);
    let (_, team) =
        w.call(admin, Method::POST, "/api/v1/integrations", Some(create("team-dc", "space", Some(w.team)))).await;
    let (_, default) =
        w.call(admin, Method::POST, "/api/v1/integrations", Some(create("default-dc", "default", None))).await;
    let (team, default) = (team["id"].as_str().unwrap().to_owned(), default["id"].as_str().unwrap().to_owned());

    // Listing: everyone sees the default; the team's members see the team's.
    for ((label, token), sees_team) in w.callers.iter().zip([true, true, true, true, false, false]) {
        let (status, listed) = w.call(token, Method::GET, "/api/v1/integrations", None).await;
        assert_eq!(status, 200);
        let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&default.as_str()), "{label} sees the default");
        assert_eq!(ids.contains(&team.as_str()), sees_team, "{label} and the team's integration");
    }

    let denied_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    let attempts: Vec<(&str, Method, String, [u16; 6])> = vec![
        (
            "open the space's integration",
            Method::GET,
            format!("/api/v1/integrations/{team}"),
            [200, 200, 403, 403, 404, 404],
        ),
        ("open the default", Method::GET, format!("/api/v1/integrations/{default}"), [200, 403, 403, 403, 403, 403]),
        (
            "test the space's integration",
            Method::POST,
            format!("/api/v1/integrations/{team}/test"),
            [200, 200, 403, 403, 404, 404],
        ),
        (
            "test the default",
            Method::POST,
            format!("/api/v1/integrations/{default}/test"),
            [200, 403, 403, 403, 403, 403],
        ),
        (
            "reveal the space's secret",
            Method::GET,
            format!("/api/v1/integrations/{team}/webhook"),
            [200, 200, 403, 403, 404, 404],
        ),
        (
            "reveal the default's secret",
            Method::GET,
            format!("/api/v1/integrations/{default}/webhook"),
            [200, 403, 403, 403, 403, 403],
        ),
        // Authorized like any administration; a Data Center one then says it needs no approval.
        (
            "authorize the space's integration",
            Method::POST,
            format!("/api/v1/integrations/{team}/authorize"),
            [422, 422, 403, 403, 404, 404],
        ),
        (
            "authorize the default",
            Method::POST,
            format!("/api/v1/integrations/{default}/authorize"),
            [422, 403, 403, 403, 403, 403],
        ),
    ];
    let mut refused_writes = 0;
    for (what, method, path, expected) in attempts {
        for ((label, token), want) in w.callers.iter().zip(expected) {
            let (status, _) = w.call(token, method.clone(), &path, None).await;
            assert_eq!(status.as_u16(), want, "{label} trying to {what}");
        }
        if method != Method::GET || path.ends_with("/webhook") {
            refused_writes += expected.iter().filter(|s| **s == 403 || **s == 404).count() as i64;
        }
    }

    // Creating: in the team (its admins), a default (account admins).
    for (n, ((label, token), want)) in w.callers.iter().zip([201u16, 201, 403, 403, 404, 404]).enumerate() {
        let (status, _) = w
            .call(
                token,
                Method::POST,
                "/api/v1/integrations",
                Some(create(&format!("made-{n}"), "space", Some(w.team))),
            )
            .await;
        assert_eq!(status.as_u16(), want, "{label} creating in the team");
    }
    for ((label, token), want) in w.callers.iter().zip([409u16, 403, 403, 403, 403, 403]) {
        let (status, _) =
            w.call(token, Method::POST, "/api/v1/integrations", Some(create("another-default", "default", None))).await;
        assert_eq!(status.as_u16(), want, "{label} creating a default");
    }
    refused_writes += 4 + 5;

    // Deleting, each caller its own fresh integration of the team.
    for (n, ((label, token), want)) in w.callers.iter().zip([204u16, 204, 403, 403, 404, 404]).enumerate() {
        let (_, doomed) = w
            .call(
                admin,
                Method::POST,
                "/api/v1/integrations",
                Some(create(&format!("doomed-{n}"), "space", Some(w.team))),
            )
            .await;
        let id = doomed["id"].as_str().unwrap();
        let (status, _) = w.call(token, Method::DELETE, &format!("/api/v1/integrations/{id}"), None).await;
        assert_eq!(status.as_u16(), want, "{label} deleting");
    }
    refused_writes += 4;
    let denied_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert_eq!(denied_after - denied_before, refused_writes, "every refused write or reveal is audited");
}

#[tokio::test]
async fn an_integration_is_edited_and_a_changed_url_needs_the_token_again() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let (_, created) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("dc", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    let path = format!("/api/v1/integrations/{}", created["id"].as_str().unwrap());

    // Plain fields: no call to Bitbucket needed; options left out keep their value.
    let (status, edited) = w
        .call(admin, Method::PATCH, &path, Some(json!({"labels": ["staging"], "options": {"use_git_checkout": true}})))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["labels"], json!(["staging"]));
    assert_eq!(edited["options"]["use_git_checkout"], true);
    assert_eq!(edited["options"]["vcs_checks"], "aggregated", "left out, kept");

    // The name never changes.
    let (status, answer) = w.call(admin, Method::PATCH, &path, Some(json!({"name": "renamed"}))).await;
    assert_eq!((status.as_u16(), answer["error"]["details"][0]["code"].as_str()), (422, Some("immutable")));

    // Another API URL without the token: refused, so a stored token never goes elsewhere.
    let other = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let (status, answer) =
        w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"api_url": other.url}}))).await;
    assert_eq!((status.as_u16(), answer["error"]["details"][0]["code"].as_str()), (422, Some("token_required")));
    // And a server of the caller's receives no request at all (the same rule as the import's).
    let attacker = crate::helpers::Listener::start().await;
    let (status, answer) =
        w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"api_url": attacker.url}}))).await;
    assert_eq!(
        (status.as_u16(), answer["error"]["details"][0]["field"].as_str()),
        (422, Some("datacenter.access_token"))
    );
    assert_eq!(attacker.connections(), 0);
    // Nor under a trust root the caller chose: a CA certificate of theirs needs the token too.
    let their_ca = Simulator::start(DataCenter::sample(), Transport::Tls).await.unwrap().ca_pem.clone().unwrap();
    let (status, answer) =
        w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"ca_certificate": their_ca}}))).await;
    assert_eq!(
        (status.as_u16(), answer["error"]["details"][0]["code"].as_str()),
        (422, Some("token_required")),
        "{answer}"
    );
    let (_, unchanged) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(unchanged["datacenter"]["ca_certificate"], Value::Null, "nothing was written");

    // A new token is checked before it replaces the old one.
    let (status, answer) =
        w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"access_token": "BBDC-bad-new"}}))).await;
    assert_eq!((status.as_u16(), answer["error"]["details"][0]["code"].as_str()), (422, Some("check_token")));
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let stored = bitgate_core::integrations::datacenter_token(&w.app.pool, &w.app.services.keyring, id).await.unwrap();
    assert_eq!(stored.as_ref().map(|t| t.expose().as_str()), Some(DEMO_TOKEN), "the old token stays");

    // With the token again, the move is checked and saved.
    other.configure(|dc| {
        dc.tokens.push(bitbucket_simulator::datacenter::Token {
            secret: "BBDC-other-token-9876".into(),
            owner: DEMO_USER.into(),
            project_read: true,
            repository_read: true,
            repository_admin: false,
        })
    });
    let (status, moved) = w
        .call(
            admin,
            Method::PATCH,
            &path,
            Some(json!({"datacenter": {"api_url": other.url, "access_token": "BBDC-other-token-9876"}})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["datacenter"]["api_url"], other.url.as_str());
    assert_eq!(moved["datacenter"]["access_token_last4"], "9876");
    assert!(!moved.to_string().contains("BBDC-other-token-9876"));

    // Readers cannot edit; outsiders do not see it.
    let (status, _) = w.call(w.token("team reader"), Method::PATCH, &path, Some(json!({"labels": []}))).await;
    assert_eq!(status, 403);
    let (status, _) = w.call(w.token("outsider"), Method::PATCH, &path, Some(json!({"labels": []}))).await;
    assert_eq!(status, 404);
    assert!(w.app.audit_actions().await.contains(&"integration.updated".to_owned()));
}

#[tokio::test]
async fn the_scope_changes_only_where_the_caller_administers_and_its_stacks_still_can_use_it() {
    let (w, sim) = world_with_bitbucket().await;
    let account_admin = w.token("account admin");
    let team_admin = w.token("team admin");
    let (_, created) = w
        .call(
            team_admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("dc", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/integrations/{id}");
    let (_, found) =
        w.call(w.token("team writer"), Method::GET, &format!("{path}/repositories?query=my-repo"), None).await;
    let stack = json!({"name": "web", "space_id": w.team, "integration_id": id,
                       "repository": found["items"][0]["name"], "branch": "main"});
    let (status, _) = w.call(w.token("team writer"), Method::POST, "/api/v1/stacks", Some(stack)).await;
    assert_eq!(status, 201);
    let denied_before = denied(&w).await;

    // A space admin cannot make it a default, nor move it where they are not admin.
    let (status, _) = w.call(team_admin, Method::PATCH, &path, Some(json!({"scope": "default"}))).await;
    assert_eq!(status, 403);
    let (status, _) = w.call(team_admin, Method::PATCH, &path, Some(json!({"space_id": w.other}))).await;
    assert_eq!(status, 404, "the sibling space is invisible to them");
    let (status, _) = w.call(w.token("outsider"), Method::PATCH, &path, Some(json!({"space_id": w.other}))).await;
    assert_eq!(status, 404);
    assert_eq!(denied(&w).await - denied_before, 3, "each refusal is audited");

    // Its stack in `team` could not use it from `other`: refused, saying which.
    let (status, answer) = w.call(account_admin, Method::PATCH, &path, Some(json!({"space_id": w.other}))).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["details"][0]["code"], "stacks_outside");
    assert!(answer["error"]["details"][0]["message"].as_str().unwrap().contains("web"));
    let (status, answer) = w.call(account_admin, Method::PATCH, &path, Some(json!({"scope": "nowhere"}))).await;
    assert_eq!((status.as_u16(), &answer["error"]["details"][0]["field"]), (422, &json!("scope")));

    // Up to root (team is below it), then to the default.
    let (status, moved) = w.call(account_admin, Method::PATCH, &path, Some(json!({"space_id": w.root}))).await;
    assert_eq!((status.as_u16(), moved["space_id"].as_str()), (200, Some(w.root.to_string().as_str())), "{moved}");
    let (status, moved) = w.call(account_admin, Method::PATCH, &path, Some(json!({"scope": "default"}))).await;
    assert_eq!((status.as_u16(), moved["scope"].as_str(), &moved["space_id"]), (200, Some("default"), &Value::Null));

    // A second default is refused by the database's rule.
    let (_, other) = w
        .call(
            account_admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("dc2", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    let (status, answer) = w
        .call(
            account_admin,
            Method::PATCH,
            &format!("/api/v1/integrations/{}", other["id"].as_str().unwrap()),
            Some(json!({"scope": "default"})),
        )
        .await;
    assert_eq!((status.as_u16(), &answer["error"]["details"][0]["code"]), (409, &json!("default_exists")));
}

async fn denied(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

/// Addresses that are no single host's are refused whatever the deny list
/// says (here: none), in every spelling: Linux connects `0.0.0.0` and `[::]`
/// to the machine itself, so each of these would reach a local listener.
#[tokio::test]
async fn unspecified_broadcast_and_multicast_addresses_are_never_called() {
    let (w, _sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let local = crate::helpers::Listener::start().await;
    let port = local.url.rsplit(':').next().unwrap().to_owned();
    let spellings = [
        "0.0.0.0",
        "0",
        "0x0",
        "0.0.0.1",
        "[::]",
        "[::ffff:0.0.0.0]",
        "[::0.0.0.0]",
        "[64:ff9b::0.0.0.0]",
        "255.255.255.255",
        "224.0.0.1",
        "[ff02::1]",
    ];
    for (n, host) in spellings.iter().enumerate() {
        let url = format!("http://{host}:{port}");
        let (status, answer) = w
            .call(
                admin,
                Method::POST,
                "/api/v1/integrations",
                Some(body(&format!("unspecified {n}"), "space", Some(w.team), &url, DEMO_TOKEN)),
            )
            .await;
        let detail = &answer["error"]["details"][0];
        assert_eq!((status.as_u16(), detail["field"].as_str()), (422, Some("datacenter.api_url")), "{url}: {answer}");
        assert!(detail["message"].as_str().unwrap().contains("not the address of one host"), "{url}: {answer}");
    }
    assert_eq!(local.connections(), 0, "nothing reached the local listener");
    assert_eq!(count(&w).await, 0);
}

/// IPv6 forms that carry a denied IPv4 address are denied as that address.
#[tokio::test]
async fn ipv6_forms_of_a_denied_address_are_denied() {
    let w = crate::world::world_with(&[("BITGATE_OUTBOUND_TIMEOUT", "2s")]).await;
    let admin = w.token("team admin");
    for host in [
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[2001:0:7f00:1::f7f7:f7f7]",
    ] {
        let url = format!("http://{host}:7990");
        let (status, answer) = w
            .call(
                admin,
                Method::POST,
                "/api/v1/integrations",
                Some(body("embedded", "space", Some(w.team), &url, DEMO_TOKEN)),
            )
            .await;
        let detail = &answer["error"]["details"][0];
        assert_eq!((status.as_u16(), detail["field"].as_str()), (422, Some("datacenter.api_url")), "{url}: {answer}");
        assert!(detail["message"].as_str().unwrap().contains("BITGATE_OUTBOUND_DENY"), "{url}: {answer}");
    }
}

/// The user-facing URL follows one rule on create and on change: http(s)
/// only, so that a link shown to every reader cannot be `javascript:`.
#[tokio::test]
async fn a_changed_user_facing_url_is_checked_like_a_new_one() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let (status, created) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("DC links", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/integrations/{}", created["id"].as_str().unwrap());
    for bad in ["javascript:alert(1)", "ftp://bitbucket.example.com", "data:text/html,hi"] {
        let (status, answer) =
            w.call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"user_facing_url": bad}}))).await;
        let detail = &answer["error"]["details"][0];
        assert_eq!(
            (status.as_u16(), detail["field"].as_str(), detail["code"].as_str()),
            (422, Some("datacenter.user_facing_url"), Some("invalid")),
            "{bad}: {answer}"
        );
    }
    let (_, shown) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(shown["datacenter"]["user_facing_url"], created["datacenter"]["user_facing_url"], "nothing changed");
    let (status, changed) = w
        .call(admin, Method::PATCH, &path, Some(json!({"datacenter": {"user_facing_url": "https://code.example.com"}})))
        .await;
    assert_eq!(
        (status.as_u16(), changed["datacenter"]["user_facing_url"].as_str()),
        (200, Some("https://code.example.com"))
    );
}

#[tokio::test]
async fn lists_show_readers_no_more_than_names_scopes_labels_and_health() {
    let (w, sim) = world_with_bitbucket().await;
    for (who, name, scope, space) in
        [("team admin", "DC team", "space", Some(w.team)), ("account admin", "DC default", "default", None)]
    {
        let (status, created) = w
            .call(
                w.token(who),
                Method::POST,
                "/api/v1/integrations",
                Some(body(name, scope, space, &sim.url, DEMO_TOKEN)),
            )
            .await;
        assert_eq!(status, 201, "{created}");
    }
    // The fields of an integration only those who may open it see.
    let details = ["description", "options", "datacenter", "webhook_url", "created_at", "created_by"];
    let listed = |who: &'static str| {
        let w = &w;
        async move {
            let (status, page) = w.call(w.token(who), Method::GET, "/api/v1/integrations", None).await;
            assert_eq!(status, 200);
            let mut items: Vec<Value> = page["items"].as_array().unwrap().clone();
            items.sort_by_key(|i| i["name"].as_str().unwrap().to_owned());
            items
        }
    };
    for (who, opens_team, opens_default) in [
        ("account admin", true, true),
        ("team admin", true, false),
        ("team writer", false, false),
        ("team reader", false, false),
    ] {
        let items = listed(who).await;
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["DC default", "DC team"], "{who} sees both in the list");
        for (item, opens) in items.iter().zip([opens_default, opens_team]) {
            let summary = ["id", "name", "slug", "provider", "scope", "labels", "health", "stacks_count"];
            assert!(summary.iter().all(|field| item.get(field).is_some()), "{who}: {item}");
            assert_eq!(item["health"]["state"], "connected");
            for field in details {
                assert_eq!(item.get(field).is_some(), opens, "{who}, {field}: {item}");
            }
            assert_eq!(item["health"].get("message").is_some(), opens, "{who}: {item}");
            let text = item.to_string();
            assert_eq!(text.contains(DEMO_USER) || text.contains(&sim.url), opens, "{who}: {text}");
        }
    }
    let outsider = listed("outsider").await;
    assert_eq!(outsider.len(), 1, "a default is in every user's list; the team's integration is not");
    assert!(outsider[0].get("datacenter").is_none());
}

/// The one problem of a refused request: (field, code, message).
fn only_detail(answer: &Value) -> (&str, &str, &str) {
    let details = answer["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{answer}");
    let detail = &details[0];
    (detail["field"].as_str().unwrap(), detail["code"].as_str().unwrap(), detail["message"].as_str().unwrap())
}

#[tokio::test]
async fn pr_comments_is_chosen_at_creation_changed_alone_and_a_bad_value_changes_nothing() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let stored = |id: String| {
        let pool = w.app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT pr_comments FROM integrations WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    // Left out: failures, the default.
    let (status, plain) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("plain", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["options"]["pr_comments"], "failures");

    // Chosen: stored, and read back by every answer that shows the integration.
    let mut chosen = body("chosen", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    chosen["options"]["pr_comments"] = json!("always");
    let (status, created) = w.call(admin, Method::POST, "/api/v1/integrations", Some(chosen)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["options"]["pr_comments"], "always");
    assert_eq!(created["options"]["vcs_checks"], "aggregated", "the other options as given");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/integrations/{id}");
    assert_eq!(stored(id.clone()).await, "always");
    let (_, got) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(got["options"]["pr_comments"], "always");
    let (_, listed) = w.call(admin, Method::GET, "/api/v1/integrations", None).await;
    let item = listed["items"].as_array().unwrap().iter().find(|i| i["id"] == created["id"]).unwrap();
    assert_eq!(item["options"]["pr_comments"], "always");

    // Changed alone: the other options stay; left out of a change, it stays.
    let (status, edited) = w.call(admin, Method::PATCH, &path, Some(json!({"options": {"pr_comments": "off"}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (edited["options"]["pr_comments"].as_str(), edited["options"]["vcs_checks"].as_str()),
        (Some("off"), Some("aggregated"))
    );
    assert_eq!(stored(id.clone()).await, "off");
    let (status, edited) =
        w.call(admin, Method::PATCH, &path, Some(json!({"options": {"commit_status": false}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["options"]["pr_comments"], "off", "left out, kept");

    // A bad value: refused on its field, and nothing of the change is written.
    let (status, answer) = w
        .call(
            admin,
            Method::PATCH,
            &path,
            Some(json!({"labels": ["changed"], "options": {"pr_comments": "sometimes"}})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(only_detail(&answer), ("options.pr_comments", "invalid", "Choose off, failures or always."));
    let (status, answer) = w
        .call(admin, Method::PATCH, &path, Some(json!({"labels": ["changed"], "options": {"pr_comments": true}})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(only_detail(&answer).0, "options.pr_comments", "{answer}");
    let (_, unchanged) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(
        (unchanged["labels"].clone(), unchanged["options"]["pr_comments"].clone()),
        (json!(["prod", "eu"]), json!("off"))
    );
    assert_eq!(stored(id).await, "off");

    // And at creation: refused on its field, nothing stored.
    let before = count(&w).await;
    let mut bad = body("bad", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    bad["options"]["pr_comments"] = json!("Always");
    let (status, answer) = w.call(admin, Method::POST, "/api/v1/integrations", Some(bad)).await;
    assert_eq!(status, 422);
    assert_eq!(only_detail(&answer), ("options.pr_comments", "invalid", "Choose off, failures or always."));
    assert_eq!(count(&w).await, before);
}

/// The webhook options of an answer: (manage_webhooks, disable_polling, disable_webhooks).
fn webhook_options(answer: &Value) -> (Value, Value, Value) {
    let options = &answer["options"];
    (options["manage_webhooks"].clone(), options["disable_polling"].clone(), options["disable_webhooks"].clone())
}

#[tokio::test]
async fn the_webhook_options_are_kept_changed_and_disabled_webhooks_are_never_managed() {
    let (w, sim) = world_with_bitbucket().await;
    let admin = w.token("team admin");
    let stored = |id: String| {
        let pool = w.app.pool.clone();
        async move {
            sqlx::query_as::<_, (bool, bool, bool)>(
                "SELECT manage_webhooks, disable_polling, disable_webhooks FROM integrations WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (yes, no) = (json!(true), json!(false));

    // Left out: SPEC's defaults, in every answer that shows the integration.
    let (status, plain) = w
        .call(
            admin,
            Method::POST,
            "/api/v1/integrations",
            Some(body("plain", "space", Some(w.team), &sim.url, DEMO_TOKEN)),
        )
        .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(webhook_options(&plain), (yes.clone(), no.clone(), no.clone()));
    let id = plain["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/integrations/{id}");
    let (_, got) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(webhook_options(&got), (yes.clone(), no.clone(), no.clone()));
    let (_, listed) = w.call(admin, Method::GET, "/api/v1/integrations", None).await;
    let item = listed["items"].as_array().unwrap().iter().find(|i| i["id"] == plain["id"]).unwrap();
    assert_eq!(webhook_options(item), (yes.clone(), no.clone(), no.clone()));

    // Given at creation: disabling webhooks without a word of their management turns it off.
    let mut quiet = body("quiet", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    quiet["options"] = json!({"disable_polling": true, "disable_webhooks": true});
    let (status, created) = w.call(admin, Method::POST, "/api/v1/integrations", Some(quiet)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(webhook_options(&created), (no.clone(), yes.clone(), yes.clone()));
    assert_eq!(stored(created["id"].as_str().unwrap().to_owned()).await, (false, true, true));

    // Both asked for: refused on manage_webhooks, nothing stored.
    let before = count(&w).await;
    let mut both = body("both", "space", Some(w.team), &sim.url, DEMO_TOKEN);
    both["options"] = json!({"manage_webhooks": true, "disable_webhooks": true});
    let (status, answer) = w.call(admin, Method::POST, "/api/v1/integrations", Some(both)).await;
    assert_eq!(status, 422, "{answer}");
    let (field, code, message) = only_detail(&answer);
    assert_eq!((field, code), ("options.manage_webhooks", "webhooks_disabled"));
    assert!(message.contains("Bitgate cannot manage webhooks that are disabled"), "{message}");
    assert_eq!(count(&w).await, before);

    // A change of other options keeps them; each changes alone.
    let (status, edited) = w.call(admin, Method::PATCH, &path, Some(json!({"options": {"pr_comments": "off"}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), (yes.clone(), no.clone(), no.clone()), "left out, kept");
    let (status, edited) =
        w.call(admin, Method::PATCH, &path, Some(json!({"options": {"disable_polling": true}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), (yes.clone(), yes.clone(), no.clone()));
    let (status, edited) =
        w.call(admin, Method::PATCH, &path, Some(json!({"options": {"disable_webhooks": true}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), (no.clone(), yes.clone(), yes.clone()), "management turned off with them");
    assert_eq!(stored(id.clone()).await, (false, true, true));

    // Management asked for while webhooks stay disabled: refused, nothing of the change written.
    let (status, answer) = w
        .call(admin, Method::PATCH, &path, Some(json!({"labels": ["changed"], "options": {"manage_webhooks": true}})))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(only_detail(&answer).0, "options.manage_webhooks");
    let (_, unchanged) = w.call(admin, Method::GET, &path, None).await;
    assert_eq!(unchanged["labels"], json!(["prod", "eu"]));
    assert_eq!(stored(id.clone()).await, (false, true, true));

    // Webhooks enabled again: management stays off until asked for, then both at once.
    let (status, edited) =
        w.call(admin, Method::PATCH, &path, Some(json!({"options": {"disable_webhooks": false}}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), (no.clone(), yes.clone(), no.clone()));
    let managed_again = json!({"options": {"manage_webhooks": true, "disable_polling": false}});
    let (status, edited) = w.call(admin, Method::PATCH, &path, Some(managed_again)).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(webhook_options(&edited), (yes, no.clone(), no));
    assert_eq!(stored(id.clone()).await, (true, false, false));

    // Values that are not true or false: refused on their fields like the other options.
    for (option, value) in
        [("manage_webhooks", json!("yes")), ("disable_polling", json!(1)), ("disable_webhooks", json!("true"))]
    {
        let (status, answer) = w.call(admin, Method::PATCH, &path, Some(json!({"options": {option: value}}))).await;
        assert_eq!(status, 422, "{option}: {answer}");
        let (field, code, message) = only_detail(&answer);
        assert_eq!((field, code), (format!("options.{option}").as_str(), "invalid_type"));
        assert_eq!(message, format!("\"{option}\" must be true or false."));
    }
    assert_eq!(stored(id).await, (true, false, false));
}
