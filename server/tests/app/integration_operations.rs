//! The integration operations of core, called directly as each door calls
//! them (no HTTP): what they decide does not depend on the door. The doors'
//! own tests (`integrations_api.rs`, `integrations_pages.rs`, `cli.rs`,
//! `integrations_file.rs`) check that each answers these decisions its way.

use std::sync::Arc;

use bitbucket_simulator::datacenter::{DEMO_TOKEN, DEMO_USER};
use bitgate_core::{
    access::Denied,
    integrations::{
        input::{DataCenterInput, IntegrationInput, OptionsInput},
        operations::{self, IntegrationError, Purpose},
        PrComments, VcsChecks,
    },
    principal::Principal,
    stacks::operations::{self as stacks, StackError, StackInput},
    users,
};
use uuid::Uuid;

use crate::{
    helpers::Listener,
    world::{email_of, world_with_bitbucket, World},
};

async fn principal(w: &World, label: &str) -> Principal {
    let id = w.app.user_id(&email_of(label)).await;
    let user = users::find(&w.app.pool, id).await.unwrap().unwrap();
    Principal::User { user: Arc::new(user), token_id: None, address: Some("192.0.2.7".parse().unwrap()) }
}

fn datacenter(name: &str, space: Option<Uuid>, api_url: &str) -> IntegrationInput {
    IntegrationInput {
        name: Some(name.into()),
        provider: Some("bitbucket_datacenter".into()),
        scope: Some(if space.is_some() { "space" } else { "default" }.into()),
        space_id: space.map(|s| s.to_string()),
        datacenter: Some(DataCenterInput {
            api_url: Some(api_url.into()),
            username: Some(DEMO_USER.into()),
            access_token: Some(DEMO_TOKEN.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn denied_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

fn codes(error: &IntegrationError) -> Vec<(String, String)> {
    match error {
        IntegrationError::Invalid(problems) => problems.iter().map(|p| (p.field.clone(), p.code.clone())).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn the_operations_authorize_validate_and_keep_the_rules_whoever_calls_them() {
    let (w, simulator) = world_with_bitbucket().await;
    let services = &w.app.services;
    let team_admin = principal(&w, "team admin").await;

    // Created by a space admin, with every check passed (and said); the creator recorded.
    let operations::Created { integration: created, checks } =
        operations::create(services, &team_admin, datacenter("team-dc", Some(w.team), &simulator.url)).await.unwrap();
    let passed: Vec<(&str, bool)> = checks.iter().map(|check| (check.name, check.ok)).collect();
    assert_eq!(
        passed,
        [("server", true), ("token", true), ("owner", true), ("projects", true), ("repositories", true)],
        "the checklist that passed, as the console shows it"
    );
    assert_eq!(
        (created.health.state.as_str(), created.created_by_label.as_str()),
        ("connected", "team-admin@example.com")
    );

    // A default is the account admins': refused, and the refusal recorded with its address.
    let before = denied_count(&w).await;
    let refused = operations::create(services, &team_admin, datacenter("dc-default", None, &simulator.url)).await;
    assert!(matches!(refused, Err(IntegrationError::Denied(Denied::Forbidden))), "{refused:?}");
    assert_eq!(denied_count(&w).await, before + 1);
    let address: Option<String> = sqlx::query_scalar(
        "SELECT host(client_address) FROM audit_events WHERE action = 'authorization.denied' ORDER BY occurred_at DESC LIMIT 1",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(address.as_deref(), Some("192.0.2.7"));

    // Every problem at once, named by its API field; the checks never ran.
    let mut invalid = datacenter("", Some(w.team), "ftp://bitbucket.example.com");
    invalid.options = Some(OptionsInput {
        vcs_checks: Some("some".into()),
        pr_comments: Some("sometimes".into()),
        ..Default::default()
    });
    let error = operations::create(services, &team_admin, invalid).await.unwrap_err();
    assert_eq!(
        codes(&error),
        [
            ("name".to_owned(), "required".to_owned()),
            ("options.vcs_checks".to_owned(), "invalid".to_owned()),
            ("options.pr_comments".to_owned(), "invalid".to_owned()),
            ("datacenter.api_url".to_owned(), "invalid".to_owned())
        ]
    );

    // The pull-request comments option: changed alone; a bad value changes nothing, labels given beside it neither.
    let options = |label: &str, pr_comments: &str| IntegrationInput {
        labels: Some(vec![label.into()]),
        options: Some(OptionsInput { pr_comments: Some(pr_comments.into()), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(created.options.pr_comments, PrComments::Failures, "the default");
    let changed = operations::update(services, &team_admin, created.id, options("first", "always")).await.unwrap();
    assert_eq!((changed.options.pr_comments, changed.options.vcs_checks), (PrComments::Always, VcsChecks::Individual));
    let error = operations::update(services, &team_admin, created.id, options("second", "never")).await.unwrap_err();
    assert_eq!(codes(&error), [("options.pr_comments".to_owned(), "invalid".to_owned())]);
    let kept = operations::load_for(services, &team_admin, created.id, Purpose::Read).await.unwrap();
    assert_eq!((kept.options.pr_comments, kept.labels), (PrComments::Always, vec!["first".to_owned()]));
    let relabelled = IntegrationInput { labels: Some(vec!["again".into()]), ..Default::default() };
    let relabelled = operations::update(services, &team_admin, created.id, relabelled).await.unwrap();
    assert_eq!(relabelled.options.pr_comments, PrComments::Always, "a change without options keeps it");

    // The rule that keeps a stored token at home: the listener never hears of it.
    let listener = Listener::start().await;
    let moved = IntegrationInput {
        datacenter: Some(DataCenterInput { api_url: Some(listener.url.clone()), ..Default::default() }),
        ..Default::default()
    };
    let error = operations::update(services, &team_admin, created.id, moved).await.unwrap_err();
    assert_eq!(codes(&error), [("datacenter.access_token".to_owned(), "token_required".to_owned())]);
    assert_eq!(listener.connections(), 0, "not even a version probe");

    // A reader may not act on it: a refused read is answered, a refused write recorded too.
    let reader = principal(&w, "team reader").await;
    let before = denied_count(&w).await;
    let read = operations::load_for(services, &reader, created.id, Purpose::Read).await;
    assert!(matches!(read, Err(IntegrationError::Denied(Denied::Forbidden))));
    assert_eq!(denied_count(&w).await, before, "a refused read is not a write to record");
    let test = operations::test(services, &reader, created.id).await;
    assert!(matches!(test, Err(IntegrationError::Denied(Denied::Forbidden))));
    let outsider = principal(&w, "outsider").await;
    let hidden = operations::delete(services, &outsider, created.id).await;
    assert!(matches!(hidden, Err(IntegrationError::Denied(Denied::Hidden))), "outside its space: as if absent");
    assert_eq!(denied_count(&w).await, before + 2);

    // The operator (the CLI) may do anything; its actions are the CLI's in the log.
    let (report, tested) = operations::test(services, &Principal::Operator, created.id).await.unwrap();
    assert!(report.passed() && tested.health.state == bitgate_core::integrations::HealthState::Connected);
    let actor: String = sqlx::query_scalar(
        "SELECT actor_kind FROM audit_events WHERE action = 'integration.tested' ORDER BY occurred_at DESC LIMIT 1",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(actor, "cli");
    let (deleted, detached) = operations::delete(services, &Principal::Operator, created.id).await.unwrap();
    assert_eq!((deleted.name.as_str(), detached), ("team-dc", 0));
    let gone = operations::load_for(services, &team_admin, created.id, Purpose::Read).await;
    assert!(matches!(gone, Err(IntegrationError::NotFound)));
}

#[tokio::test]
async fn stacks_find_their_repository_through_the_integration_whoever_calls() {
    let (w, simulator) = world_with_bitbucket().await;
    let services = &w.app.services;
    let team_admin = principal(&w, "team admin").await;
    let integration = operations::create(services, &team_admin, datacenter("team-dc", Some(w.team), &simulator.url))
        .await
        .unwrap()
        .integration;
    let stack = |name: &str, repository: Option<&str>, branch: Option<&str>| StackInput {
        name: Some(name.into()),
        space_id: Some(w.team.to_string()),
        integration_id: Some(integration.id.to_string()),
        repository: repository.map(str::to_owned),
        branch: branch.map(str::to_owned),
        ..Default::default()
    };
    let stack_codes = |error: StackError| match error {
        StackError::Invalid(problems) => problems.into_iter().map(|p| (p.field, p.code)).collect::<Vec<_>>(),
        other => panic!("expected invalid input, got {other:?}"),
    };

    // A reader of the space may not create one, and is recorded.
    let reader = principal(&w, "team reader").await;
    let before = denied_count(&w).await;
    let refused = stacks::create(services, &reader, stack("web", Some("OPS/my-repo"), Some("main"))).await;
    assert!(matches!(refused, Err(StackError::Denied(Denied::Forbidden))), "{refused:?}");
    assert_eq!(denied_count(&w).await, before + 1);

    // A writer's problems all at once, each by its field; Bitbucket is asked only for a well-formed stack.
    let writer = principal(&w, "team writer").await;
    let error = stacks::create(services, &writer, stack(" ", None, None)).await.unwrap_err();
    let fields: Vec<String> = stack_codes(error).into_iter().map(|(field, _)| field).collect();
    assert_eq!(fields, ["name", "branch", "repository"]);
    let error = stacks::create(services, &writer, stack("web", Some("OPS/nowhere"), Some("main"))).await.unwrap_err();
    assert_eq!(stack_codes(error), [("repository".to_owned(), "not_found".to_owned())]);

    // Found through the integration's token: its stable id kept beside the name.
    let created = stacks::create(services, &writer, stack("web", Some("OPS/my-repo"), Some("main"))).await.unwrap();
    assert_eq!((created.repository_name.as_str(), created.repository_id.as_str()), ("OPS/my-repo", "1"));
    assert_eq!(created.created_by_label, "team-writer@example.com");

    // Outside its space it does not exist; its writer deletes it.
    let outsider = principal(&w, "outsider").await;
    let hidden = stacks::delete(services, &outsider, created.id).await;
    assert!(matches!(hidden, Err(StackError::Denied(Denied::Hidden))), "{hidden:?}");
    let deleted = stacks::delete(services, &writer, created.id).await.unwrap();
    assert_eq!(deleted.name, "web");
}
