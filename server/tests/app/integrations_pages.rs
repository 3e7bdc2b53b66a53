//! The integrations pages against the simulator: the Data Center wizard
//! (checklist on failure, nothing saved, the token never echoed), the
//! details page with the webhook setup, the secret's reveal, a new test, and
//! who may open what.

use bitbucket_simulator::{
    datacenter::{DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};

use crate::{
    helpers::{copy_integration, hidden_value, link_href, location, selected_option, ticked},
    world::world_with,
};

fn wizard_form<'a>(csrf: &'a str, url: &'a str, token: &'a str, space: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("name", "DC main"),
        ("scope", "space"),
        ("space_id", space),
        ("api_url", url),
        ("username", DEMO_USER),
        ("access_token", token),
        ("labels", "prod, eu"),
        ("description", "Our **main** Bitbucket <script>alert(1)</script> [x](javascript:alert(1))"),
        ("commit_status", "on"),
        ("vcs_checks", "aggregated"),
        ("pr_comments", "always"),
    ]
}

/// The form with one field's value replaced.
fn with<'a>(mut form: Vec<(&'a str, &'a str)>, field: &str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    form.iter_mut().find(|(name, _)| *name == field).unwrap().1 = value;
    form
}

/// The explanation of each pull-request comments choice, as the wizard shows it.
const PR_COMMENTS_EXPLAINED: [&str; 3] = [
    "never comment.",
    "one comment per pull request and stack, created when a run fails, then kept up to date.",
    "the same comment, from the first run.",
];

#[tokio::test]
async fn the_wizard_checks_before_saving_and_the_details_page_explains_the_webhook() {
    let w = world_with(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).await;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let team = w.team.to_string();

    // First the provider, side by side; then its wizard.
    let choice = admin.get("/integrations/new").await.text().await.unwrap();
    assert!(choice.contains("Bitbucket Cloud") && choice.contains("Bitbucket Data Center"));
    assert!(choice.contains("/integrations/new?provider=bitbucket_cloud"));
    assert!(choice.contains("/integrations/new?provider=bitbucket_datacenter"));
    let page = admin.get("/integrations/new?provider=bitbucket_datacenter").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("plugins/servlet/access-tokens/manage") && page.contains("Repositories: read"));
    assert!(!page.contains("value=\"default\""), "a space admin cannot create a default");
    assert!(page.contains("Pull-request comments"), "{page}");
    assert_eq!(selected_option(&page, "pr_comments").as_deref(), Some("failures"), "the default, chosen");
    for (value, explained) in ["off", "failures", "always"].into_iter().zip(PR_COMMENTS_EXPLAINED) {
        assert!(page.contains(&format!("value=\"{value}\"")) && page.contains(explained), "{value}: {explained}");
    }

    // A rejected token: the checklist says why, the fields are kept, nothing is saved.
    let refused =
        admin.post_form("/integrations/new", &wizard_form(&csrf, &sim.url, "BBDC-wrong-token-1234", &team)).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("refused the token") && text.contains("Not checked"), "the checklist is shown");
    assert!(text.contains(&format!("value=\"{}\"", sim.url)), "the URL is kept");
    let token_page = format!("href=\"{}/plugins/servlet/access-tokens/manage\"", sim.url);
    assert!(text.contains(&token_page), "step 2 links to Bitbucket's token page: {text}");
    assert_eq!(selected_option(&text, "pr_comments").as_deref(), Some("always"), "the choice is kept");
    assert!(!text.contains("BBDC-wrong-token-1234"), "the token is never echoed");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(stored, 0);
    let bad_url = admin.post_form("/integrations/new", &wizard_form(&csrf, "ftp://nowhere", DEMO_TOKEN, &team)).await;
    assert_eq!(bad_url.status(), 422);
    assert!(bad_url.text().await.unwrap().contains("Use an http:// or https:// URL."));
    // A value that is none of the choices: said next to the select, nothing saved.
    let bad_choice = with(wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team), "pr_comments", "sometimes");
    let bad_choice = admin.post_form("/integrations/new", &bad_choice).await;
    assert_eq!(bad_choice.status(), 422);
    let text = bad_choice.text().await.unwrap();
    assert!(
        text.contains("id=\"field-pr_comments-error\"") && text.contains("Choose off, failures or always."),
        "{text}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(stored, 0);

    let created = admin.post_form("/integrations/new", &wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team)).await;
    assert_eq!(created.status(), 303);
    let details_path = location(&created);
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("every check passed"));
    assert_passed_checklist(&details, "on creation");
    assert!(details.contains(&format!("{}/webhooks/bitbucket/dc-main", w.app.base)));
    for trigger in ["repo:refs_changed", "pr:opened", "pr:comment:added"] {
        assert!(details.contains(trigger), "{trigger}");
    }
    assert!(details.contains("<strong>main</strong>"), "the description is rendered");
    assert!(!details.contains("<script>alert") && !details.contains("javascript:"), "and sanitized");
    assert!(!details.contains(DEMO_TOKEN) && details.contains(&DEMO_TOKEN[DEMO_TOKEN.len() - 4..]));
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    let pr_comments: String =
        sqlx::query_scalar("SELECT pr_comments FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(pr_comments, "always", "the choice is stored");
    assert!(details.contains("Pull-request comments"), "{details}");
    assert!(details.contains(&format!("Always: {}", PR_COMMENTS_EXPLAINED[2])), "in words: {details}");
    // The edit page starts from the stored choice.
    let edit = admin.get(&format!("{details_path}/edit")).await.text().await.unwrap();
    assert_eq!(selected_option(&edit, "pr_comments").as_deref(), Some("always"));
    let secret =
        bitgate_core::integrations::webhook_secret(&w.app.pool, &w.app.services.keyring, id).await.unwrap().unwrap();
    let secret = secret.expose();
    assert!(!details.contains(secret.as_str()), "the secret is masked until revealed");

    let revealed = admin.post_form(&format!("{details_path}/webhook/reveal"), &[("csrf_token", &csrf)]).await;
    assert_eq!(revealed.status(), 200);
    assert_eq!(revealed.headers()["cache-control"], "no-store");
    assert!(revealed.text().await.unwrap().contains(secret.as_str()));
    assert!(w.app.audit_actions().await.contains(&"integration.webhook_secret_revealed".to_owned()));
    // The details page's island asks for the secret alone, with the CSRF header, and shows it in place.
    assert!(details.contains("Reveal secret") && details.contains("reveal-secret"), "{details}");
    let reveals = || async {
        let actions = w.app.audit_actions().await;
        actions.iter().filter(|a| *a == "integration.webhook_secret_revealed").count()
    };
    let before = reveals().await;
    let in_place = admin
        .send(
            admin
                .client
                .post(admin.url(&format!("{details_path}/webhook/reveal")))
                .header("origin", &admin.base)
                .header("accept", "text/plain")
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(in_place.status(), 200);
    assert_eq!(in_place.headers()["cache-control"], "no-store");
    assert!(in_place.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(in_place.text().await.unwrap(), secret.as_str(), "the secret, and nothing else");
    assert_eq!(reveals().await, before + 1, "audited as the form's reveal is");
    let forged = admin
        .send(
            admin
                .client
                .post(admin.url(&format!("{details_path}/webhook/reveal")))
                .header("origin", "https://elsewhere.example")
                .header("accept", "text/plain"),
        )
        .await;
    assert_eq!(forged.status(), 403, "asked from another site, nothing");
    assert_eq!(reveals().await, before + 1);

    let tested = admin.post_form(&format!("{details_path}/test"), &[("csrf_token", &csrf)]).await;
    assert_eq!(tested.status(), 303);
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("Every check passed"));
    assert_passed_checklist(&details, "after Test connection");
    let again = admin.get(&details_path).await.text().await.unwrap();
    assert!(!again.contains("class=\"checklist\""), "the message and its checklist are shown once");

    sim.configure(|dc| dc.tokens.clear());
    let tested = admin.post_form(&format!("{details_path}/test"), &[("csrf_token", &csrf)]).await;
    assert_eq!(tested.status(), 303);
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("The token check failed"), "the flash says which check failed");
    assert!(details.contains("<span class=\"badge bad\">failed</span><span><strong>token</strong>"), "{details}");
    assert!(details.contains(">error<"), "the health turned to error");

    // Who may open what: readers see it listed, not opened; outsiders see nothing.
    let reader = w.browser("team reader").await;
    let home = reader.get("/").await.text().await.unwrap();
    assert!(home.contains("DC main") && !home.contains(&format!("href=\"{details_path}\"")));
    assert_eq!(reader.get(&details_path).await.status(), 403);
    assert_eq!(reader.get("/integrations/new").await.status(), 403);
    let outsider = w.browser("outsider").await;
    assert!(!outsider.get("/").await.text().await.unwrap().contains("DC main"));
    assert_eq!(outsider.get(&details_path).await.status(), 404);
    let reader_csrf = reader.csrf_token("/tokens").await;
    let reveal = reader.post_form(&format!("{details_path}/webhook/reveal"), &[("csrf_token", &reader_csrf)]).await;
    assert_eq!(reveal.status(), 403);
    let admin_home = admin.get("/").await.text().await.unwrap();
    assert!(admin_home.contains(&format!("href=\"{details_path}\"")) && admin_home.contains("New integration"));
}

/// The message of a passed connection test lists every check and what it
/// found, as a failed one does: an admin sees what was proven.
fn assert_passed_checklist(page: &str, when: &str) {
    for check in bitgate_core::bitbucket::datacenter::CHECKS {
        let line = format!("<span class=\"badge good\">passed</span><span><strong>{check}</strong> ");
        assert!(page.contains(&line), "{when}: the {check} line: {page}");
    }
    assert!(page.contains("Bitbucket Data Center 8."), "{when}: the server's version");
    assert!(!page.contains("badge bad"), "{when}: nothing failed");
}

#[test]
fn the_wizard_previews_the_endpoint_the_server_will_make() {
    for name in ["DC main", "  DC -- prod_2 ", "Ünïcode", "!!!", "a--b", "Bitbucket (EU) 2", "ÅSA"] {
        assert_eq!(
            bitgate_app::islands::integration_form::slug_of(name),
            bitgate_core::integrations::slug_of(name),
            "{name:?}"
        );
    }
}

async fn preview(browser: &crate::helpers::Browser, body: String, token: Option<&str>) -> reqwest::Response {
    preview_from(browser, &browser.base, body, token).await
}

async fn preview_from(
    browser: &crate::helpers::Browser,
    origin: &str,
    body: String,
    token: Option<&str>,
) -> reqwest::Response {
    let request = browser
        .client
        .post(browser.url("/markdown/preview"))
        .header("origin", origin)
        .header("content-type", "text/plain");
    let request = match token {
        Some(token) => request.header("x-csrf-token", token),
        None => request,
    };
    browser.send(request.body(body)).await
}

#[tokio::test]
async fn descriptions_are_previewed_safely_for_logged_in_users_only() {
    let w = crate::world::world().await;
    let writer = w.browser("team writer").await;
    let csrf = writer.csrf_token("/tokens").await;
    let answer =
        preview(&writer, "**bold** <script>alert(1)</script> [x](javascript:alert(1))".into(), Some(&csrf)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let html = answer.text().await.unwrap();
    assert!(
        html.contains("<strong>bold</strong>") && !html.contains("<script>") && !html.contains("javascript:"),
        "{html}"
    );
    assert_eq!(preview(&writer, "x".repeat(10_001), Some(&csrf)).await.status(), 413);
    assert_eq!(preview(&writer, "x".into(), Some("forged")).await.status(), 403, "CSRF-checked like every write");
    assert_eq!(preview_from(&writer, "https://evil.example.com", "x".into(), None).await.status(), 403);
    let anonymous = w.app.browser();
    assert_ne!(preview(&anonymous, "x".into(), None).await.status(), 200);
}

/// The integration's outbound log on its page: its admins', not its
/// readers', who see a stack's on the stack's page.
mod outbound_calls {
    use reqwest::Method;
    use serde_json::json;

    use crate::{
        stacks_pages::platform_loop::{drain, report, section, COMMIT},
        webhooks::endpoint,
    };

    /// Text as the page shows it.
    fn escaped(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }

    #[tokio::test]
    async fn the_integration_s_calls_show_to_its_admins_and_a_stack_s_to_its_readers() {
        let (w, simulator) = crate::world::world_with_bitbucket().await;
        let (e, stack) = endpoint(&w, &simulator.url).await;
        let admin = w.browser("team admin").await;
        let reader = w.browser("team reader").await;
        let path = format!("/integrations/{}", e.id);

        let page = admin.get(&path).await.text().await.unwrap();
        assert!(section(&page, "Outbound calls").contains("No call to Bitbucket yet"), "{page}");

        // One call taken, then one refused (the token lost its permission).
        report(&w, &stack, "r1", json!({"commit": COMMIT, "kind": "tracked", "state": "running"})).await;
        drain(&w).await;
        simulator.configure(|dc| dc.tokens[0].repository_read = false);
        report(&w, &stack, "r1", json!({"commit": COMMIT, "kind": "tracked", "state": "failed"})).await;
        drain(&w).await;
        let (_, log) =
            w.call(w.token("team admin"), Method::GET, &format!("/api/v1/integrations/{}/outbound", e.id), None).await;
        let refusal = log["items"][0]["message"].as_str().unwrap().to_owned();

        let page = admin.get(&path).await.text().await.unwrap();
        let calls = section(&page, "Outbound calls");
        assert!(calls.contains(&format!(r#"<a href="/stacks/{stack}">web</a>"#)), "each call's stack: {calls}");
        assert!(calls.contains(&format!("/commits/{COMMIT}/builds</code>")), "{calls}");
        let (refused, taken) = (calls.find(">401<").unwrap(), calls.find(">204<").unwrap());
        assert!(refused < taken, "newest first: {calls}");
        assert!(calls.contains(&escaped(&refusal)), "Bitbucket's message {refusal:?}: {calls}");

        // A reader of the space: the stack's log on its page, not the integration's.
        let stack_page = reader.get(&format!("/stacks/{stack}")).await.text().await.unwrap();
        let calls = section(&stack_page, "Outbound calls");
        assert!(calls.contains(">401<") && calls.contains(">204<"), "{calls}");
        let refused = reader.get(&path).await;
        assert_eq!(refused.status(), 403);
        let refused = refused.text().await.unwrap();
        assert!(!refused.contains("Outbound calls") && !refused.contains("/builds"), "{refused}");
        let (status, _) =
            w.call(w.token("team reader"), Method::GET, &format!("/api/v1/integrations/{}/outbound", e.id), None).await;
        assert_eq!(status, 403, "the API's rule, the same");
    }
}

/// The webhook options' boxes as a page shows them: (manage_webhooks, disable_polling, disable_webhooks).
fn webhook_boxes(html: &str) -> [Option<bool>; 3] {
    ["manage_webhooks", "disable_polling", "disable_webhooks"].map(|name| ticked(html, name))
}

async fn stored_webhook_options(w: &crate::world::World) -> (bool, bool, bool) {
    sqlx::query_as("SELECT manage_webhooks, disable_polling, disable_webhooks FROM integrations")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_webhook_options_are_ticked_posted_and_shown_in_words() {
    let w = world_with(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).await;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let team = w.team.to_string();

    // The wizard: management ticked, the other two not, each explained.
    let page = admin.get("/integrations/new?provider=bitbucket_datacenter").await.text().await.unwrap();
    assert_eq!(webhook_boxes(&page), [Some(true), Some(false), Some(false)], "{page}");
    for words in [
        "Manage webhooks in Bitbucket",
        "Bitgate creates and repairs its webhook in each repository a stack uses",
        "REPO_ADMIN on Data Center, the consumer's Webhooks permission on Cloud",
        "Disable polling",
        "Disable webhooks",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }

    // Management ticked with webhooks disabled: refused next to it, the boxes as posted, nothing saved.
    let mut both = wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team);
    both.extend([("manage_webhooks", "on"), ("disable_webhooks", "on")]);
    let refused = admin.post_form("/integrations/new", &both).await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("id=\"field-manage_webhooks-error\""), "{text}");
    assert!(text.contains("Bitgate cannot manage webhooks that are disabled"), "{text}");
    assert_eq!(webhook_boxes(&text), [Some(true), Some(false), Some(true)], "as posted");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    assert_eq!(count, 0);

    // Management unticked (a browser posts nothing for it): off; polling disabled.
    let mut form = wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team);
    form.push(("disable_polling", "on"));
    let created = admin.post_form("/integrations/new", &form).await;
    assert_eq!(created.status(), 303);
    let details_path = location(&created);
    assert_eq!(stored_webhook_options(&w).await, (false, true, false));
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("No: set the webhook up in Bitbucket by hand, as the Webhook section says."), "{details}");
    assert!(details.contains("Disabled: Bitgate never reads branch heads."), "{details}");
    assert!(details.contains("Used."), "{details}");

    // The edit page starts from the stored boxes.
    let edit_path = format!("{details_path}/edit");
    let edit = admin.get(&edit_path).await.text().await.unwrap();
    assert_eq!(webhook_boxes(&edit), [Some(false), Some(true), Some(false)]);
    let edit_form = |boxes: &[&'static str]| {
        // An empty token keeps the stored one.
        let mut form = wizard_form(&csrf, &sim.url, "", &team);
        form.extend(boxes.iter().map(|name| (*name, "on")));
        form
    };
    // Management asked for: on; polling, unticked, enabled again.
    let saved = admin.post_form(&edit_path, &edit_form(&["manage_webhooks"])).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(stored_webhook_options(&w).await, (true, false, false));
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("Yes: Bitgate creates and repairs its webhook"), "{details}");
    assert!(details.contains("On, for repositories whose webhook does not work."), "{details}");
    // Both ticked: refused, said next to the box, nothing saved.
    let refused = admin.post_form(&edit_path, &edit_form(&["manage_webhooks", "disable_webhooks"])).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("id=\"field-manage_webhooks-error\""));
    assert_eq!(stored_webhook_options(&w).await, (true, false, false));
    // Webhooks disabled, management unticked.
    let saved = admin.post_form(&edit_path, &edit_form(&["disable_webhooks"])).await;
    assert_eq!(saved.status(), 303);
    assert_eq!(stored_webhook_options(&w).await, (false, false, true));
    let details = admin.get(&details_path).await.text().await.unwrap();
    assert!(details.contains("Disabled: Bitbucket's webhooks are not used."), "{details}");
    assert!(details.contains("No: webhooks are disabled."), "{details}");
}

#[tokio::test]
async fn the_wizard_sent_twice_creates_once_and_both_answers_lead_to_it() {
    let w = world_with(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "5s")]).await;
    // Bitbucket slow enough that the second request arrives while the first asks it.
    let mut slow = DataCenter::sample();
    slow.delay = std::time::Duration::from_millis(200);
    let sim = Simulator::start(slow, Transport::Http).await.unwrap();
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let team = w.team.to_string();
    let wizard = admin.get("/integrations/new?provider=bitbucket_datacenter").await.text().await.unwrap();
    let submission = hidden_value(&wizard, "submission");
    let again = admin.get("/integrations/new?provider=bitbucket_datacenter").await.text().await.unwrap();
    assert_ne!(hidden_value(&again, "submission"), submission, "each rendered form has its own token");
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM integrations").fetch_one(&w.app.pool).await.unwrap()
    };

    // A double click: both answers lead to the one integration made.
    let mut form = wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team);
    form.push(("submission", &submission));
    let (first, second) = tokio::join!(admin.post_form("/integrations/new", &form), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        admin.post_form("/integrations/new", &form).await
    });
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (303, 303));
    assert_eq!(location(&first), location(&second));
    assert_eq!(count().await, 1, "created once");
    let created = w.app.audit_actions().await.iter().filter(|a| *a == "integration.created").count();
    assert_eq!(created, 1, "and audited once");
    // The answer reloaded later (the form sent again): the same place, nothing more.
    let reloaded = admin.post_form("/integrations/new", &form).await;
    assert_eq!((reloaded.status().as_u16(), location(&reloaded)), (303, location(&first)));
    assert_eq!(count().await, 1);

    // A first that saved nothing: the repeat does the work itself.
    let wizard = admin.get("/integrations/new?provider=bitbucket_datacenter").await.text().await.unwrap();
    let submission = hidden_value(&wizard, "submission");
    let mut refused = with(wizard_form(&csrf, &sim.url, "BBDC-wrong-token-1234", &team), "name", "DC two");
    refused.push(("submission", &submission));
    assert_eq!(admin.post_form("/integrations/new", &refused).await.status(), 422);
    let mut fixed = with(wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team), "name", "DC two");
    fixed.push(("submission", &submission));
    assert_eq!(admin.post_form("/integrations/new", &fixed).await.status(), 303);
    assert_eq!(count().await, 2);

    // Another user's token claims nothing for them.
    let other = w.browser("account admin").await;
    let other_csrf = other.csrf_token("/tokens").await;
    let mut stolen = with(wizard_form(&other_csrf, &sim.url, DEMO_TOKEN, &team), "name", "DC three");
    stolen.push(("submission", &submission));
    let answer = other.post_form("/integrations/new", &stolen).await;
    assert_eq!(answer.status(), 409);
    let page = answer.text().await.unwrap();
    assert!(page.contains("This form was sent before"), "{page}");
    assert!(page.contains(r#"value="DC three""#), "the wizard again, its values kept: {page}");
    assert_eq!(hidden_value(&page, "submission"), submission, "and its token: sent again, it waits for the first");
    assert_eq!(count().await, 2);

    // Claims are kept a day (housekeeping forgets them after).
    assert_eq!(bitgate_core::submissions::forget_old(&w.app.pool).await.unwrap(), 0);
    sqlx::query("UPDATE form_submissions SET created_at = now() - interval '25 hours'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(bitgate_core::submissions::forget_old(&w.app.pool).await.unwrap(), 2);
}

#[tokio::test]
async fn the_integrations_list_shows_50_a_page_keeps_its_filters_and_searches_names() {
    let w = world_with(&[("BITGATE_OUTBOUND_DENY", "")]).await;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let created =
        admin.post_form("/integrations/new", &wizard_form(&csrf, &sim.url, DEMO_TOKEN, &w.team.to_string())).await;
    assert_eq!(created.status(), 303);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    copy_integration(&w.app.pool, id, "Bulk", 119).await;
    // A label only the last page's integration has.
    sqlx::query("UPDATE integrations SET labels = '{rare}' WHERE name = 'Bulk 119'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let names = |page: &str| -> Vec<String> {
        page.split("<td><a href=\"/integrations/")
            .skip(1)
            .map(|cell| cell.split('>').nth(1).unwrap().split('<').next().unwrap().to_owned())
            .collect()
    };
    let href = link_href;

    // 120 in all: 50, 50 and 20, newest first, each once.
    let first = admin.get("/").await.text().await.unwrap();
    let first_names = names(&first);
    assert_eq!(first_names.len(), 50);
    assert_eq!(first_names[..2], ["DC main".to_owned(), "Bulk 1".to_owned()]);
    assert!(href(&first, "First page").is_none(), "the first page has no way back to itself");
    let second_path = href(&first, "Next page").expect("a next page");
    let second = admin.get(&second_path).await.text().await.unwrap();
    let third_path = href(&second, "Next page").expect("a third page");
    let third = admin.get(&third_path).await.text().await.unwrap();
    assert_eq!(href(&third, "Next page"), None, "the last page");
    assert_eq!(href(&third, "First page").as_deref(), Some("/"));
    let mut all: Vec<String> = [first_names, names(&second), names(&third)].concat();
    assert_eq!(all.len(), 120);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120, "no integration on two pages");

    // A name search, in any case, with the other filters, kept in the next page's address.
    let searched = admin.get("/?provider=bitbucket_datacenter&name=bULK%201").await.text().await.unwrap();
    let found = names(&searched);
    // "Bulk 1", "Bulk 10"…"Bulk 19", "Bulk 100"…"Bulk 119": 31.
    assert_eq!(found.len(), 31, "{found:?}");
    assert!(found.iter().all(|name| name.starts_with("Bulk 1")));
    assert!(searched.contains("value=\"bULK 1\""), "the search stays in its field");
    let many = admin.get("/?name=bulk").await.text().await.unwrap();
    let next = href(&many, "Next page").unwrap();
    assert!(next.starts_with("/?name=bulk&cursor="), "{next}");
    assert!(names(&admin.get(&next).await.text().await.unwrap()).iter().all(|name| name.starts_with("Bulk")));
    // Nothing found, an unknown filter value: nothing, said; a forged cursor: a clear 400.
    let none = admin.get("/?name=nothing-like-it").await.text().await.unwrap();
    assert!(none.contains("No integration matches these filters."));
    let unknown = admin.get("/?provider=gitlab").await.text().await.unwrap();
    assert!(names(&unknown).is_empty() && unknown.contains("No integration matches these filters."));
    assert_eq!(admin.get("/?cursor=forged").await.status(), 400);
    // The label filter offers every label in use, not only the page's.
    assert!(first.contains("<option value=\"rare\"") && first.contains("<option value=\"prod\""));

    // The stacks list pages the same way: 60 stacks, 50 then 10.
    sqlx::query(
        "INSERT INTO stacks (name, space_id, provider, integration_id, repository_id, repository_name, branch,
                             created_by_label, created_at)
         SELECT 'stack-' || n, $1, 'bitbucket_datacenter', $2, n::text, 'OPS/repo-' || n, 'main', 'test',
                now() - make_interval(secs => n)
         FROM generate_series(1, 60) AS n",
    )
    .bind(w.team)
    .bind(id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    let stacks = |page: &str| page.matches("<td><a href=\"/stacks/").count();
    let first = admin.get("/stacks").await.text().await.unwrap();
    assert_eq!(stacks(&first), 50);
    assert!(first.find(">stack-1<").unwrap() < first.find(">stack-2<").unwrap(), "newest first");
    let next = href(&first, "Next page").expect("a second page");
    let second = admin.get(&next).await.text().await.unwrap();
    assert_eq!(stacks(&second), 10);
    assert!(second.contains(">stack-60<") && !second.contains(">stack-1<"));
    assert_eq!((href(&second, "First page").as_deref(), href(&second, "Next page")), (Some("/stacks"), None));
}

/// The lists at 1,000 (goal: p50 under 5 ms, a page under 30 KB): the
/// integrations list, its name search, the stacks, the users, an
/// integration's deliveries, the audit log and the viewer's API tokens, each asked 200 times in a
/// row by one browser. Ignored by the suite: it runs
/// alone, timed (scripts/bench-lists).
#[tokio::test]
#[ignore = "a benchmark: scripts/bench-lists runs it"]
async fn bench_the_lists_at_1000() {
    let w = world_with(&[("BITGATE_OUTBOUND_DENY", "")]).await;
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let admin = w.browser("account admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let created =
        admin.post_form("/integrations/new", &wizard_form(&csrf, &sim.url, DEMO_TOKEN, &w.team.to_string())).await;
    assert_eq!(created.status(), 303);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM integrations").fetch_one(&w.app.pool).await.unwrap();
    copy_integration(&w.app.pool, id, "Bulk", 999).await;
    sqlx::query(
        "INSERT INTO stacks (name, space_id, provider, integration_id, repository_id, repository_name, branch, created_by_label)
         SELECT 'stack-' || n, $1, 'bitbucket_datacenter', $2, n::text, 'OPS/repo-' || n, 'main', 'bench'
         FROM generate_series(1, 1000) AS n",
    )
    .bind(w.team)
    .bind(id)
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (email, name, password_hash)
         SELECT 'user' || n || '@example.com', 'User ' || n, 'x' FROM generate_series(1, 1000) n",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    // A day of deliveries to one integration, each a real push as Data Center sends it.
    let body = bitbucket_simulator::sender::datacenter_push("main", &"a".repeat(40));
    let body = serde_json::to_vec(&body).unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        bitbucket_simulator::sender::headers("repo:refs_changed", Some("secret"), &body, "bench")
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into()))
            .collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (integration_id, received_at, request_id, event_key, repository_id, repository_name,
                                         signature, outcome, headers, body)
         SELECT $1, now() - n * interval '1 minute', 'bench-' || n, 'repo:refs_changed', '1', 'OPS/repo', 'valid',
                'accepted', $2, $3
         FROM generate_series(1, 1000) AS n",
    )
    .bind(id)
    .bind(serde_json::Value::Object(headers))
    .bind(serde_json::from_slice::<serde_json::Value>(&body).unwrap())
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, actor_kind, actor_label, action, target_kind, target_id, target_label,
                                   space_id, details)
         SELECT now() - n * interval '1 minute', 'user', 'admin@example.com', 'integration.updated', 'integration', $1,
                'Bulk ' || n, $2, '{\"changed\": [\"description\"]}'
         FROM generate_series(1, 1000) AS n",
    )
    .bind(id.to_string())
    .bind(w.team)
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, token_sha256, prefix, created_at)
         SELECT id, 'token ' || n, sha256(n::text::bytea), 'x', now() - make_interval(secs => n)
         FROM users, generate_series(1, 1000) n WHERE email = 'account-admin@example.com'",
    )
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&w.app.pool).await.unwrap();
    let deliveries = format!("/integrations/{id}/deliveries");
    for (what, path) in [
        ("integrations", "/"),
        ("name search", "/?name=bulk%2012"),
        ("stacks", "/stacks"),
        ("users", "/users"),
        ("deliveries", deliveries.as_str()),
        ("audit", "/audit"),
        ("API tokens", "/tokens"),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..200 {
            let started = std::time::Instant::now();
            let page = admin.get(path).await;
            assert_eq!(page.status(), 200, "{path}");
            bytes = page.bytes().await.unwrap().len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "list {what} ({path}) at 1,000: p50 {:.2} ms, p99 {:.2} ms, {bytes} bytes (goal: p50 < 5 ms, < 30 KB)",
            times[100].as_secs_f64() * 1000.0,
            times[197].as_secs_f64() * 1000.0,
        );
    }
}

#[tokio::test]
async fn a_form_s_claim_passes_to_a_repeat_when_released_or_abandoned() {
    use bitgate_core::submissions::{self, Claim};
    use std::time::{Duration, Instant};
    let w = world_with(&[]).await;
    let pool = &w.app.pool;
    let user = w.app.user_id("team-admin@example.com").await;
    let token = uuid::Uuid::new_v4();
    let first = |claim: Claim| match claim {
        Claim::First(ticket) => ticket,
        other => panic!("not the first: {other:?}"),
    };
    let ticket = first(submissions::claim(pool, user, token, Duration::from_secs(5)).await.unwrap());

    // A repeat waits while the first works; the first saved nothing: the repeat does the work.
    let repeat = tokio::spawn({
        let pool = pool.clone();
        async move { submissions::claim(&pool, user, token, Duration::from_secs(5)).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!repeat.is_finished(), "the repeat waits for the first");
    assert!(ticket.release(pool).await.unwrap());
    let abandoned = first(repeat.await.unwrap());

    // That claim left open (its process died): taken over once it is older than the wait.
    let started = Instant::now();
    let wait = Duration::from_millis(400);
    let taken_over = first(submissions::claim(pool, user, token, wait).await.unwrap());
    assert!(started.elapsed() >= Duration::from_millis(300), "not before: {:?}", started.elapsed());
    assert_ne!(abandoned, taken_over);

    // The abandoned request, ending at last, ends nothing: not the claim that
    // took over (a release would let a third request do the work again) ...
    assert!(!abandoned.release(pool).await.unwrap());
    let third = submissions::claim(pool, user, token, Duration::from_secs(5));
    let third = tokio::time::timeout(Duration::from_millis(300), third).await;
    assert!(third.is_err(), "a third request waits: the claim that took over still holds, {third:?}");
    // ... nor its answer (a finish would send every later request to what it made).
    assert!(!abandoned.finish(pool, "/integrations/abandoned").await.unwrap());

    // Finished: every later request is sent where it led; another user's token is nothing to them.
    assert!(taken_over.finish(pool, "/integrations/made").await.unwrap());
    let done = Claim::Done { redirect_to: "/integrations/made".to_owned() };
    assert_eq!(submissions::claim(pool, user, token, wait).await.unwrap(), done);
    assert!(!taken_over.release(pool).await.unwrap(), "a finished claim is kept");
    assert_eq!(submissions::claim(pool, user, token, wait).await.unwrap(), done);
    let other = w.app.user_id("team-reader@example.com").await;
    assert_eq!(submissions::claim(pool, other, token, wait).await.unwrap(), Claim::Busy);
}

#[tokio::test]
async fn a_form_whose_work_panics_lets_its_repeat_do_the_work() {
    use bitgate_core::submissions::{self, Claim};
    use bitgate_server::http::{session::CurrentUser, submission};
    use std::{sync::Arc, time::Duration};
    let w = world_with(&[]).await;
    let state = bitgate_server::serve::app_state(w.app.services.clone(), false, None);
    let id = w.app.user_id("team-admin@example.com").await;
    let user = CurrentUser(Arc::new(bitgate_core::users::find(&w.app.pool, id).await.unwrap().unwrap()));
    let token = uuid::Uuid::new_v4();
    fn fails_half_way() -> bitgate_server::error::AppError {
        panic!("the work fails half-way")
    }
    let work = async { Err::<submission::Done, _>(fails_half_way()) };
    let store = tower_sessions_sqlx_store::PostgresStore::new(w.app.pool.clone());
    let session = tower_sessions::Session::new(None, Arc::new(store), None);
    let answer = submission::once(&state, &session, &user, &token.to_string(), submission::WAIT, work).await;
    assert!(answer.is_err(), "a panic is answered as an error");

    // Released, not left open: a repeat claims it at once instead of waiting out the wait.
    let repeat = submissions::claim(&w.app.pool, id, token, Duration::from_secs(5));
    let repeat = tokio::time::timeout(Duration::from_secs(2), repeat).await.expect("the repeat does not wait");
    assert!(matches!(repeat.unwrap(), Claim::First(_)));
}

#[tokio::test]
async fn a_double_click_lands_on_the_first_request_s_message() {
    // Idle clock renewed every second: both requests renew it, and so both store their session.
    let w = world_with(&[
        ("BITGATE_OUTBOUND_DENY", ""),
        ("BITGATE_OUTBOUND_TIMEOUT", "5s"),
        ("BITGATE_SESSION_IDLE", "10s"),
    ])
    .await;
    let mut slow = DataCenter::sample();
    slow.delay = std::time::Duration::from_millis(300);
    let sim = Simulator::start(slow, Transport::Http).await.unwrap();
    let admin = w.browser("team admin").await;
    let csrf = admin.csrf_token("/tokens").await;
    let wizard = admin.get("/integrations/new?provider=bitbucket_datacenter").await.text().await.unwrap();
    let team = w.team.to_string();
    let mut form = wizard_form(&csrf, &sim.url, DEMO_TOKEN, &team);
    let submission = hidden_value(&wizard, "submission");
    form.push(("submission", &submission));

    // The form filled in for a while; the second click aborts the first request's navigation.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let first =
        tokio::time::timeout(std::time::Duration::from_millis(100), admin.post_form("/integrations/new", &form)).await;
    assert!(first.is_err(), "the first request is given up on while Bitbucket is asked");
    let second = admin.post_form("/integrations/new", &form).await;
    assert_eq!(second.status(), 303);

    // Where the repeat leads, the first's message: what was made, and its checks.
    let page = admin.get(&location(&second)).await.text().await.unwrap();
    assert!(page.contains("created: every check passed"), "{page}");
}
