//! A form that does something once, whatever the number of times it is
//! posted: a double click, the Enter key pressed again while Bitbucket is
//! asked, a reload of the answer. Each rendered form carries a random token;
//! the first request with it claims it, and records where its answer led
//! when it saved something. A repeat waits for the first to finish and is
//! sent to the same place; when the first saved nothing (its form came back
//! with errors), the repeat does the work itself: nothing is saved twice,
//! though Bitbucket may be asked again.
//!
//! The token is bound to the user who claimed it: another user's token
//! claims nothing for them.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::users::UserId;

/// How soon a repeat first looks whether the first request finished, and
/// how seldom it looks at most.
const POLL: Duration = Duration::from_millis(50);
const MAX_POLL: Duration = Duration::from_millis(800);

/// How long a claim is kept: far longer than any form takes, so that a
/// reload of an answer an hour later still lands on what it made.
pub const KEPT: Duration = Duration::from_secs(24 * 3600);

/// What a request with a form's token is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is the first: do the work, then end the claim with
    /// [`Ticket::finish`] (or [`Ticket::release`]).
    First(Ticket),
    /// An earlier request with the token did the work; its answer led here.
    Done { redirect_to: String },
    /// The token is another user's, or other requests with it kept it busy
    /// for all of `wait`: answer that, and do nothing.
    Busy,
}

/// One claim of a token: what ends it. A claim taken over (its first
/// request outlived the wait) is a new claim, with a ticket of its own:
/// the old ticket can neither finish nor release it, so the first request,
/// when it ends at last, cannot send the repeat's later requests to what it
/// made, nor let a third request do the work again while the repeat works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    token: Uuid,
    claimed_at: OffsetDateTime,
}

/// Claims `token` for `user`, waiting up to `wait` for an earlier request
/// with it to finish. A claim left open longer than `wait` (its process
/// died mid-way) is taken over: the form is done again, as nothing recorded
/// that it was done.
pub async fn claim(pool: &PgPool, user: UserId, token: Uuid, wait: Duration) -> Result<Claim, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut poll = POLL;
    loop {
        // A claim's time tells it from the claim it took over (that one was
        // older than `wait` by then): the half of a ticket the other lacks.
        let claimed = sqlx::query_scalar!(
            "INSERT INTO form_submissions (token, user_id) VALUES ($1, $2)
             ON CONFLICT (token) DO UPDATE SET created_at = now()
               WHERE form_submissions.user_id = $2 AND form_submissions.finished_at IS NULL
                 AND form_submissions.created_at < now() - make_interval(secs => $3)
             RETURNING created_at",
            token,
            user,
            wait.as_secs_f64()
        )
        .fetch_optional(pool)
        .await?;
        if let Some(claimed_at) = claimed {
            return Ok(Claim::First(Ticket { token, claimed_at }));
        }
        let earlier = sqlx::query!(
            "SELECT user_id, finished_at IS NOT NULL AS \"finished!\", redirect_to FROM form_submissions WHERE token = $1",
            token
        )
        .fetch_optional(pool)
        .await?;
        match earlier {
            // Released since (it saved nothing): claim it again.
            None => continue,
            Some(earlier) if earlier.user_id != user => return Ok(Claim::Busy),
            Some(earlier) => {
                if let (true, Some(redirect_to)) = (earlier.finished, earlier.redirect_to) {
                    return Ok(Claim::Done { redirect_to });
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Claim::Busy);
        }
        // Asked often at first (a double click's first is usually quick), then less.
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(MAX_POLL);
    }
}

impl Ticket {
    /// The work is done, and its answer leads to `redirect_to`: every later
    /// request with the token is sent there. Returns whether this ticket
    /// still held the claim (`false`: it was taken over, and the request
    /// that took it ends it).
    pub async fn finish(&self, pool: &PgPool, redirect_to: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            "UPDATE form_submissions SET finished_at = now(), redirect_to = $3
             WHERE token = $1 AND created_at = $2 AND finished_at IS NULL",
            self.token,
            self.claimed_at,
            redirect_to
        )
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The work saved nothing: a repeat does it itself. Returns whether this
    /// ticket still held the claim.
    pub async fn release(&self, pool: &PgPool) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            "DELETE FROM form_submissions WHERE token = $1 AND created_at = $2 AND finished_at IS NULL",
            self.token,
            self.claimed_at
        )
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Forgets claims older than [`KEPT`] (housekeeping). Returns how many.
pub async fn forget_old(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM form_submissions WHERE created_at < now() - make_interval(secs => $1)",
        KEPT.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
