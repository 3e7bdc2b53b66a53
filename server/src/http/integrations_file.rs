//! `/integrations/import` and `/integrations/export`: integrations as code
//! in the browser, through the API's code (`api::integrations_file`), so
//! that the permission table, the checks and the audit trail are the same.

use crate::error::AppError;
use axum::{
    extract::{Multipart, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use bitgate_app::context::{Flash, ImportPage, ImportPreview, PageContext, PageData};
use bitgate_core::{access::Access, as_code::file::MAX_FILE, spaces};
use tower_sessions::Session;
use uuid::Uuid;

use super::{
    client_address::ClientAddress,
    session::{push_flash, CurrentUser},
};
use crate::{
    api::integrations_file::{export_checked, import_checked},
    state::AppState,
};

/// (id, name) of the spaces the viewer administers, by name.
async fn administered_spaces(state: &AppState, user: &CurrentUser) -> Result<Vec<(String, String)>, AppError> {
    let access = Access::load(&state.services.pool, user.0.id).await?;
    let mut found = spaces::list(&state.services.pool, &access.administered_spaces(), None, i64::MAX).await?;
    found.sort_by_key(|s| s.name.to_lowercase());
    Ok(found.into_iter().map(|s| (s.id.to_string(), s.name)).collect())
}

async fn render(state: &AppState, context: PageContext, page: ImportPage, status: StatusCode) -> Response {
    let context = PageContext { page: PageData::Import(page), ..context };
    let mut response = state.pages.render(context, status).await;
    // The posted file may hold tokens: never kept by a cache.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /integrations/import`: choose a file.
pub async fn page(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
) -> Result<Response, AppError> {
    let spaces = administered_spaces(&state, &user).await?;
    // Someone who administers no space may import nothing (the API answers them 403 too).
    if spaces.is_empty() {
        return Err(AppError::Forbidden);
    }
    let page = ImportPage { spaces, ..Default::default() };
    Ok(render(&state, context, page, StatusCode::OK).await)
}

/// What the forms post: the file (chosen or pasted), the space for the
/// entries naming none, and the step (`preview` or `apply`).
#[derive(Default)]
struct Posted {
    file: String,
    text: String,
    space_id: String,
    step: String,
}

async fn read_posted(mut multipart: Multipart) -> Result<Posted, String> {
    let mut posted = Posted::default();
    while let Some(field) = multipart.next_field().await.map_err(|_| "The form could not be read: send it again.")? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|_| "The form could not be read: send it again.")?;
        if bytes.len() > MAX_FILE {
            return Err("The file is larger than 1 MiB.".into());
        }
        let value = String::from_utf8(bytes.to_vec()).map_err(|_| "The file is not UTF-8 text.")?;
        match name.as_str() {
            "file" => posted.file = value,
            "text" => posted.text = value,
            "space_id" => posted.space_id = value,
            "step" => posted.step = value,
            _ => {}
        }
    }
    Ok(posted)
}

/// `POST /integrations/import`: the preview (a dry run), or applying it.
pub async fn import(
    State(state): State<AppState>,
    Extension(context): Extension<PageContext>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    session: Session,
    multipart: Multipart,
) -> Result<Response, AppError> {
    let spaces = administered_spaces(&state, &user).await?;
    let posted = match read_posted(multipart).await {
        Ok(posted) => posted,
        Err(why) => {
            let page = ImportPage { spaces, problems: vec![("file".into(), why)], ..Default::default() };
            return Ok(render(&state, context, page, StatusCode::UNPROCESSABLE_ENTITY).await);
        }
    };
    // A chosen file wins over the text box.
    let text = if posted.file.trim().is_empty() { posted.text } else { posted.file };
    let mut page = ImportPage { spaces, space_id: posted.space_id.trim().to_owned(), text, ..Default::default() };
    if page.text.trim().is_empty() {
        page.problems.push(("file".into(), "Choose a file, or paste its content.".into()));
        return Ok(render(&state, context, page, StatusCode::UNPROCESSABLE_ENTITY).await);
    }
    let space = match page.space_id.as_str() {
        "" => None,
        raw => Some(Uuid::parse_str(raw).map_err(|_| AppError::NotFound)?),
    };
    let applying = posted.step == "apply";
    let caller = user.caller(address);
    match import_checked(&state, &caller, space, !applying, &page.text).await {
        Ok(summary) if applying => {
            let list = |names: &[String]| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            let message = format!(
                "Imported. Created: {}. Updated: {}. Unchanged: {}.",
                list(&summary.created),
                list(&summary.updated),
                list(&summary.unchanged)
            );
            push_flash(&session, Flash::success(message)).await?;
            Ok(Redirect::to("/").into_response())
        }
        Ok(summary) => {
            page.preview = Some(ImportPreview {
                created: summary.created,
                updated: summary.updated,
                unchanged: summary.unchanged,
            });
            Ok(render(&state, context, page, StatusCode::OK).await)
        }
        Err(AppError::Validation(problems)) => {
            page.problems = problems.into_iter().map(|p| (p.field, p.message)).collect();
            Ok(render(&state, context, page, StatusCode::UNPROCESSABLE_ENTITY).await)
        }
        Err(other) => Err(other),
    }
}

/// `GET /integrations/export`: the YAML of what the viewer administers, as a download.
pub async fn export(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
) -> Result<Response, AppError> {
    let file = export_checked(&state, &user.caller(address), None).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/yaml"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"bitgate-integrations.yaml\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        file,
    )
        .into_response())
}
