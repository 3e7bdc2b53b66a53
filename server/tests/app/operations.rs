//! The operations of core on spaces, tokens and users, called directly as
//! each door calls them (no HTTP): authorization first, refusals recorded,
//! every problem named by its field, the account's last admin kept.

use std::sync::Arc;

use bitgate_core::{
    access::Denied,
    api_tokens::operations::{self as tokens, NewToken, Owner, TokenError},
    principal::Principal,
    spaces::operations::{self as spaces, MemberInput, SpaceError, SpaceInput},
    users::{
        self,
        operations::{self as user_operations, NewUserInput, UserChange, UserError},
    },
};
use time::{Duration, OffsetDateTime};

use crate::world::{email_of, world, World};

async fn principal(w: &World, label: &str) -> Principal {
    let id = w.app.user_id(&email_of(label)).await;
    let user = users::find(&w.app.pool, id).await.unwrap().unwrap();
    Principal::User { user: Arc::new(user), token_id: None, address: None }
}

async fn denied_count(w: &World) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'authorization.denied'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

fn fields(problems: &[bitgate_core::users::FieldError]) -> Vec<(&str, &str)> {
    problems.iter().map(|p| (p.field.as_str(), p.code.as_str())).collect()
}

#[tokio::test]
async fn spaces_tokens_and_users_are_decided_alike_for_every_principal() {
    let w = world().await;
    let pool = &w.app.pool;
    let hasher = &w.app.services.hasher;
    let (team_admin, reader) = (principal(&w, "team admin").await, principal(&w, "team reader").await);
    let before = denied_count(&w).await;

    // Spaces: a reader may not create inside, and is recorded; an admin may, with every problem named.
    let child = || SpaceInput { name: Some("child".into()), ..Default::default() };
    let refused = spaces::create(pool, &reader, w.team, child()).await;
    assert!(matches!(refused, Err(SpaceError::Denied(Denied::Forbidden))), "{refused:?}");
    let invalid = SpaceInput { name: Some(" ".into()), description: Some("x".repeat(2001)), ..Default::default() };
    match spaces::create(pool, &team_admin, w.team, invalid).await {
        Err(SpaceError::Invalid(problems)) => assert_eq!(fields(&problems)[0], ("name", "required")),
        other => panic!("{other:?}"),
    }
    let made = spaces::create(pool, &team_admin, w.team, child()).await.unwrap();
    assert_eq!(made.parent_id, Some(w.team));
    let taken = spaces::create(pool, &team_admin, w.team, child()).await;
    assert!(matches!(taken, Err(SpaceError::Conflict(_))));

    // Members: the account keeps an administrator of root, whoever asks.
    let admin_id = w.app.user_id(&email_of("account admin")).await;
    let last = spaces::remove_member(pool, &Principal::Operator, w.root, admin_id).await;
    match last {
        Err(SpaceError::Conflict(problems)) => assert_eq!(fields(&problems), [("user_id", "last_admin")]),
        other => panic!("{other:?}"),
    }
    let unknown =
        MemberInput { email: Some("no-such-user@example.com".into()), role: Some("read".into()), ..Default::default() };
    match spaces::set_member(pool, &team_admin, w.team, unknown).await {
        Err(SpaceError::Invalid(problems)) => assert_eq!(fields(&problems), [("email", "unknown_user")]),
        other => panic!("{other:?}"),
    }

    // Tokens: a user issues their own only, never expiring in the past.
    let reader_id = w.app.user_id(&email_of("team reader")).await;
    let owner = || Owner { id: reader_id, email: "team-reader@example.com" };
    let others = tokens::issue(pool, &team_admin, owner(), NewToken { name: "x".into(), ..Default::default() }).await;
    assert!(matches!(others, Err(TokenError::NotFound)));
    let past = NewToken {
        name: " ".into(),
        expires_at: Some(OffsetDateTime::now_utc() - Duration::hours(1)),
        ..Default::default()
    };
    match tokens::issue(pool, &reader, owner(), past).await {
        Err(TokenError::Invalid(problems)) => {
            assert_eq!(fields(&problems), [("name", "required"), ("expires_at", "in_the_past")])
        }
        other => panic!("{other:?}"),
    }
    let (issued, secret) =
        tokens::issue(pool, &Principal::Operator, owner(), NewToken { name: "ci".into(), ..Default::default() })
            .await
            .unwrap();
    assert!(secret.starts_with("bgt_"));
    assert!(matches!(tokens::revoke(pool, &team_admin, issued.id).await, Err(TokenError::NotFound)), "not theirs");
    tokens::revoke(pool, &reader, issued.id).await.unwrap();

    // Users: account admins and the operator only; a refusal recorded.
    let new = || NewUserInput {
        email: Some("made@example.com".into()),
        password: Some("a long enough password".into()),
        ..Default::default()
    };
    let refused = user_operations::create(pool, hasher, &team_admin, new()).await;
    assert!(matches!(refused, Err(UserError::Denied(Denied::Forbidden))));
    let made = user_operations::create(pool, hasher, &Principal::Operator, new()).await.unwrap();
    assert_eq!(made.name, "made", "the name is made from the email");
    let again = user_operations::create(pool, hasher, &Principal::Operator, new()).await;
    assert!(matches!(again, Err(UserError::Conflict(_))));
    let disable_last = UserChange { disabled: Some(true), ..Default::default() };
    let last = user_operations::update(pool, &Principal::Operator, admin_id, disable_last).await;
    assert!(matches!(last, Err(UserError::Conflict(_))), "the last account admin stays enabled");

    assert_eq!(denied_count(&w).await, before + 2, "the reader's space and the team admin's user");
}
