//! The forms that create an integration, a space, a user, a stack or an
//! API token, done once however often they are sent (core's
//! `submissions`): a double click used to create the thing with the first
//! request and answer the second "this name is taken", the error shown
//! over what had worked (or, for a token, made two). Each such form
//! carries its page's token (`SubmissionField`); a repeat waits for the
//! first request with it and is sent where that one led, to the first's
//! message.

use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use axum::response::{IntoResponse, Redirect, Response};
use bitgate_app::context::Flash;
use bitgate_core::{
    submissions::{self, Claim},
    users::FieldError,
};
use futures::FutureExt;
use tower_sessions::Session;
use tracing::Instrument;

use super::session::{push_flash, CurrentUser};
use crate::{error::AppError, state::AppState};

/// What a form's work came to.
pub enum Done {
    /// It made something: the answer sends the browser to `path`, where
    /// `flash` says what was done.
    Made { path: String, flash: Flash },
    /// It made something and answers with a page shown once (an API
    /// token's secret, kept nowhere): a repeat is sent to `repeat_to`,
    /// which says what the first request made. Once it has saved, the
    /// work returns this whatever else fails: an error releases the claim,
    /// and a repeat would make the thing again.
    Shown { response: Response, repeat_to: String },
    /// It saved nothing: the answer (the form again, with its problems).
    Refused(Response),
}

/// How long a repeat waits for the first request with its token when the
/// form only writes to the database: far longer than that takes. A form
/// that asks Bitbucket waits longer (`asking_bitbucket`).
pub const WAIT: Duration = Duration::from_secs(10);

/// The wait for a form whose work asks Bitbucket (a stack's repository is
/// looked up): longer than its calls can take, as the wizard's, or a repeat
/// would take the claim over while the first still works, and both create.
pub fn asking_bitbucket(state: &AppState) -> Duration {
    state.services.config.outbound_timeout * 2 + WAIT
}

/// Does `work` for the form's `token` (the posted `submission` field)
/// unless a request with it did it already, and answers: a redirect to what
/// was made, or `work`'s own answer when it saved nothing. A repeat waits
/// up to `wait` for the first; still busy then, it is answered 409 with a
/// page that says so. A form without a token (a page rendered before they
/// existed) is simply done.
pub async fn once(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    token: &str,
    wait: Duration,
    work: impl Future<Output = Result<Done, AppError>> + Send + 'static,
) -> Result<Response, AppError> {
    let busy = || async {
        let message =
            "This form was sent before and is still being saved: reload the list in a moment to see whether it was.";
        Err(AppError::Conflict(vec![FieldError::new("submission", "busy", message)]))
    };
    once_or(state, session, user, token, wait, work, busy).await
}

/// [`once`], with the form's own answer for a repeat that found the first
/// still working after `wait` (the wizard shows its form again, values kept).
///
/// The work runs detached, with its claim's end: a browser that gives up
/// on the first request (the second click aborts the first's navigation)
/// must not cancel it half-way and leave its claim open.
pub async fn once_or<B>(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    token: &str,
    wait: Duration,
    work: impl Future<Output = Result<Done, AppError>> + Send + 'static,
    busy: impl FnOnce() -> B,
) -> Result<Response, AppError>
where
    B: Future<Output = Result<Response, AppError>>,
{
    let mut ticket = None;
    if let Ok(token) = uuid::Uuid::parse_str(token.trim()) {
        match submissions::claim(&state.services.pool, user.0.id, token, wait).await? {
            Claim::First(first) => ticket = Some(first),
            Claim::Done { redirect_to } => {
                // The first request stored its message in the session before
                // it finished; this request's copy was loaded before that, and
                // would be stored over it as this answer leaves (it is, when
                // this request renewed the idle clock).
                session.load().await.map_err(AppError::internal)?;
                return Ok(Redirect::to(&redirect_to).into_response());
            }
            Claim::Busy => return busy().await,
        }
    }
    let (pool, session) = (state.services.pool.clone(), session.clone());
    let done = tokio::spawn(
        async move {
            // A panic in the work ends the claim too, or every repeat would
            // wait in vain. Released: nothing is known to be saved (a panic
            // after the work saved would let a repeat do it again).
            let done = AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(AppError::internal("a form's work panicked")));
            if let Ok(Done::Made { flash, .. }) = &done {
                // Stored now, not only as the answer leaves (the session layer
                // stores it again then): the browser may have given up on this
                // request (a second click aborts the first's navigation), and
                // then the repeat, sent where this led, shows the message.
                if let Err(error) = keep_flash(&session, flash.clone()).await {
                    tracing::warn!(%error, "a form's message could not be kept: the page it leads to will not show it");
                }
            }
            if let Some(ticket) = ticket {
                let ended = match &done {
                    Ok(Done::Made { path, .. }) => ticket.finish(&pool, path).await,
                    Ok(Done::Shown { repeat_to, .. }) => ticket.finish(&pool, repeat_to).await,
                    Ok(Done::Refused(_)) | Err(_) => ticket.release(&pool).await,
                };
                match ended {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("a form's work ended after a repeat took its claim over: it may have been done twice"),
                    Err(error) => tracing::warn!(%error, "a form's claim could not be ended: a repeat takes it over after the wait"),
                }
            }
            done
        }
        // Its log lines keep this request's id.
        .instrument(tracing::Span::current()),
    )
    .await
    .map_err(AppError::internal)??;
    Ok(match done {
        Done::Made { path, .. } => Redirect::to(&path).into_response(),
        Done::Shown { response, .. } | Done::Refused(response) => response,
    })
}

/// Adds `flash` to the session and stores the session at once.
async fn keep_flash(session: &Session, flash: Flash) -> Result<(), AppError> {
    push_flash(session, flash).await?;
    session.save().await.map_err(AppError::internal)
}
