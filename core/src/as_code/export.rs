//! Stored integrations as entries of the integrations file, sorted by
//! name so that an export kept in a repository changes only where Bitgate did.

use std::collections::HashMap;

use sqlx::PgPool;

use super::file::{Credentials, Entry, OAuth1Link, OAuth2Link, Scope};
use crate::{
    integrations::{self, DataCenterAuth, Integration, ListFilter},
    spaces::{self, SpaceId},
};

/// What to export.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The spaces whose integrations are exported; `None`: every space.
    pub spaces: Option<Vec<SpaceId>>,
    /// Whether the default integrations are exported too.
    pub defaults: bool,
}

pub async fn entries(db: &PgPool, selection: &Selection) -> Result<Vec<Entry>, sqlx::Error> {
    let spaces = match &selection.spaces {
        None => sqlx::query_scalar!("SELECT id FROM spaces").fetch_all(db).await?,
        Some(ids) => ids.clone(),
    };
    let names: HashMap<SpaceId, String> =
        spaces::list(db, &spaces, None, i64::MAX).await?.into_iter().map(|s| (s.id, s.name)).collect();
    let mut found = integrations::list(db, &spaces, &ListFilter::default(), None, i64::MAX).await?;
    // The list holds the defaults always.
    found.retain(|i| selection.defaults || i.space_id.is_some());
    found.sort_by_key(|i| i.name.to_lowercase());
    Ok(found.into_iter().filter_map(|integration| entry(integration, &names)).collect())
}

fn entry(integration: Integration, space_names: &HashMap<SpaceId, String>) -> Option<Entry> {
    let scope = match integration.space_id {
        None => Scope::Default,
        // Every listed integration's space is among the names; an id names it as well.
        Some(id) => Scope::Space(space_names.get(&id).cloned().unwrap_or_else(|| id.to_string())),
    };
    let credentials = match (integration.datacenter, integration.cloud) {
        // Only the fields of the way it authenticates. For an application
        // link, not the account that approved it: that is who connected it,
        // not configuration, and another Bitgate is connected anew. For an
        // OAuth 1.0a link, its consumer key alone: the key pair stays here.
        (Some(dc), _) => Credentials::DataCenter {
            user_facing_url: Some(dc.user_facing_url).filter(|u| *u != dc.api_url),
            api_url: dc.api_url,
            auth: dc.auth,
            username: dc.username.filter(|_| dc.auth == DataCenterAuth::AccessToken),
            access_token: None,
            oauth2: dc
                .oauth2
                .filter(|_| dc.auth == DataCenterAuth::OAuth2)
                .map(|link| OAuth2Link { client_id: link.client_id, client_secret: None }),
            oauth1: (dc.auth == DataCenterAuth::OAuth1)
                .then(|| OAuth1Link { consumer_key: dc.oauth1.map(|link| link.consumer_key) }),
            ca_certificate: dc.ca_certificate,
        },
        (None, Some(cloud)) => Credentials::Cloud {
            workspace: cloud.workspace,
            client_id: cloud.client_id,
            client_secret: None,
            mode: cloud.mode.as_str().to_owned(),
        },
        (None, None) => return None,
    };
    Some(Entry {
        name: integration.name,
        provider: integration.provider,
        scope,
        description: integration.description,
        labels: integration.labels,
        options: integration.options,
        credentials,
        webhook_secret: None,
    })
}
