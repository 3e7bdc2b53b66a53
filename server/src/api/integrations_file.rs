//! Integrations as code over the API: `/api/v1/integrations/export` and
//! `/import`, the YAML file of `bitgate integrations export|import`, limited
//! to what the caller administers (the permission table's "create, change
//! or delete an integration"). The browser's import page goes through
//! [`import_checked`] too.

use crate::error::AppError;
use axum::{
    body::Body,
    extract::{FromRequest, Request, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use bitgate_core::{
    access::{Access, Denied},
    as_code::{
        self,
        export::Selection,
        import::{Import, ImportError, Summary},
    },
    audit::{self, AuditAction, Event},
    spaces,
    users::FieldError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::query::Query;
use super::{caller::Caller, error::ErrorBody, json::media_type};
use crate::http::limits::read_body;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only this space's integrations (you administer it). Left out: every
    /// space you administer, and the defaults when you administer the account.
    pub space_id: Option<String>,
}

/// Export integrations as YAML
///
/// The integrations file of `bitgate integrations import`: each secret is a
/// placeholder to fill in. Sorted by name, so that a copy kept in a
/// repository changes only where Bitgate did.
#[utoipa::path(get, path = "/api/v1/integrations/export", tag = "integrations", params(ExportQuery),
    responses(
        (status = 200, description = "The integrations file.", content_type = "application/yaml", body = String),
        (status = 400, description = "space_id is not a space's id.", body = ErrorBody),
        (status = 403, description = "You do not administer the space.", body = ErrorBody),
        (status = 404, description = "The space does not exist, or you cannot see it.", body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let space = parse_space_id(query.space_id.as_deref())?;
    let file = export_checked(&state, &caller, space).await?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], file).into_response())
}

/// The integrations file of what `caller` administers (one space's, when
/// given), audited; the browser's download goes through here too.
pub async fn export_checked(state: &AppState, caller: &Caller, space: Option<Uuid>) -> Result<String, AppError> {
    let access = Access::load(&state.services.pool, caller.user.id).await?;
    let selection = match space {
        Some(space) => {
            if let Err(why) = access.can_administer(space) {
                return Err(caller.refused(state, "integration", "integrations.export", Some(space), why).await);
            }
            Selection { spaces: Some(vec![space]), defaults: false }
        }
        None => Selection { spaces: Some(access.administered_spaces()), defaults: access.is_account_admin() },
    };
    let entries = as_code::export::entries(&state.services.pool, &selection).await?;
    let event = Event::new(caller.actor(), AuditAction::IntegrationsExported)
        .from_address(caller.address)
        .details(json!({"count": entries.len()}))
        .in_space(space);
    audit::record(&state.services.pool, event).await?;
    Ok(as_code::file::render(&entries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `true`: check everything and answer what would change; write nothing.
    #[serde(default)]
    pub dry_run: Option<String>,
    /// The space that receives the entries naming no scope (CDS-shaped ones
    /// included); the root space when left out. You administer it.
    pub space_id: Option<String>,
}

/// What an import did (or, in a dry run, would do), by integration name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ImportSummary)]
pub struct ImportAnswer {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Of those, the ones left waiting for an admin's approval in
    /// Bitbucket (Connect on their page): OAuth integrations created or
    /// given a new client.
    pub to_connect: Vec<String>,
    /// Of those, the OAuth 1.0a links given a new key pair: Bitbucket's
    /// application link needs the public key on their page before Connect.
    pub new_key_pairs: Vec<String>,
}

impl From<Summary> for ImportAnswer {
    fn from(summary: Summary) -> Self {
        Self {
            created: summary.created,
            updated: summary.updated,
            unchanged: summary.unchanged,
            to_connect: summary.to_connect,
            new_key_pairs: summary.new_key_pairs,
        }
    }
}

/// A YAML body: `application/yaml` (or `application/x-yaml`, `text/yaml`,
/// `text/plain`), at most the size of an integrations file, in UTF-8.
pub struct YamlBody(pub String);

impl<S: Send + Sync> FromRequest<S> for YamlBody {
    type Rejection = AppError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let is_yaml = media_type(request.headers()).is_some_and(|mime| {
            matches!(
                mime.as_str(),
                "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" | "text/plain"
            )
        });
        if !is_yaml {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = read_body(request.into_body(), as_code::file::MAX_FILE).await?;
        String::from_utf8(bytes.to_vec())
            .map(YamlBody)
            .map_err(|_| AppError::BadRequest("The body is not UTF-8 text.".into()))
    }
}

/// Import integrations from YAML
///
/// Creates or updates integrations by name from an integrations file (the
/// YAML of `/api/v1/integrations/export`, or CDS-shaped `bitbucketserver`
/// entries). Everything is validated, each provider's connection checks
/// included, before anything is written; then all of it is written in one
/// transaction, or nothing. Importing the same file again changes nothing
/// and says so (every name under `unchanged`).
#[utoipa::path(post, path = "/api/v1/integrations/import", tag = "integrations", params(ImportQuery),
    request_body(content = String, content_type = "application/yaml", description = "The integrations file."),
    responses(
        (status = 200, description = "Imported (or, with dry_run, checked): what was created, updated and left alone.", body = ImportAnswer),
        (status = 400, description = "A parameter is malformed, or the body is not UTF-8.", body = ErrorBody),
        (status = 403, description = "You administer no space, or not the space given.", body = ErrorBody),
        (status = 404, description = "The space does not exist, or you cannot see it.", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/yaml` (`unsupported_media_type`).", body = ErrorBody),
        (status = 422, description = "Every problem of the file, each with its place in `field`; nothing was written.", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ImportQuery>,
    YamlBody(text): YamlBody,
) -> Result<Json<ImportAnswer>, AppError> {
    let dry_run = match query.dry_run.as_deref().map(str::trim) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => return Err(AppError::BadRequest("dry_run must be true or false.".into())),
    };
    let space = parse_space_id(query.space_id.as_deref())?;
    Ok(Json(import_checked(&state, &caller, space, dry_run, &text).await?.into()))
}

fn parse_space_id(raw: Option<&str>) -> Result<Option<Uuid>, AppError> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|raw| Uuid::parse_str(raw.trim()))
        .transpose()
        .map_err(|_| AppError::BadRequest("space_id must be a space's id (a UUID).".into()))
}

/// Imports a file as `caller`: authorization first (someone who administers
/// nothing may import nothing; the space given must be theirs), then the
/// import, whose problems are answered as a 422 listing each of them.
pub async fn import_checked(
    state: &AppState,
    caller: &Caller,
    space: Option<Uuid>,
    dry_run: bool,
    text: &str,
) -> Result<Summary, AppError> {
    let pool = &state.services.pool;
    let access = Access::load(pool, caller.user.id).await?;
    let space = match space {
        Some(space) => {
            if let Err(why) = access.can_administer(space) {
                return Err(caller.refused(state, "integration", "integrations.import", Some(space), why).await);
            }
            space
        }
        None => {
            if access.administered_spaces().is_empty() && !access.is_account_admin() {
                return Err(caller.refused(state, "integration", "integrations.import", None, Denied::Forbidden).await);
            }
            spaces::resolve(pool, spaces::ROOT).await?.ok_or_else(|| AppError::Internal("no root space".into()))?.id
        }
    };
    let import = Import {
        db: pool,
        keyring: &state.services.keyring,
        config: &state.services.config,
        by: caller.principal(),
        access,
        space,
        dry_run,
    };
    match as_code::import::run(&import, text).await {
        Ok(summary) => Ok(summary),
        Err(ImportError::Problems(problems)) => Err(AppError::Validation(
            problems.into_iter().map(|p| FieldError::new(&p.place, &p.code, p.message)).collect(),
        )),
        Err(ImportError::Database(e)) => Err(e.into()),
    }
}
