//! Who owns each logged-in browser session. The sessions themselves are
//! tower-sessions' records; Bitgate notes the user of each at login, so that
//! disabling a user deletes their sessions, and so that a session record
//! with no note (saved again by a request that was still running when its
//! user was disabled) is never believed.

use sqlx::PgExecutor;

use crate::users::UserId;

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

/// Whether the session was noted as `user`'s at login, and not ended since.
pub async fn is_owned_by(db: impl PgExecutor<'_>, session_id: &str, user: UserId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM session_owners WHERE session_id = $1 AND user_id = $2) AS "owned!""#,
        session_id,
        user
    )
    .fetch_one(db)
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
