//! `/api/v1/stacks` and `/api/v1/integrations/{id}/repositories`, against
//! the simulator: a stack's repository is always found through its
//! integration, bad input stores nothing, detached stacks are re-attached,
//! and the permission table holds.

use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::world::{world_with_bitbucket, World};

/// Creates a Data Center integration as the account admin; its id.
async fn integration(w: &World, url: &str, name: &str, space: Option<Uuid>) -> String {
    let body = json!({
        "name": name, "provider": "bitbucket_datacenter",
        "scope": if space.is_some() { "space" } else { "default" }, "space_id": space,
        "datacenter": {"api_url": url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let (status, created) = w.call(w.token("account admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn stack(name: &str, space: Uuid, integration: &str, repository: &str) -> Value {
    json!({"name": name, "space_id": space, "integration_id": integration, "repository": repository, "branch": "main"})
}

async fn stack_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stacks").fetch_one(&w.app.pool).await.unwrap()
}

/// The full name of the sample's `my-repo` (its project comes from the sample).
async fn my_repo(w: &World, integration: &str) -> String {
    let (status, found) = w
        .call(
            w.token("team writer"),
            Method::GET,
            &format!("/api/v1/integrations/{integration}/repositories?query=my-repo"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["next_cursor"], Value::Null);
    found["items"][0]["name"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_writer_pages_through_the_repositories_and_creates_a_stack() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team)).await;
    let writer = w.token("team writer");

    // Every repository once, page by page, through opaque cursors.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/integrations/{team_dc}/repositories?limit=25&cursor={c}"),
            None => format!("/api/v1/integrations/{team_dc}/repositories?limit=25"),
        };
        let (status, page) = w.call(writer, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let name = item["name"].as_str().unwrap();
            assert_eq!(name, format!("{}/{}", item["project"].as_str().unwrap(), item["slug"].as_str().unwrap()));
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 60);
    for bad in ["?cursor=forged", "?limit=0", "?limit=101", "?limit=x"] {
        let (status, _) =
            w.call(writer, Method::GET, &format!("/api/v1/integrations/{team_dc}/repositories{bad}"), None).await;
        assert_eq!(status, 400, "{bad}");
    }

    let repo = my_repo(&w, &team_dc).await;
    let (status, created) =
        w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("web", w.team, &team_dc, &repo))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["repository"], json!({"id": "1", "name": repo}), "stored by Bitbucket's id, named beside it");
    assert_eq!((created["detached"].as_bool(), created["integration_name"].as_str()), (Some(false), Some("team-dc")));
    assert_eq!(created["created_by"], "team-writer@example.com");
    let (_, got) = w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{team_dc}"), None).await;
    assert_eq!(got["stacks_count"], 1);
    assert!(w.app.audit_actions().await.contains(&"stack.created".to_owned()));

    // Readers see it; a sibling space's admin does not.
    let (_, listed) = w.call(w.token("team reader"), Method::GET, "/api/v1/stacks", None).await;
    assert_eq!(listed["items"][0]["name"], "web");
    let (_, listed) = w.call(w.token("outsider"), Method::GET, "/api/v1/stacks", None).await;
    assert_eq!(listed["items"], json!([]));
    let (_, filtered) =
        w.call(writer, Method::GET, &format!("/api/v1/stacks?integration_id={team_dc}&detached=false"), None).await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let (_, in_team) = w.call(writer, Method::GET, &format!("/api/v1/stacks?space_id={}", w.team), None).await;
    assert_eq!(in_team["items"].as_array().unwrap().len(), 1);
    let (_, in_other) =
        w.call(w.token("account admin"), Method::GET, &format!("/api/v1/stacks?space_id={}", w.other), None).await;
    assert_eq!(in_other["items"], json!([]), "the space filter holds");
    let (status, _) = w.call(writer, Method::GET, "/api/v1/stacks?space_id=nope", None).await;
    assert_eq!(status, 400);
    let (status, _) = w.call(writer, Method::GET, "/api/v1/stacks?detached=maybe", None).await;
    assert_eq!(status, 400);

    // The list counts each integration's own stacks (one query for the page).
    integration(&w, &sim.url, "team-other", Some(w.team)).await;
    let (status, _) =
        w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("web-2", w.team, &team_dc, &repo))).await;
    assert_eq!(status, 201);
    let (status, listed) = w.call(w.token("team admin"), Method::GET, "/api/v1/integrations", None).await;
    assert_eq!(status, 200, "{listed}");
    let counts: Vec<(String, i64)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_owned(), i["stacks_count"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts.len(), 2, "{listed}");
    for (id, count) in counts {
        assert_eq!(count, if id == team_dc { 2 } else { 0 }, "integration {id}");
    }
}

#[tokio::test]
async fn bad_stacks_are_refused_field_by_field_and_nothing_is_stored() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team)).await;
    let other_dc = integration(&w, &sim.url, "other-dc", Some(w.other)).await;
    let writer = w.token("team writer");
    let repo = my_repo(&w, &team_dc).await;
    let (status, _) = w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("web", w.team, &team_dc, &repo))).await;
    assert_eq!(status, 201);

    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"space_id": w.team}), 422, "name", "required"),
        (
            json!({"space_id": w.team, "name": "x", "integration_id": team_dc, "repository": repo, "branch": "a..b"}),
            422,
            "branch",
            "invalid",
        ),
        (stack("x", w.team, &team_dc, "PRJ/does-not-exist"), 422, "repository", "not_found"),
        (stack("x", w.team, &team_dc, "not a name"), 422, "repository", "invalid"),
        (stack("x", w.team, &other_dc, &repo), 422, "integration_id", "not_usable"),
        (stack("x", w.team, &Uuid::new_v4().to_string(), &repo), 422, "integration_id", "not_usable"),
        (stack("x", w.team, "nope", &repo), 422, "integration_id", "invalid"),
        (
            json!({"space_id": w.team, "name": "x", "integration_id": team_dc, "repository": repo, "branch": "main", "extra": 1}),
            422,
            "extra",
            "unknown_field",
        ),
        (stack("WEB", w.team, &team_dc, &repo), 409, "name", "taken"),
    ];
    for (body, want, field, code) in cases {
        let (status, answer) = w.call(writer, Method::POST, "/api/v1/stacks", Some(body.clone())).await;
        assert_eq!(status.as_u16(), want, "{body} → {answer}");
        let details = answer["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["field"] == field && d["code"] == code),
            "{body}: expected {field}/{code} in {answer}"
        );
    }

    // Bitbucket refusing the stored token: said on the repository field (and
    // by the listing, as a 502 that says what to do).
    sim.configure(|dc| dc.tokens.clear());
    let (status, answer) =
        w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("x", w.team, &team_dc, &repo))).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["details"][0]["code"], "bitbucket_error");
    assert!(answer["error"]["details"][0]["message"].as_str().unwrap().contains("refused the integration's token"));
    let (status, answer) =
        w.call(writer, Method::GET, &format!("/api/v1/integrations/{team_dc}/repositories"), None).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_gateway");
    assert!(!answer.to_string().contains(DEMO_TOKEN));
    assert_eq!(stack_count(&w).await, 1, "nothing stored by a refused request");
}

#[tokio::test]
async fn a_detached_stack_is_attached_to_another_integration_of_its_provider() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team)).await;
    let default_dc = integration(&w, &sim.url, "default-dc", None).await;
    let other_dc = integration(&w, &sim.url, "other-dc", Some(w.other)).await;
    let writer = w.token("team writer");
    let repo = my_repo(&w, &team_dc).await;
    let (_, web) = w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("web", w.team, &team_dc, &repo))).await;
    let (_, api) = w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("api", w.team, &team_dc, &repo))).await;
    let web = web["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/stacks/{web}");

    let (status, _) =
        w.call(w.token("team admin"), Method::DELETE, &format!("/api/v1/integrations/{team_dc}"), None).await;
    assert_eq!(status, 204);
    let (_, detached) = w.call(writer, Method::GET, &path, None).await;
    assert_eq!((detached["detached"].as_bool(), &detached["integration_id"]), (Some(true), &Value::Null));
    assert_eq!(detached["repository"]["name"], repo, "the repository is kept");
    let (_, listed) = w.call(writer, Method::GET, "/api/v1/stacks?detached=true", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let (status, answer) = w.call(writer, Method::PATCH, &path, Some(json!({"repository": repo}))).await;
    assert_eq!((status.as_u16(), &answer["error"]["details"][0]["code"]), (422, &json!("required")), "{answer}");
    let (status, answer) = w.call(writer, Method::PATCH, &path, Some(json!({"integration_id": other_dc}))).await;
    assert_eq!((status.as_u16(), &answer["error"]["details"][0]["code"]), (422, &json!("not_usable")), "{answer}");

    let (status, attached) = w.call(writer, Method::PATCH, &path, Some(json!({"integration_id": default_dc}))).await;
    assert_eq!(status, 200, "{attached}");
    assert_eq!(
        (attached["detached"].as_bool(), attached["integration_name"].as_str()),
        (Some(false), Some("default-dc"))
    );
    assert_eq!(attached["repository"]["id"], "1", "found again through the new integration");
    assert!(w.app.audit_actions().await.contains(&"stack.attached".to_owned()));

    let (status, renamed) =
        w.call(writer, Method::PATCH, &path, Some(json!({"name": "web-prod", "branch": "release/2"}))).await;
    assert_eq!(
        (status.as_u16(), renamed["name"].as_str(), renamed["branch"].as_str()),
        (200, Some("web-prod"), Some("release/2"))
    );
    let (status, _) = w.call(writer, Method::PATCH, &path, Some(json!({"name": "API"}))).await;
    assert_eq!(status, 409, "another stack of the space has that name");
    let (status, _) = w.call(writer, Method::PATCH, &path, Some(json!({"branch": "bad branch"}))).await;
    assert_eq!(status, 422);
    let (_, unchanged) = w.call(writer, Method::GET, &path, None).await;
    assert_eq!((unchanged["name"].as_str(), unchanged["branch"].as_str()), (Some("web-prod"), Some("release/2")));

    let (status, _) = w.call(writer, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = w.call(writer, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert!(w.app.audit_actions().await.contains(&"stack.deleted".to_owned()));
    let (_, api) = w.call(writer, Method::GET, &format!("/api/v1/stacks/{}", api["id"].as_str().unwrap()), None).await;
    assert_eq!(api["detached"], true, "re-attaching one stack leaves the others as they were");
}

#[tokio::test]
async fn the_permission_table_holds_on_every_stack_endpoint() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team)).await;
    let default_dc = integration(&w, &sim.url, "default-dc", None).await;
    let repo = my_repo(&w, &team_dc).await;
    let admin = w.token("account admin");
    let (_, shared) =
        w.call(admin, Method::POST, "/api/v1/stacks", Some(stack("shared", w.team, &team_dc, &repo))).await;
    let shared = shared["id"].as_str().unwrap().to_owned();
    let denied = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
            .fetch_one(&w.app.pool)
            .await
            .unwrap()
    };
    let before = denied().await;
    let mut refused = 0;

    // (what, method, path, body, expected per caller, whether refusals are audited)
    type Attempt = (&'static str, Method, String, Option<Value>, [u16; 6], bool);
    let attempts: Vec<Attempt> = vec![
        (
            "read the stack",
            Method::GET,
            format!("/api/v1/stacks/{shared}"),
            None,
            [200, 200, 200, 200, 404, 404],
            false,
        ),
        (
            "change the stack",
            Method::PATCH,
            format!("/api/v1/stacks/{shared}"),
            Some(json!({"branch": "develop"})),
            [200, 200, 200, 403, 404, 404],
            true,
        ),
        (
            "list the space integration's repositories",
            Method::GET,
            format!("/api/v1/integrations/{team_dc}/repositories?limit=1"),
            None,
            [200, 200, 200, 403, 404, 404],
            true,
        ),
        (
            // The outsider writes in their own space, which may use a default.
            "list the default's repositories",
            Method::GET,
            format!("/api/v1/integrations/{default_dc}/repositories?limit=1"),
            None,
            [200, 200, 200, 403, 200, 403],
            true,
        ),
    ];
    for (what, method, path, body, expected, audited) in attempts {
        for ((label, token), want) in w.callers.iter().zip(expected) {
            let (status, _) = w.call(token, method.clone(), &path, body.clone()).await;
            assert_eq!(status.as_u16(), want, "{label} trying to {what}");
        }
        if audited {
            refused += expected.iter().filter(|s| **s >= 400).count() as i64;
        }
    }
    for (n, ((label, token), want)) in w.callers.iter().zip([201u16, 201, 201, 403, 404, 404]).enumerate() {
        let (status, _) = w
            .call(token, Method::POST, "/api/v1/stacks", Some(stack(&format!("made-{n}"), w.team, &team_dc, &repo)))
            .await;
        assert_eq!(status.as_u16(), want, "{label} creating a stack in the team");
    }
    refused += 3;
    for (n, ((label, token), want)) in w.callers.iter().zip([204u16, 204, 204, 403, 404, 404]).enumerate() {
        let (_, doomed) = w
            .call(admin, Method::POST, "/api/v1/stacks", Some(stack(&format!("doomed-{n}"), w.team, &team_dc, &repo)))
            .await;
        let id = doomed["id"].as_str().unwrap();
        let (status, _) = w.call(token, Method::DELETE, &format!("/api/v1/stacks/{id}"), None).await;
        assert_eq!(status.as_u16(), want, "{label} deleting a stack");
    }
    refused += 3;
    assert_eq!(denied().await - before, refused, "every refused stack write is audited");
}

#[tokio::test]
async fn triggers_start_at_their_defaults_and_change_one_at_a_time() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team)).await;
    let writer = w.token("team writer");
    let repo = my_repo(&w, &team_dc).await;
    let defaults = json!({"build_pull_requests": true, "all_branches": false, "prune_branches": true, "resync_pull_requests": false});

    // Left out: SPEC's defaults, in every view of the stack.
    let (status, created) =
        w.call(writer, Method::POST, "/api/v1/stacks", Some(stack("web", w.team, &team_dc, &repo))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["triggers"], defaults);
    let path = format!("/api/v1/stacks/{}", created["id"].as_str().unwrap());
    let (_, got) = w.call(w.token("team reader"), Method::GET, &path, None).await;
    assert_eq!(got["triggers"], defaults);
    let (_, listed) = w.call(writer, Method::GET, "/api/v1/stacks", None).await;
    assert_eq!(listed["items"][0]["triggers"], defaults);

    // Given in part on a creation: the rest take their defaults.
    let mut body = stack("api", w.team, &team_dc, &repo);
    body["triggers"] = json!({"all_branches": true, "prune_branches": false});
    let (status, api) = w.call(writer, Method::POST, "/api/v1/stacks", Some(body)).await;
    assert_eq!(status, 201, "{api}");
    assert_eq!(
        api["triggers"],
        json!({"build_pull_requests": true, "all_branches": true, "prune_branches": false, "resync_pull_requests": false})
    );

    // A change naming one trigger leaves the others, and a change naming
    // none leaves them all.
    let (status, changed) =
        w.call(writer, Method::PATCH, &path, Some(json!({"triggers": {"resync_pull_requests": true}}))).await;
    assert_eq!(status, 200, "{changed}");
    let resyncing = json!({"build_pull_requests": true, "all_branches": false, "prune_branches": true, "resync_pull_requests": true});
    assert_eq!(changed["triggers"], resyncing);
    let (status, changed) =
        w.call(writer, Method::PATCH, &path, Some(json!({"triggers": {"build_pull_requests": false}}))).await;
    assert_eq!(status, 200, "{changed}");
    let mut expected = resyncing.clone();
    expected["build_pull_requests"] = json!(false);
    assert_eq!(changed["triggers"], expected, "resync_pull_requests stayed on");
    let (_, renamed) = w.call(writer, Method::PATCH, &path, Some(json!({"name": "web-prod", "triggers": {}}))).await;
    assert_eq!((renamed["name"].as_str(), &renamed["triggers"]), (Some("web-prod"), &expected));
    let (_, renamed) = w.call(writer, Method::PATCH, &path, Some(json!({"name": "web-2"}))).await;
    assert_eq!(renamed["triggers"], expected);

    // The audit log says which triggers a stack started with, and which
    // changed, to what.
    let admin = w.token("account admin");
    let (_, audit) = w.call(admin, Method::GET, "/api/v1/audit?action=stack.created", None).await;
    let started: Vec<&Value> = audit["items"].as_array().unwrap().iter().map(|e| &e["details"]["triggers"]).collect();
    assert!(started.contains(&&defaults) && started.contains(&&api["triggers"]), "{audit}");
    let (_, audit) = w.call(admin, Method::GET, "/api/v1/audit?action=stack.updated", None).await;
    let details: Vec<&Value> = audit["items"].as_array().unwrap().iter().map(|e| &e["details"]).collect();
    assert!(details.contains(&&json!({"triggers": {"resync_pull_requests": true}})), "{audit}");
    assert!(details.contains(&&json!({"triggers": {"build_pull_requests": false}})), "{audit}");
    assert_eq!(details.iter().filter(|d| d.get("triggers").is_some()).count(), 2, "unchanged triggers are not said");

    // Anything but true or false is refused by its name, and changes nothing.
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"triggers": {"prune_branches": "yes"}}), "triggers.prune_branches", "invalid_type"),
        (json!({"triggers": {"build_pull_requests": 1}}), "triggers.build_pull_requests", "invalid_type"),
        (json!({"triggers": {"all_branches": [true]}}), "triggers.all_branches", "invalid_type"),
        (json!({"triggers": {"resync_pull_requests": "false"}}), "triggers.resync_pull_requests", "invalid_type"),
        (json!({"triggers": {"fetch_branches": true}}), "triggers.fetch_branches", "unknown_field"),
        (json!({"triggers": true}), "triggers", "invalid_type"),
        (json!({"name": "renamed", "triggers": {"all_branches": "on"}}), "triggers.all_branches", "invalid_type"),
    ];
    for (body, field, code) in &cases {
        let (status, answer) = w.call(writer, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
        let details = answer["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["field"] == *field && d["code"] == *code),
            "{body}: expected {field}/{code} in {answer}"
        );
    }
    let (_, unchanged) = w.call(writer, Method::GET, &path, None).await;
    assert_eq!((unchanged["name"].as_str(), &unchanged["triggers"]), (Some("web-2"), &expected));
    let before = stack_count(&w).await;
    for (body, field, code) in &cases {
        let mut created = stack("refused", w.team, &team_dc, &repo);
        created.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let (status, answer) = w.call(writer, Method::POST, "/api/v1/stacks", Some(created)).await;
        assert_eq!(status, 422, "{body} → {answer}");
        let details = answer["error"]["details"].as_array().unwrap();
        assert!(
            details.iter().any(|d| d["field"] == *field && d["code"] == *code),
            "{body}: expected {field}/{code} in {answer}"
        );
    }
    assert_eq!(stack_count(&w).await, before, "nothing stored by a refused creation");

    // A reader may not change them, valid or not (authorization first);
    // someone outside the space does not see the stack at all.
    let reader = w.token("team reader");
    for body in [json!({"triggers": {"all_branches": true}}), json!({"triggers": {"all_branches": "yes"}})] {
        let (status, answer) = w.call(reader, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!((status.as_u16(), answer["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    }
    let (status, _) =
        w.call(w.token("outsider"), Method::PATCH, &path, Some(json!({"triggers": {"all_branches": true}}))).await;
    assert_eq!(status, 404);
    let (_, unchanged) = w.call(writer, Method::GET, &path, None).await;
    assert_eq!(unchanged["triggers"], expected, "nothing changed by the refusals");
}
