//! The repositories an integration's stored credentials reach: a page of
//! them to pick from (the API's listing and the new-stack page), and the
//! lookup of one that creating or re-attaching a stack needs. The secrets
//! stay here: callers get names and ids.

use std::future::Future;

use super::{
    checks::{self, StoredError},
    DataCenterAuth, Integration, Provider,
};
use crate::{
    bitbucket::{
        cloud, datacenter, parse_repository_name, ApiCallError, CallFailed, Repository, RepositoryPage,
        RepositorySearch,
    },
    secret::Secret,
    Services,
};

/// One page of the repositories Bitbucket shows the integration's
/// credentials; `Ok(Err)` when Bitbucket gave no usable answer, saying why
/// in words an admin can act on.
pub async fn page(
    services: &Services,
    integration: &Integration,
    search: &str,
    start: u64,
    limit: u32,
) -> Result<Result<RepositoryPage, CallFailed>, StoredError> {
    let wanted = RepositorySearch { name: search, start, limit };
    match integration.provider {
        Provider::DataCenter => {
            let connection = match checks::stored_connection(services, integration).await? {
                Ok(connection) => connection,
                Err(why) => return Ok(Err(CallFailed(why))),
            };
            let config = &services.config;
            with_token(services, integration, connection.token.clone(), |token| {
                let connection = datacenter::Connection { token, ..connection.clone() };
                async move { datacenter::repositories(&connection, config, wanted).await }
            })
            .await
        }
        Provider::Cloud => {
            let workspace = cloud_workspace(integration)?;
            let (http, endpoints) = cloud_client(services)?;
            let config = &services.config;
            let token = match checks::cloud_access_token(services, integration.id).await? {
                Ok(token) => token,
                Err(why) => return Ok(Err(CallFailed(why))),
            };
            with_token(services, integration, token, |token| {
                let (http, endpoints, workspace) = (http.clone(), endpoints.clone(), workspace.clone());
                async move { cloud::repositories(&http, config, &endpoints, &token, &workspace, wanted).await }
            })
            .await
        }
    }
}

/// Why a repository cannot be used for a stack.
#[derive(Debug)]
pub enum Unusable {
    /// Not written as the provider names repositories.
    Invalid(String),
    /// Bitbucket does not show it to the integration.
    Repository(String),
    /// Bitbucket could not be asked.
    Bitbucket(String),
    /// The stored credentials could not be read.
    Stored(StoredError),
}

impl From<StoredError> for Unusable {
    fn from(error: StoredError) -> Self {
        Unusable::Stored(error)
    }
}

/// Finds `PROJECT/slug` (Data Center) or `workspace/slug` (Cloud) through
/// the integration's credentials.
pub async fn find(services: &Services, integration: &Integration, name: &str) -> Result<Repository, Unusable> {
    match integration.provider {
        Provider::DataCenter => {
            let (project, slug) = parse_repository_name(name).map_err(Unusable::Invalid)?;
            let connection = checks::stored_connection(services, integration).await?.map_err(Unusable::Bitbucket)?;
            let config = &services.config;
            let found = with_token(services, integration, connection.token.clone(), |token| {
                let connection = datacenter::Connection { token, ..connection.clone() };
                let (project, slug) = (project.clone(), slug.clone());
                async move { datacenter::repository(&connection, config, &project, &slug).await }
            })
            .await?;
            match found {
                Ok(Some(repository)) => Ok(repository),
                Ok(None) => Err(Unusable::Repository(format!(
                    "Bitbucket shows no repository {project}/{slug} to the integration {}: check the name, and that its token can read it.",
                    integration.name
                ))),
                Err(CallFailed(why)) => Err(Unusable::Bitbucket(why)),
            }
        }
        Provider::Cloud => {
            let workspace = cloud_workspace(integration)?;
            let slug = cloud_repository_slug(name, &workspace).map_err(Unusable::Invalid)?;
            let (http, endpoints) = cloud_client(services)?;
            let config = &services.config;
            let token = match checks::cloud_access_token(services, integration.id).await? {
                Ok(token) => token,
                Err(why) => return Err(Unusable::Bitbucket(why)),
            };
            let found = with_token(services, integration, token, |token| {
                let (http, endpoints, workspace, slug) =
                    (http.clone(), endpoints.clone(), workspace.clone(), slug.clone());
                async move { cloud::repository(&http, config, &endpoints, &token, &workspace, &slug).await }
            })
            .await?;
            match found {
                Ok(Some(repository)) => Ok(repository),
                Ok(None) => Err(Unusable::Repository(format!(
                    "Bitbucket shows no repository {workspace}/{slug} to the integration {}: check the name, and that its account can read it.",
                    integration.name
                ))),
                Err(CallFailed(why)) => Err(Unusable::Bitbucket(why)),
            }
        }
    }
}

fn cloud_workspace(integration: &Integration) -> Result<String, StoredError> {
    integration.cloud.as_ref().map(|c| c.workspace.clone()).ok_or(StoredError::Missing)
}

fn cloud_client(services: &Services) -> Result<(cloud::HttpClient, cloud::Endpoints), StoredError> {
    let config = &services.config;
    Ok((cloud::http_client(config)?, cloud::Endpoints::from_config(config)))
}

/// Makes a REST call with the integration's `token`; when Bitbucket answers
/// 401 to an OAuth access token, refreshes it once and tries again (an
/// HTTP access token refused is the admin's to replace).
async fn with_token<T, F, Fut>(
    services: &Services,
    integration: &Integration,
    token: Secret<String>,
    call: F,
) -> Result<Result<T, CallFailed>, StoredError>
where
    F: Fn(Secret<String>) -> Fut,
    Fut: Future<Output = Result<T, ApiCallError>>,
{
    let refreshable = match &integration.datacenter {
        Some(dc) => dc.auth == DataCenterAuth::OAuth2,
        None => integration.provider == Provider::Cloud,
    };
    match call(token.clone()).await {
        Ok(answer) => return Ok(Ok(answer)),
        Err(ApiCallError::Failed(failed)) => return Ok(Err(failed)),
        Err(ApiCallError::Unauthorized) if !refreshable => {
            return Ok(Err(CallFailed(datacenter::TOKEN_REFUSED.into())))
        }
        Err(ApiCallError::Unauthorized) => {}
    }
    let token = match checks::token_after_refusal(services, integration.provider, integration.id, token).await? {
        Ok(token) => token,
        Err(why) => return Ok(Err(CallFailed(why))),
    };
    Ok(match call(token).await {
        Ok(answer) => Ok(answer),
        Err(ApiCallError::Failed(failed)) => Err(failed),
        Err(ApiCallError::Unauthorized) => Err(CallFailed(
            "Bitbucket refused the integration's fresh token: test the integration, and reconnect it if it was revoked."
                .into(),
        )),
    })
}

/// The slug of `workspace/slug` for a Cloud integration, which reaches one
/// workspace only; only characters Bitbucket allows, so it cannot change a path.
fn cloud_repository_slug(raw: &str, workspace: &str) -> Result<String, String> {
    let usage = || {
        format!(
            "Name the repository as {workspace}/slug, such as {workspace}/my-repo (not \u{201c}{}\u{201d}).",
            raw.trim()
        )
    };
    let (given, slug) = raw.trim().split_once('/').ok_or_else(usage)?;
    if given != workspace {
        return Err(format!(
            "This integration reaches the workspace {workspace} only: name a repository as {workspace}/slug."
        ));
    }
    let slug_ok = !slug.is_empty()
        && slug != "."
        && slug != ".."
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if slug_ok {
        Ok(slug.to_ascii_lowercase())
    } else {
        Err(usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_repository_is_named_in_the_integrations_workspace_only() {
        assert_eq!(cloud_repository_slug(" acme/My-Repo ", "acme").unwrap(), "my-repo");
        assert!(cloud_repository_slug("other/my-repo", "acme").unwrap_err().contains("acme only"));
        for bad in ["my-repo", "acme/", "acme/..", "acme/a/b", "acme/a%2f"] {
            assert!(cloud_repository_slug(bad, "acme").is_err(), "{bad}");
        }
    }
}
