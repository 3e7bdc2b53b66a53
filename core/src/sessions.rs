//! Who owns each logged-in browser session. The sessions themselves are
//! tower-sessions' records; Bitgate notes the user of each at login, so that
//! disabling a user deletes their sessions, and so that a session record
//! with no note (saved again by a request that was still running when its
//! user was disabled) is never believed.

use sqlx::PgExecutor;

use crate::users::{User, UserId};

/// Notes that the session `session_id` (as tower-sessions stores it) is `user`'s.
pub async fn record_owner(db: impl PgExecutor<'_>, session_id: &str, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO session_owners (session_id, user_id) VALUES ($1, $2)
           ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id"#,
        session_id,
        user
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The user of a session, when the session was noted as theirs at login
/// and not ended since: what every request of a logged-in browser asks, in
/// one round trip.
pub async fn user_of(db: impl PgExecutor<'_>, session_id: &str, user: UserId) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as!(
        User,
        r#"SELECT u.id, u.email, u.name, u.disabled_at IS NOT NULL AS "disabled!", u.created_at,
                  EXISTS (SELECT 1 FROM memberships m JOIN spaces s ON s.id = m.space_id
                          WHERE m.user_id = u.id AND s.parent_id IS NULL AND m.role = 'admin') AS "is_account_admin!"
           FROM users u JOIN session_owners o ON o.user_id = u.id
           WHERE o.session_id = $1 AND u.id = $2"#,
        session_id,
        user
    )
    .fetch_optional(db)
    .await
}

/// Deletes every session of `user` (their notes go with them).
pub async fn end_all(db: impl PgExecutor<'_>, user: UserId) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query!(
        "DELETE FROM tower_sessions.session s USING session_owners o WHERE o.session_id = s.id AND o.user_id = $1",
        user
    )
    .execute(db)
    .await?;
    Ok(ended.rows_affected())
}
