//! The spaces pages: list and create spaces, see a space, manage its
//! members. Plain form posts; the rules are those of the REST API
//! (`core::access`), so a page and an API call can never disagree.

use std::collections::HashMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use bitgate_app::context::{Flash, FormOutcome, MemberRow, PageContext, SpacePage, SpaceRow, SpacesPage};
use bitgate_core::{
    access::{self, Access, Denied},
    audit::{self, Actor, Event, Target},
    spaces::{self, SpaceRecord, SpaceWriteError},
    users::{self, Email, Role},
};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    pages::AppError,
    session::{push_flash, CurrentUser},
};
use crate::state::AppState;

impl From<Denied> for AppError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Hidden => AppError::NotFound,
            Denied::Forbidden => AppError::Forbidden,
        }
    }
}

impl From<access::Refused> for AppError {
    fn from(refused: access::Refused) -> Self {
        match refused {
            access::Refused::Denied(denied) => denied.into(),
            access::Refused::Database(e) => e.into(),
        }
    }
}

/// The viewer's access, when they administer `space`; otherwise the
/// refusal, recorded in the audit log.
async fn administer(
    state: &AppState,
    user: &CurrentUser,
    address: Option<std::net::IpAddr>,
    space: Uuid,
    action: &'static str,
) -> Result<Access, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let attempt = access::refusal(Actor::user(&user.0), action, space).from_address(address);
    access::administer_or_record(&state.services.pool, &access, space, attempt).await?;
    Ok(access)
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
    let context = PageContext { spaces: Some(SpacesPage { spaces: rows }), form, ..context };
    Ok(state.pages.render("/spaces", context, status).await)
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
}

pub async fn create(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    let parent = Uuid::parse_str(&form.parent_id).map_err(|_| AppError::NotFound)?;
    administer(&state, &user, address, parent, "space.create").await?;
    let again = |field: &str, message: String| FormOutcome {
        values: vec![("name".into(), form.name.clone()), ("parent_id".into(), form.parent_id.clone())],
        field_errors: vec![(field.to_owned(), message)],
        ..FormOutcome::default()
    };
    let name = match spaces::parse_name(&form.name) {
        Ok(name) => name,
        Err(e) => {
            return render_list(
                &state,
                context,
                &user,
                Some(again("name", e.message)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let mut tx = state.services.pool.begin().await?;
    let space = match spaces::create(&mut *tx, &name, parent, "").await {
        Ok(space) => space,
        Err(SpaceWriteError::NameTaken) => {
            let outcome = again("name", "A space with this name exists already: choose another.".into());
            return render_list(&state, context, &user, Some(outcome), StatusCode::CONFLICT).await;
        }
        Err(SpaceWriteError::HasChildren | SpaceWriteError::InUse) => {
            return Err(AppError::Internal("a new space reported dependents".into()))
        }
        Err(SpaceWriteError::Database(e)) => return Err(e.into()),
    };
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), "space.created")
            .target(Target::space(&space))
            .from_address(address)
            .in_space(space.id),
    )
    .await?;
    tx.commit().await?;
    push_flash(&session, Flash::success(format!("Space \u{201c}{}\u{201d} created.", space.name))).await?;
    Ok(Redirect::to(&format!("/spaces/{}", space.id)).into_response())
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
    let context = PageContext { space: Some(page), form, ..context };
    Ok(state.pages.render(&format!("/spaces/{space_id}"), context, status).await)
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
    let space_id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    administer(&state, &user, address, space_id, "space.update").await?;
    let current = spaces::find(&state.services.pool, space_id).await?.ok_or(AppError::NotFound)?;
    let mut errors = Vec::new();
    let name = match (&form.name, current.parent_id) {
        (Some(raw), Some(_)) => spaces::parse_name(raw).map_err(|e| errors.push(("name".to_owned(), e.message))).ok(),
        _ => None,
    };
    let description = spaces::parse_description(&form.description)
        .map_err(|e| errors.push(("description".to_owned(), e.message)))
        .ok();
    let again = |field_errors: Vec<(String, String)>| FormOutcome {
        values: vec![
            ("name".into(), form.name.clone().unwrap_or_default()),
            ("description".into(), form.description.clone()),
        ],
        field_errors,
        ..FormOutcome::default()
    };
    if !errors.is_empty() {
        return render_space(&state, context, &user, space_id, Some(again(errors)), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let mut tx = state.services.pool.begin().await?;
    let space = match spaces::update(&mut *tx, space_id, name.as_deref(), description.as_deref()).await {
        Ok(Some(space)) => space,
        Ok(None) => return Err(AppError::NotFound),
        Err(SpaceWriteError::NameTaken) => {
            let outcome = again(vec![("name".into(), "A space with this name exists already: choose another.".into())]);
            return render_space(&state, context, &user, space_id, Some(outcome), StatusCode::CONFLICT).await;
        }
        Err(SpaceWriteError::HasChildren | SpaceWriteError::InUse) => {
            return Err(AppError::Internal("renaming reported dependents".into()))
        }
        Err(SpaceWriteError::Database(e)) => return Err(e.into()),
    };
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), "space.updated")
            .target(Target::space(&space))
            .from_address(address)
            .in_space(space.id),
    )
    .await?;
    tx.commit().await?;
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
    let space_id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    administer(&state, &user, address, space_id, "member.set").await?;
    let refuse = |message: String| FormOutcome {
        values: vec![("email".into(), form.email.clone())],
        field_errors: vec![("email".into(), message)],
        ..FormOutcome::default()
    };
    let role = Role::parse(&form.role).map_err(|e| AppError::BadRequest(e.message))?;
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(e) => {
            return render_space(
                &state,
                context,
                &user,
                space_id,
                Some(refuse(e.message)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let Some(member) = users::find_for_login(&state.services.pool, &email).await? else {
        let outcome = refuse(format!("No user has the email {email}. Create the user first."));
        return render_space(&state, context, &user, space_id, Some(outcome), StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let mut tx = state.services.pool.begin().await?;
    spaces::set_member(&mut *tx, space_id, member.id, role).await?;
    if spaces::account_admin_count(&mut *tx).await? == 0 {
        let outcome = refuse("The account must keep an administrator of root.".into());
        return render_space(&state, context, &user, space_id, Some(outcome), StatusCode::CONFLICT).await;
    }
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), "member.set")
            .target(Target { kind: "user", id: member.id.to_string(), label: email.to_string() })
            .from_address(address)
            .details(json!({"role": role.as_str()}))
            .in_space(space_id),
    )
    .await?;
    tx.commit().await?;
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
    let space_id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
    administer(&state, &user, address, space_id, "member.remove").await?;
    let member_id = Uuid::parse_str(&member_raw).map_err(|_| AppError::NotFound)?;
    let mut tx = state.services.pool.begin().await?;
    if !spaces::remove_member(&mut *tx, space_id, member_id).await? {
        return Err(AppError::NotFound);
    }
    if spaces::account_admin_count(&mut *tx).await? == 0 {
        drop(tx);
        push_flash(&session, Flash::error("The account must keep an administrator of root: nothing was changed."))
            .await?;
        return Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response());
    }
    audit::record(
        &mut *tx,
        Event::new(Actor::user(&user.0), "member.removed")
            .target(Target { kind: "user", id: member_id.to_string(), label: member_id.to_string() })
            .from_address(address)
            .in_space(space_id),
    )
    .await?;
    tx.commit().await?;
    push_flash(&session, Flash::success("The member was removed.")).await?;
    Ok(Redirect::to(&format!("/spaces/{space_id}")).into_response())
}
