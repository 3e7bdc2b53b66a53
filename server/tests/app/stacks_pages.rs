//! The pages around an integration's life after the wizard, against the
//! simulator: edit (prefilled, the token kept unless given, a new URL needs
//! it again), stacks (three GET steps, then create, change, re-attach,
//! delete), the delete page (what happens to stacks, confirmed by name),
//! the list's filters, and who may open which of them.

use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::{
    helpers::{hidden_value, location, selected_option, Browser},
    world::{world_with_bitbucket, World},
};

async fn integration(w: &World, url: &str, name: &str, space: Option<Uuid>, labels: &[&str]) -> String {
    let body = json!({
        "name": name, "provider": "bitbucket_datacenter",
        "scope": if space.is_some() { "space" } else { "default" }, "space_id": space, "labels": labels,
        "datacenter": {"api_url": url, "username": DEMO_USER, "access_token": DEMO_TOKEN}
    });
    let (status, created) = w.call(w.token("account admin"), Method::POST, "/api/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn edit_form<'a>(csrf: &'a str, url: &'a str, token: &'a str, space: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("scope", "space"),
        ("space_id", space),
        ("api_url", url),
        ("user_facing_url", ""),
        ("username", DEMO_USER),
        ("access_token", token),
        ("ca_certificate", ""),
        ("labels", "prod, blue"),
        ("description", "Edited"),
        ("commit_status", "on"),
        ("vcs_checks", "all"),
        ("pr_comments", "off"),
    ]
}

#[tokio::test]
async fn the_edit_page_keeps_the_token_unless_given_and_checks_a_new_one() {
    let (w, sim) = world_with_bitbucket().await;
    let id = integration(&w, &sim.url, "team-dc", Some(w.team), &["prod"]).await;
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let path = format!("/integrations/{id}/edit");
    let team = w.team.to_string();

    let page = admin.get(&path).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{}\"", sim.url)), "prefilled with the stored URL");
    assert!(page.contains(&DEMO_TOKEN[DEMO_TOKEN.len() - 4..]) && !page.contains(DEMO_TOKEN), "only the last four");
    assert!(page.contains("The name cannot change"));
    assert_eq!(selected_option(&page, "pr_comments").as_deref(), Some("failures"), "the stored choice");

    // A new API URL without the token: refused, said next to the token field.
    let elsewhere = bitbucket_simulator::Simulator::start(
        bitbucket_simulator::DataCenter::sample(),
        bitbucket_simulator::Transport::Http,
    )
    .await
    .unwrap();
    let refused = admin.post_form(&path, &edit_form(&csrf, &elsewhere.url, "", &team)).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("needs the access token again"));
    // A wrong new token: the checklist, nothing saved, the token not echoed.
    let refused = admin.post_form(&path, &edit_form(&csrf, &sim.url, "BBDC-not-a-token-9876", &team)).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("refused the token") && !text.contains("BBDC-not-a-token-9876"));
    let (_, stored) = w.call(w.token("account admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(stored["labels"], json!(["prod"]), "nothing saved");
    // A pull-request comments value that is none of the choices: said on its field, nothing saved.
    let mut bad_choice = edit_form(&csrf, &sim.url, "", &team);
    bad_choice.iter_mut().find(|(name, _)| *name == "pr_comments").unwrap().1 = "never";
    let refused = admin.post_form(&path, &bad_choice).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("id=\"field-pr_comments-error\"") && text.contains("Choose off, failures or always."),
        "{text}"
    );
    let (_, stored) = w.call(w.token("account admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(
        (stored["labels"].clone(), stored["options"]["pr_comments"].clone()),
        (json!(["prod"]), json!("failures"))
    );

    // Empty token: kept; the rest saved.
    let saved = admin.post_form(&path, &edit_form(&csrf, &sim.url, "", &team)).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(location(&saved), format!("/integrations/{id}"));
    let (_, stored) = w.call(w.token("account admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(stored["labels"], json!(["prod", "blue"]));
    assert_eq!(
        (stored["options"]["vcs_checks"].as_str(), stored["options"]["status_details"].as_bool()),
        (Some("all"), Some(false))
    );
    assert_eq!(stored["options"]["pr_comments"], "off");
    let details = admin.get(&format!("/integrations/{id}")).await.text().await.unwrap();
    assert!(details.contains("Off: never comment."), "in words: {details}");
    assert_eq!(stored["datacenter"]["access_token_last4"], &DEMO_TOKEN[DEMO_TOKEN.len() - 4..]);
    assert_eq!(stored["health"]["state"], "connected");

    // The scope, too, only where the editor administers: not a default for a space admin.
    let mut to_default = edit_form(&csrf, &sim.url, "", &team);
    to_default[1] = ("scope", "default");
    assert_eq!(admin.post_form(&path, &to_default).await.status(), 403);
    let (_, stored) = w.call(w.token("account admin"), Method::GET, &format!("/api/v1/integrations/{id}"), None).await;
    assert_eq!(stored["scope"], "space", "nothing changed");

    assert_eq!(w.browser("team writer").await.get(&path).await.status(), 403);
    assert_eq!(w.browser("outsider").await.get(&path).await.status(), 404);
}

#[tokio::test]
async fn stacks_are_created_through_three_steps_then_changed_reattached_and_deleted() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team), &[]).await;
    let other_dc = integration(&w, &sim.url, "other-dc", Some(w.other), &[]).await;
    let writer = w.browser("team writer").await;
    let csrf = writer.csrf_token("/tokens").await;
    let team = w.team.to_string();

    // Step 1: the space; step 2: the integrations it may use (not a sibling's).
    let step = writer.get(&format!("/stacks/new?space_id={team}")).await.text().await.unwrap();
    assert!(step.contains("team-dc") && !step.contains("other-dc"));
    // Step 3: the repositories Bitbucket shows, paged, and searchable.
    let step = writer.get(&format!("/stacks/new?space_id={team}&integration_id={team_dc}")).await.text().await.unwrap();
    assert_eq!(step.matches("name=\"repository\"").count(), 25, "one page of 25");
    let more = step.split("href=\"").filter_map(|s| s.split('"').next()).find(|h| h.contains("cursor=")).unwrap();
    let next = writer.get(&more.replace("&amp;", "&")).await.text().await.unwrap();
    assert_eq!(next.matches("name=\"repository\"").count(), 25);
    let found = my_repo_step(&writer, &team, &team_dc).await;
    assert_eq!(found.matches("name=\"repository\"").count(), 1);
    let marker = "name=\"repository\" value=\"";
    let start = found.find(marker).unwrap() + marker.len();
    let repo = found[start..].split('"').next().unwrap().to_owned();
    // A sibling's integration cannot be smuggled in through the address.
    let smuggled =
        writer.get(&format!("/stacks/new?space_id={team}&integration_id={other_dc}")).await.text().await.unwrap();
    assert_eq!(smuggled.matches("name=\"repository\"").count(), 0);

    let form = |name: &'static str, branch: &'static str, repo: String| {
        vec![
            ("csrf_token", csrf.clone()),
            ("space_id", team.clone()),
            ("integration_id", team_dc.clone()),
            ("repository", repo),
            ("name", name.to_owned()),
            ("branch", branch.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let writer = &writer;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            writer.post_form("/stacks/new", &fields).await
        }
    };
    let refused = post(form("web", "a b", repo.clone())).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("not a branch name git accepts") && text.contains("value=\"web\""),
        "error beside its field, values kept"
    );
    let refused = post(form("web", "main", "PRJ/nope".into())).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("Bitbucket shows no repository PRJ/nope"));
    let created = post(form("web", "main", repo.clone())).await;
    assert_eq!(created.status(), 303);
    let stack_path = location(&created);
    let page = writer.get(&stack_path).await.text().await.unwrap();
    assert!(page.contains("created") && page.contains(&repo) && page.contains("Bitbucket id 1"));
    assert!(
        !page.contains(&format!("href=\"/integrations/{team_dc}\"")),
        "a writer sees the integration's name, not a link it cannot open"
    );

    // The integration's page lists it; the stacks page too.
    let admin = w.browser("team admin").await;
    assert!(admin.get(&format!("/integrations/{team_dc}")).await.text().await.unwrap().contains(&stack_path));
    assert!(w.browser("team reader").await.get("/stacks").await.text().await.unwrap().contains(&stack_path));
    assert!(!w.browser("outsider").await.get("/stacks").await.text().await.unwrap().contains(&stack_path));

    let renamed =
        writer.post_form(&stack_path, &[("csrf_token", &csrf), ("name", "web-prod"), ("branch", "release/1")]).await;
    assert_eq!(renamed.status(), 303);
    assert!(writer.get(&stack_path).await.text().await.unwrap().contains("release/1"));

    // Deleting the integration: the page lists the stack; the name confirms.
    let admin_csrf = admin.csrf_token("/tokens").await;
    let delete_path = format!("/integrations/{team_dc}/delete");
    let page = admin.get(&delete_path).await.text().await.unwrap();
    assert!(page.contains("web-prod") && page.contains("detached"));
    let wrong = admin.post_form(&delete_path, &[("csrf_token", &admin_csrf), ("confirm_name", "team")]).await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong.text().await.unwrap().contains("exactly, team-dc, to delete it"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(count, 2, "a wrong confirmation deletes nothing");
    assert_eq!(w.browser("team writer").await.get(&delete_path).await.status(), 403);
    let deleted = admin.post_form(&delete_path, &[("csrf_token", &admin_csrf), ("confirm_name", "team-dc")]).await;
    assert_eq!((deleted.status().as_u16(), location(&deleted).as_str()), (303, "/"));
    assert!(admin.get("/").await.text().await.unwrap().contains("1 stack(s) detached"));

    // Detached: said so; attached to a default from its page.
    let page = writer.get(&stack_path).await.text().await.unwrap();
    assert!(page.contains("detached") && page.contains("No other Bitbucket Data Center integration"));
    let default_dc = integration(&w, &sim.url, "default-dc", None, &[]).await;
    let page = writer.get(&stack_path).await.text().await.unwrap();
    assert!(
        page.contains(&format!("value=\"{default_dc}\"")) && !page.contains(&other_dc),
        "only what its space may use"
    );
    let attached = writer.post_form(&stack_path, &[("csrf_token", &csrf), ("integration_id", &default_dc)]).await;
    assert_eq!(attached.status(), 303);
    let page = writer.get(&stack_path).await.text().await.unwrap();
    assert!(page.contains("attached to default-dc"));
    let smuggled = writer.post_form(&stack_path, &[("csrf_token", &csrf), ("integration_id", &other_dc)]).await;
    assert_eq!(smuggled.status(), 422);
    assert!(smuggled.text().await.unwrap().contains("This space cannot use that integration"));

    // Readers see the page without its forms, and cannot post them.
    let reader = w.browser("team reader").await;
    let page = reader.get(&stack_path).await.text().await.unwrap();
    assert!(page.contains("web-prod") && !page.contains("Delete this stack"));
    let reader_csrf = reader.csrf_token("/tokens").await;
    assert_eq!(reader.post_form(&format!("{stack_path}/delete"), &[("csrf_token", &reader_csrf)]).await.status(), 403);
    assert_eq!(reader.get("/stacks/new").await.status(), 403);
    assert_eq!(w.browser("outsider").await.get(&stack_path).await.status(), 404);

    let gone = writer.post_form(&format!("{stack_path}/delete"), &[("csrf_token", &csrf)]).await;
    assert_eq!((gone.status().as_u16(), location(&gone).as_str()), (303, "/stacks"));
    assert_eq!(writer.get(&stack_path).await.status(), 404);
}

#[tokio::test]
async fn the_list_filters_by_provider_space_and_label() {
    let (w, sim) = world_with_bitbucket().await;
    integration(&w, &sim.url, "team-dc", Some(w.team), &["prod"]).await;
    integration(&w, &sim.url, "default-dc", None, &["staging"]).await;
    let admin = w.browser("account admin").await;
    let names = |html: &str| (html.contains(">team-dc<"), html.contains(">default-dc<"));
    let all = admin.get("/").await.text().await.unwrap();
    assert_eq!(names(&all), (true, true));
    let prod = admin.get("/?label=prod").await.text().await.unwrap();
    assert_eq!(names(&prod), (true, false));
    let team = admin.get(&format!("/?space_id={}", w.team)).await.text().await.unwrap();
    assert_eq!(names(&team), (true, false));
    let cloud = admin.get("/?provider=bitbucket_cloud").await.text().await.unwrap();
    assert_eq!(names(&cloud), (false, false));
    assert!(cloud.contains("No integration matches these filters"));
    let dc = admin.get("/?provider=bitbucket_datacenter&label=staging").await.text().await.unwrap();
    assert_eq!(names(&dc), (false, true));
}

/// Whether the page's checkbox `name` is ticked.
fn ticked(html: &str, name: &str) -> bool {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("the page has no {name} box"));
    let start = html[..at].rfind('<').unwrap();
    let tag = &html[start..at + html[at..].find('>').unwrap()];
    assert!(tag.contains("type=\"checkbox\""), "{tag}");
    tag.contains(" checked")
}

/// The creation form's last step: `my-repo` of the integration, searched for.
async fn my_repo_step(writer: &Browser, space: &str, integration: &str) -> String {
    let path = format!("/stacks/new?space_id={space}&integration_id={integration}&query=my-repo");
    writer.get(&path).await.text().await.unwrap()
}

const TRIGGERS: [&str; 4] = ["build_pull_requests", "all_branches", "prune_branches", "resync_pull_requests"];

#[tokio::test]
async fn triggers_are_ticked_on_the_forms_and_an_unticked_box_saves_off() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team), &[]).await;
    let writer = w.browser("team writer").await;
    let csrf = writer.csrf_token("/tokens").await;
    let team = w.team.to_string();
    let stored = |path: String| {
        let w = &w;
        async move {
            let id = path.trim_start_matches("/stacks/");
            let (status, stack) =
                w.call(w.token("team writer"), Method::GET, &format!("/api/v1/stacks/{id}"), None).await;
            assert_eq!(status, 200, "{stack}");
            stack["triggers"].clone()
        }
    };

    // The creation form explains each trigger and ticks SPEC's defaults.
    let page = my_repo_step(&writer, &team, &team_dc).await;
    assert!(
        page.contains("Build pull requests")
            && page.contains("request a proposed run for pull requests into this branch")
    );
    let boxes: Vec<bool> = TRIGGERS.iter().map(|t| ticked(&page, t)).collect();
    assert_eq!(boxes, [true, false, true, false]);
    let marker = "name=\"repository\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let repo = page[start..].split('"').next().unwrap().to_owned();

    // Every box left unticked: the browser posts none of them, and all four are off.
    let base = [
        ("csrf_token", csrf.as_str()),
        ("space_id", team.as_str()),
        ("integration_id", team_dc.as_str()),
        ("repository", repo.as_str()),
        ("branch", "main"),
        ("triggers", "shown"),
    ];
    let mut form = base.to_vec();
    form.push(("name", "quiet"));
    let created = writer.post_form("/stacks/new", &form).await;
    assert_eq!(created.status(), 303);
    let quiet = location(&created);
    let off = json!({"build_pull_requests": false, "all_branches": false, "prune_branches": false, "resync_pull_requests": false});
    assert_eq!(stored(quiet.clone()).await, off);
    let page = writer.get(&quiet).await.text().await.unwrap();
    assert!(page.contains("Build pull requests: off"), "the stack's page says so");
    assert_eq!(TRIGGERS.iter().map(|t| ticked(&page, t)).collect::<Vec<_>>(), [false; 4], "the change form as stored");

    // The defaults as ticked, with one more.
    let mut form = base.to_vec();
    form.extend([("name", "web"), ("build_pull_requests", "on"), ("prune_branches", "on"), ("all_branches", "on")]);
    let created = writer.post_form("/stacks/new", &form).await;
    assert_eq!(created.status(), 303);
    let web = location(&created);
    let on = json!({"build_pull_requests": true, "all_branches": true, "prune_branches": true, "resync_pull_requests": false});
    assert_eq!(stored(web.clone()).await, on);
    let page = writer.get(&web).await.text().await.unwrap();
    assert!(page.contains("All branches: on") && page.contains("Resync pull requests: off"));
    assert_eq!(TRIGGERS.iter().map(|t| ticked(&page, t)).collect::<Vec<_>>(), [true, true, true, false]);

    // A refused creation shows the boxes as they were posted, not the defaults.
    let mut form = base.to_vec();
    form.extend([("name", "bad"), ("all_branches", "on")]);
    form[4] = ("branch", "a b");
    let refused = writer.post_form("/stacks/new", &form).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert_eq!(TRIGGERS.iter().map(|t| ticked(&page, t)).collect::<Vec<_>>(), [false, true, false, false]);

    // Editing: unticking a box turns it off; the boxes still ticked stay on.
    let edit = [
        ("csrf_token", csrf.as_str()),
        ("name", "web"),
        ("branch", "main"),
        ("triggers", "shown"),
        ("all_branches", "on"),
        ("resync_pull_requests", "on"),
    ];
    let saved = writer.post_form(&web, &edit).await;
    assert_eq!(saved.status(), 303);
    let edited = json!({"build_pull_requests": false, "all_branches": true, "prune_branches": false, "resync_pull_requests": true});
    assert_eq!(stored(web.clone()).await, edited);
    let saved = writer
        .post_form(&web, &[("csrf_token", &csrf), ("name", "web"), ("branch", "main"), ("triggers", "shown")])
        .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(stored(web.clone()).await, off, "every box unticked");
    let saved = writer.post_form(&web, &edit).await;
    assert_eq!(saved.status(), 303);

    // A refused change shows the boxes as posted.
    let refused = writer
        .post_form(&web, &[("csrf_token", &csrf), ("name", "web"), ("branch", "a b"), ("triggers", "shown")])
        .await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert_eq!(TRIGGERS.iter().map(|t| ticked(&page, t)).collect::<Vec<_>>(), [false; 4]);
    assert_eq!(stored(web.clone()).await, edited, "nothing saved");

    // A form without the boxes (the attach form, say) leaves the triggers alone.
    let renamed = writer.post_form(&web, &[("csrf_token", &csrf), ("name", "web-prod"), ("branch", "main")]).await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(stored(web.clone()).await, edited);

    // A reader sees them but has no form, and a post of theirs is refused.
    let reader = w.browser("team reader").await;
    let page = reader.get(&web).await.text().await.unwrap();
    assert!(page.contains("Resync pull requests: on") && !page.contains("name=\"resync_pull_requests\""));
    let reader_csrf = reader.csrf_token("/tokens").await;
    let refused = reader
        .post_form(
            &web,
            &[("csrf_token", &reader_csrf), ("name", "web-prod"), ("branch", "main"), ("triggers", "shown")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(stored(web.clone()).await, edited, "nothing changed by the refusal");
}

/// The platform loop on a stack's page: its runs with their build statuses,
/// and its calls to Bitbucket.
pub mod platform_loop {
    use bitbucket_simulator::Fault;
    use bitgate_core::maintenance;
    use reqwest::Method;
    use serde_json::{json, Value};

    use crate::{webhooks::endpoint, world::World};

    pub const COMMIT: &str = "823b2230a56056231c9425d63758fa87078a66b4";
    const OTHER_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// Runs every job that is due, as the workers would.
    pub async fn drain(w: &World) {
        while maintenance::run_one(&w.app.services).await.unwrap() {}
    }

    /// The platform reports a run, as a writer of the stack's space.
    pub async fn report(w: &World, stack: &str, key: &str, body: Value) {
        let path = format!("/api/v1/stacks/{stack}/runs/{key}");
        let (status, run) = w.call(w.token("team writer"), Method::PUT, &path, Some(body)).await;
        assert!(status == 201 || status == 200, "{run}");
    }

    /// The page's section under the heading `title`, up to the section's end.
    pub fn section<'a>(html: &'a str, title: &str) -> &'a str {
        let start = html.find(&format!("<h2>{title}</h2>")).unwrap_or_else(|| panic!("no {title} section: {html}"));
        let end = html[start..].find("</section>").map_or(html.len(), |end| start + end);
        &html[start..end]
    }

    /// The key of the stack's tracked status in Bitbucket.
    async fn status_key(w: &World, stack: &str) -> String {
        let (_, run) =
            w.call(w.token("team reader"), Method::GET, &format!("/api/v1/stacks/{stack}/runs/r1"), None).await;
        run["statuses"][0]["key"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_stack_s_page_lists_its_runs_with_their_statuses_and_its_calls_to_bitbucket() {
        let (w, simulator) = crate::world::world_with_bitbucket().await;
        let (_, stack) = endpoint(&w, &simulator.url).await;
        let reader = w.browser("team reader").await;
        let path = format!("/stacks/{stack}");

        // Nothing reported yet: the page says how runs come.
        let page = reader.get(&path).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        assert!(runs.contains("No run reported yet"), "{runs}");
        assert!(runs.contains(&format!("PUT /api/v1/stacks/{stack}/runs/{{key}}")), "{runs}");
        assert!(section(&page, "Outbound calls").contains("No call to Bitbucket yet"), "{page}");

        // A tracked run: its status waits for the job, then is sent.
        let tracked = json!({"commit": COMMIT, "kind": "tracked", "state": "running",
                             "url": "https://ci.example.com/runs/1", "title": "Deploy web"});
        report(&w, &stack, "r1", tracked).await;
        let key = status_key(&w, &stack).await;
        let page = reader.get(&path).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        assert!(runs.contains(&format!("<code>{key}</code>")) && runs.contains(">pending<"), "{runs}");
        drain(&w).await;
        let page = reader.get(&path).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        assert!(
            runs.contains(r#"<a href="https://ci.example.com/runs/1" rel="noopener noreferrer"><code>r1</code></a>"#),
            "the key links to the platform's page: {runs}"
        );
        assert!(runs.contains(">Deploy web<") && runs.contains(">tracked<") && runs.contains(">running<"), "{runs}");
        assert!(runs.contains(&format!("<code>{}</code>", &COMMIT[..12])), "the commit, short: {runs}");
        assert!(runs.contains(&format!("<code>{key}</code>")) && runs.contains("INPROGRESS"), "{runs}");
        assert!(runs.contains(">sent<") && !runs.contains(">pending<"), "{runs}");
        let calls = section(&page, "Outbound calls");
        assert!(calls.contains(&format!("/commits/{COMMIT}/builds</code>")) && calls.contains(">204<"), "{calls}");
        assert!(calls.contains("<code>POST /") && calls.contains("build status"), "{calls}");

        // A proposed run that Bitbucket could not be sent for a day: failed, with why.
        simulator.configure(|dc| dc.faults.push_back(Fault::Unavailable));
        let proposed = json!({"commit": OTHER_COMMIT, "kind": "proposed", "state": "failed", "pull_request_id": 7});
        report(&w, &stack, "p1", proposed).await;
        drain(&w).await;
        sqlx::query("UPDATE commit_statuses SET pending_since = now() - interval '25 hours' WHERE commit = $1")
            .bind(OTHER_COMMIT)
            .execute(&w.app.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET run_at = now() WHERE kind LIKE 'outbound.%'").execute(&w.app.pool).await.unwrap();
        drain(&w).await;
        let page = reader.get(&path).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        let (newer, older) = (runs.find("<code>p1</code>").unwrap(), runs.find("<code>r1</code>").unwrap());
        assert!(newer < older, "newest first: {runs}");
        let p1 = &runs[newer..older];
        assert!(p1.contains(">proposed<") && p1.contains(">#7<") && p1.contains(">failed<"), "{p1}");
        assert!(p1.contains("Not sent: Bitbucket could not be reached for 24 hours."), "why it failed: {p1}");
        let calls = section(&page, "Outbound calls");
        let answered: Vec<_> = [">503<", ">204<"].iter().map(|status| calls.find(status).unwrap()).collect();
        assert!(answered[0] < answered[1], "the refused call, newest first: {calls}");
        assert!(calls.contains(&format!("/commits/{OTHER_COMMIT}/builds</code>")), "{calls}");
    }

    #[tokio::test]
    async fn a_run_s_title_and_key_are_shown_as_text() {
        let (w, simulator) = crate::world::world_with_bitbucket().await;
        let (_, stack) = endpoint(&w, &simulator.url).await;
        let script = "<script>alert(1)</script>";
        let run = json!({"commit": COMMIT, "kind": "tracked", "state": "queued", "title": format!("Deploy {script}")});
        report(&w, &stack, "<i>r1", run).await;
        let page = w.browser("team reader").await.get(&format!("/stacks/{stack}")).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        assert!(runs.contains("Deploy &lt;script&gt;alert(1)&lt;/script&gt;"), "{runs}");
        assert!(runs.contains("<code>&lt;i&gt;r1</code>"), "{runs}");
        assert!(!page.contains(script) && !page.contains("<i>r1"), "{page}");
    }

    #[tokio::test]
    async fn the_page_shows_the_latest_twenty_runs_and_sends_to_the_api_for_more() {
        let (w, simulator) = crate::world::world_with_bitbucket().await;
        let (_, stack) = endpoint(&w, &simulator.url).await;
        for n in 1..=21 {
            let run = json!({"commit": COMMIT, "kind": "tracked", "state": "queued"});
            report(&w, &stack, &format!("run-{n:02}"), run).await;
        }
        let page = w.browser("team reader").await.get(&format!("/stacks/{stack}")).await.text().await.unwrap();
        let runs = section(&page, "Runs");
        assert!(runs.contains("<code>run-21</code>") && runs.contains("<code>run-02</code>"), "{runs}");
        assert!(!runs.contains("<code>run-01</code>"), "the oldest is the API's: {runs}");
        assert!(runs.contains(&format!("GET /api/v1/stacks/{stack}/runs")), "{runs}");
    }
}

#[tokio::test]
async fn the_stack_form_sent_twice_creates_once() {
    let (w, sim) = world_with_bitbucket().await;
    let team_dc = integration(&w, &sim.url, "team-dc", Some(w.team), &[]).await;
    let writer = w.browser("team writer").await;
    let csrf = writer.csrf_token("/tokens").await;
    let team = w.team.to_string();
    let page = my_repo_step(&writer, &team, &team_dc).await;
    let (repo, submission) = (hidden_value(&page, "repository"), hidden_value(&page, "submission"));
    let form = [
        ("csrf_token", csrf.as_str()),
        ("space_id", team.as_str()),
        ("integration_id", team_dc.as_str()),
        ("repository", repo.as_str()),
        ("branch", "main"),
        ("name", "twice"),
        ("submission", submission.as_str()),
    ];
    let (first, second) = tokio::join!(writer.post_form("/stacks/new", &form), writer.post_form("/stacks/new", &form));
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (303, 303));
    assert_eq!(location(&first), location(&second), "both lead to the one stack");
    let made: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stacks WHERE name = 'twice'").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(made, 1);
    let page = writer.get(&location(&first)).await.text().await.unwrap();
    assert!(page.contains("Stack \u{201c}twice\u{201d} created."), "the message is shown");
}
