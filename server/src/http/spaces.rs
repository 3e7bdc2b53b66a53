//! The spaces pages: list and create spaces, see a space, manage its
//! members. Plain form posts; the rules are those of the REST API
//! (`core::access`), so a page and an API call can never disagree.

use crate::error::AppError;
use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, MemberRow, PageContext, PageData, SpacePage, SpaceRow, SpacesPage};
use bitgate_core::{
    access::Access,
    spaces::{
        self,
        operations::{self, MemberInput, Membership, SpaceError, SpaceInput},
        SpaceRecord,
    },
    users::Role,
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::form_with_problems,
    session::{push_flash, CurrentUser},
    submission::{self, Done},
};
use crate::state::AppState;

/// A refused write, as its form answered again (422, or 409 for a
/// conflict); any other failure is the page's.
fn answered_again(error: SpaceError, values: Vec<(String, String)>) -> Result<(FormOutcome, StatusCode), AppError> {
    let (problems, status) = match error {
        SpaceError::Invalid(problems) => (problems, StatusCode::UNPROCESSABLE_ENTITY),
        SpaceError::Conflict(problems) => (problems, StatusCode::CONFLICT),
        other => return Err(other.into()),
    };
    Ok((form_with_problems(problems, values, |field| field.to_owned()), status))
}

fn row(space: &SpaceRecord, names: &HashMap<Uuid, String>, access: &Access) -> SpaceRow {
    SpaceRow {
        id: space.id.to_string(),
        name: space.name.clone(),
        parent: space.parent_id.and_then(|p| names.get(&p).cloned()),
        description: space.description.clone(),
        role: access.role_on(space.id).map(Role::as_str).unwrap_or_default().to_owned(),
    }
}

async fn render_list(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let mut records = spaces::list(&state.services.pool, &access.visible_spaces(), None, 1000).await?;
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let names: HashMap<Uuid, String> = records.iter().map(|s| (s.id, s.name.clone())).collect();
    let rows = records.iter().map(|s| row(s, &names, &access)).collect();
    let context = PageContext { page: PageData::Spaces(SpacesPage { spaces: rows }), form, ..context };
    Ok(state.pages.render(context, status).await)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
) -> Result<Response, AppError> {
    render_list(&state, context, &user, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    parent_id: String,
    /// The form's token (`submission`): sent twice, it creates once.
    #[serde(default)]
    submission: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    let parent = operations::parse_id(&form.parent_id)?;
    let token = form.submission.clone();
    let work = {
        let (state, user) = (state.clone(), user.clone());
        async move {
            let input = SpaceInput { name: Some(form.name.clone()), ..Default::default() };
            match operations::create(&state.services.pool, &user.caller(address).principal(), parent, input).await {
                Ok(space) => Ok(Done::Made {
                    path: format!("/spaces/{}", space.id),
                    flash: Flash::success(format!("Space \u{201c}{}\u{201d} created.", space.name)),
                }),
                Err(error) => {
                    let values = vec![("name".into(), form.name), ("parent_id".into(), form.parent_id)];
                    let (outcome, status) = answered_again(error, values)?;
                    Ok(Done::Refused(render_list(&state, context, &user, Some(outcome), status).await?))
                }
            }
        }
    };
    submission::once(&state, &session, &user, &token, submission::WAIT, work).await
}

async fn render_space(
    state: &AppState,
    context: PageContext,
    user: &CurrentUser,
    space_id: Uuid,
    form: Option<FormOutcome>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    access.can_see(space_id)?;
    let space = spaces::find(&state.services.pool, space_id).await?.ok_or(AppError::NotFound)?;
    let mut names = HashMap::new();
    if let Some(parent) = space.parent_id.and_then(|p| access.role_on(p).map(|_| p)) {
        if let Some(parent) = spaces::find(&state.services.pool, parent).await? {
            names.insert(parent.id, parent.name);
        }
    }
    let members = match access.can_administer(space_id) {
        Ok(()) => Some(
            spaces::members(&state.services.pool, space_id)
                .await?
                .into_iter()
                .map(|m| MemberRow { user_id: m.user_id.to_string(), email: m.email, name: m.name, role: m.role })
                .collect(),
        ),
        Err(_) => None,
    };
    let page = SpacePage { space: row(&space, &names, &access), is_root: space.parent_id.is_none(), members };
    let context = PageContext { page: PageData::Space(page), form, ..context };
    Ok(state.pages.render(context, status).await)
}

pub async fn show(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let space_id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    render_space(&state, context, &user, space_id, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    /// Absent for `root`, whose name is fixed.
    name: Option<String>,
    #[serde(default)]
    description: String,
}

/// Renames a space or changes its description.
pub async fn update(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<SettingsForm>,
) -> Result<Response, AppError> {
    let space_id = operations::parse_id(&raw)?;
    // Root's form has no name field: a name posted for it is ignored.
    let is_root = spaces::find(&state.services.pool, space_id).await?.is_some_and(|s| s.parent_id.is_none());
    let name = form.name.clone().filter(|_| !is_root);
    let input = SpaceInput { name, description: Some(form.description.clone()), ..Default::default() };
    if let Err(error) =
        operations::update(&state.services.pool, &user.caller(address).principal(), space_id, input).await
    {
        let values = vec![
            ("name".into(), form.name.clone().unwrap_or_default()),
            ("description".into(), form.description.clone()),
        ];
        let (outcome, status) = answered_again(error, values)?;
        return render_space(&state, context, &user, space_id, Some(outcome), status).await;
    }
    push_flash(&session, Flash::success("Saved.")).await?;
    Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response())
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn add_member(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path(raw): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, AppError> {
    let space_id = operations::parse_id(&raw)?;
    let input = MemberInput { email: Some(form.email.clone()), role: Some(form.role.clone()), ..Default::default() };
    let principal = user.caller(address).principal();
    let Membership { email, role, .. } =
        match operations::set_member(&state.services.pool, &principal, space_id, input).await {
            Ok(membership) => membership,
            Err(error) => {
                // The form has one field to fix: every problem is shown next to the email.
                let (outcome, status) = answered_again(error, vec![("email".into(), form.email.clone())])?;
                let outcome = FormOutcome {
                    field_errors: outcome
                        .field_errors
                        .into_iter()
                        .map(|(_, message)| ("email".to_owned(), message))
                        .take(1)
                        .collect(),
                    ..outcome
                };
                return render_space(&state, context, &user, space_id, Some(outcome), status).await;
            }
        };
    push_flash(&session, Flash::success(format!("{email} now has the role {} here.", role.as_str()))).await?;
    Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response())
}

pub async fn remove_member(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Path((raw, member_raw)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let space_id = operations::parse_id(&raw)?;
    let member_id = operations::parse_id(&member_raw)?;
    let principal = user.caller(address).principal();
    match operations::remove_member(&state.services.pool, &principal, space_id, member_id).await {
        Ok(()) => {}
        Err(SpaceError::Conflict(problems)) => {
            let why = problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join(" ");
            push_flash(&session, Flash::error(format!("{why} Nothing was changed."))).await?;
            return Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response());
        }
        Err(other) => return Err(other.into()),
    }
    push_flash(&session, Flash::success("The member was removed.")).await?;
    Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response())
}
