//! What can be done to stacks, for every door: the stacks pages and the
//! REST API (`/api/v1/stacks`). Writers of a stack's space create, change,
//! re-attach and delete it; a refusal is audited. A stack's repository is
//! always found through its integration before anything is saved, so a
//! stack never points at a repository its integration cannot read.

use serde_json::{json, Value};
use uuid::Uuid;

use super::{find, name_taken, parse_branch, parse_name, NewStack, Stack, StackChanges, StackId, StackWriteError};
use crate::{
    access::Denied,
    audit::{self, AuditAction, Event, Target},
    integrations::{
        self,
        checks::StoredError,
        repositories::{self, Unusable},
        Integration, SecretError,
    },
    managed_hooks,
    platform::events::Triggers,
    principal::Principal,
    spaces::SpaceId,
    users::FieldError,
    validation::Problems,
    Services,
};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// No such stack (or space), or none the principal may know of.
    #[error("no such stack")]
    NotFound,
    /// The permission table says no; the refusal is in the audit log.
    #[error("refused by the permission table")]
    Denied(Denied),
    #[error("the input has {} problems", .0.len())]
    Invalid(Vec<FieldError>),
    /// Another stack of the space has the name.
    #[error("conflicts with another stack")]
    Conflict(Vec<FieldError>),
    /// The integration's stored credentials could not be read.
    #[error(transparent)]
    Stored(StoredError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<StackWriteError> for StackError {
    fn from(error: StackWriteError) -> Self {
        match error {
            StackWriteError::Database(e) => StackError::Database(e),
            conflict => StackError::Conflict(conflict.field_error().into_iter().collect()),
        }
    }
}

impl From<StoredError> for StackError {
    fn from(error: StoredError) -> Self {
        match error {
            StoredError::Database(e) | StoredError::Secret(SecretError::Database(e)) => StackError::Database(e),
            other => StackError::Stored(other),
        }
    }
}

/// What a creation or change asks; `None`: not given (a change keeps it).
#[derive(Debug, Default)]
pub struct StackInput {
    /// What the door's reader found wrong, reported after authorization.
    pub read_problems: Vec<FieldError>,
    pub name: Option<String>,
    /// Creation only: the space, which the principal must write to.
    pub space_id: Option<String>,
    /// A default integration, or one of the space or a space above it;
    /// on a change, another one re-attaches the stack.
    pub integration_id: Option<String>,
    /// `PROJECT/slug` (Data Center) or `workspace/slug` (Cloud).
    pub repository: Option<String>,
    pub branch: Option<String>,
    pub triggers: Option<TriggersInput>,
}

/// Triggers to set, each on its own; `None`: not given (a creation takes
/// the default, a change keeps the stored one). A door that cannot read a
/// value as true or false says so in `read_problems`, named
/// `triggers.<name>`, and leaves it out here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TriggersInput {
    pub build_pull_requests: Option<bool>,
    pub all_branches: Option<bool>,
    pub prune_branches: Option<bool>,
    pub resync_pull_requests: Option<bool>,
}

impl TriggersInput {
    /// The triggers with the given ones over `base`: merge-patch, so that a
    /// change naming one trigger leaves the other three as they are.
    pub fn over(self, base: Triggers) -> Triggers {
        Triggers {
            build_pull_requests: self.build_pull_requests.unwrap_or(base.build_pull_requests),
            all_branches: self.all_branches.unwrap_or(base.all_branches),
            prune_branches: self.prune_branches.unwrap_or(base.prune_branches),
            resync_pull_requests: self.resync_pull_requests.unwrap_or(base.resync_pull_requests),
        }
    }
}

/// The triggers that differ, by name, with their new values; `None` when
/// none does. An audit event says what changed: triggers decide what runs.
fn changed_triggers(before: Triggers, after: Triggers) -> Option<Value> {
    let (Value::Object(before), Value::Object(after)) = (json!(before), json!(after)) else { return None };
    let changed: serde_json::Map<String, Value> =
        after.into_iter().filter(|(name, value)| before.get(name) != Some(value)).collect();
    (!changed.is_empty()).then_some(Value::Object(changed))
}

/// A path's id: one that is not a UUID names nothing.
pub fn parse_id(raw: &str) -> Result<StackId, StackError> {
    Uuid::parse_str(raw.trim()).map_err(|_| StackError::NotFound)
}

fn audit_event(by: &Principal, action: AuditAction, stack: &Stack) -> Event {
    let target = Target { kind: "stack", id: stack.id.to_string(), label: stack.name.clone() };
    Event::new(by.actor(), action).target(target).from_address(by.address()).in_space(stack.space_id)
}

/// Checks that `by` may write to `space`; a refusal is recorded under `action`.
async fn write_to(services: &Services, by: &Principal, space: SpaceId, action: &'static str) -> Result<(), StackError> {
    match by.access(&services.pool).await?.can_write(space) {
        Ok(()) => Ok(()),
        Err(why) => Err(StackError::Denied(by.refused(&services.pool, "stack", action, Some(space), why).await?)),
    }
}

/// The stack, when `by` may change it; a refusal is recorded under `action`.
pub async fn writable(
    services: &Services,
    by: &Principal,
    id: StackId,
    action: &'static str,
) -> Result<Stack, StackError> {
    let stack = find(&services.pool, id).await?.ok_or(StackError::NotFound)?;
    write_to(services, by, stack.space_id, action).await?;
    Ok(stack)
}

/// `integration_id` as an id; anything else is a problem of the field.
fn integration_id(problems: &mut Problems, raw: Option<String>) -> Option<Uuid> {
    let parsed = Uuid::parse_str(raw?.trim()).ok();
    if parsed.is_none() {
        problems.push("integration_id", "invalid", "Give the integration's id (a UUID).");
    }
    parsed
}

/// The integration a stack in `space` is to use, when it may; the same
/// answer whether it does not exist or is not usable there, so that a
/// writer learns nothing about integrations they cannot see.
async fn usable_integration(
    services: &Services,
    id: Uuid,
    space: SpaceId,
) -> Result<Result<Integration, FieldError>, StackError> {
    let refusal = FieldError::new(
        "integration_id",
        "not_usable",
        "This space cannot use that integration: choose a default integration, or one of this space or a space above it.",
    );
    if !super::integration_usable_in(&services.pool, id, space).await? {
        return Ok(Err(refusal));
    }
    Ok(integrations::find(&services.pool, id).await?.ok_or(refusal))
}

/// The integration, when it serves the stack's provider (its repository id
/// means nothing to another provider).
fn of_provider(integration: Integration, stack: &Stack) -> Result<Integration, FieldError> {
    if integration.provider == stack.provider {
        return Ok(integration);
    }
    Err(FieldError::new(
        "integration_id",
        "other_provider",
        format!(
            "This stack's repository is on {}: attach it to an integration of that provider.",
            stack.provider.label()
        ),
    ))
}

/// The repository found through the integration: (id, `PROJECT/slug`).
async fn repository_through(
    services: &Services,
    integration: &Integration,
    name: &str,
) -> Result<(String, String), StackError> {
    let why = match repositories::find(services, integration, name).await {
        Ok(repository) => return Ok((repository.id.clone(), repository.full_name())),
        Err(Unusable::Invalid(why)) => FieldError::new("repository", "invalid", why),
        Err(Unusable::Repository(why)) => FieldError::new("repository", "not_found", why),
        Err(Unusable::Bitbucket(why)) => FieldError::new("repository", "bitbucket_error", why),
        Err(Unusable::Stored(error)) => return Err(error.into()),
    };
    Err(StackError::Invalid(vec![why]))
}

/// Creates a stack: writers of the space; the repository is looked up
/// through the integration first.
pub async fn create(services: &Services, by: &Principal, input: StackInput) -> Result<Stack, StackError> {
    let mut problems = Problems(input.read_problems);
    // Authorization first: the space decides who may.
    let space = match problems.required("space_id", input.space_id) {
        Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| StackError::NotFound)?),
        None => None,
    };
    if let Some(space) = space {
        write_to(services, by, space, "stack.create").await?;
    }
    let name = problems.required("name", input.name).and_then(|raw| problems.check(parse_name(&raw)));
    let branch = problems.required("branch", input.branch).and_then(|raw| problems.check(parse_branch(&raw)));
    let repository = problems.required("repository", input.repository);
    let raw = problems.required("integration_id", input.integration_id);
    let integration = match (integration_id(&mut problems, raw), space) {
        (Some(id), Some(space)) => problems.check(usable_integration(services, id, space).await?),
        _ => None,
    };
    let (Some(space), Some(name), Some(branch), Some(repository), Some(integration), true) =
        (space, name, branch, repository, integration, problems.is_empty())
    else {
        return Err(StackError::Invalid(problems.0));
    };
    // A taken name before Bitbucket is asked; the insert still catches a race.
    if name_taken(&services.pool, space, &name).await? {
        return Err(StackWriteError::NameTaken.into());
    }
    let (repository_id, repository_name) = repository_through(services, &integration, &repository).await?;
    let new = NewStack {
        name,
        space_id: space,
        provider: integration.provider,
        integration_id: integration.id,
        repository_id,
        repository_name,
        branch,
        created_by_label: by.label(),
        triggers: input.triggers.unwrap_or_default().over(Triggers::default()),
    };
    let mut tx = services.pool.begin().await?;
    let id = super::create(&mut *tx, new).await?;
    let stack = find(&mut *tx, id).await?.ok_or(StackError::NotFound)?;
    managed_hooks::enqueue(&mut *tx, integration.id, &stack.repository_id).await?;
    let details =
        json!({"integration": integration.name, "repository": stack.repository_name, "triggers": stack.triggers});
    audit::record(&mut *tx, audit_event(by, AuditAction::StackCreated, &stack).details(details)).await?;
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    Ok(stack)
}

/// Changes or re-attaches a stack: writers of its space. A new integration
/// (re-attaching) or repository is checked through Bitbucket first.
pub async fn update(services: &Services, by: &Principal, id: StackId, input: StackInput) -> Result<Stack, StackError> {
    let stack = writable(services, by, id, "stack.update").await?;
    let mut problems = Problems(input.read_problems);
    let name = input.name.and_then(|raw| problems.check(parse_name(&raw)));
    let branch = input.branch.and_then(|raw| problems.check(parse_branch(&raw)));
    let repository = input.repository.filter(|r| !r.trim().is_empty());
    let raw = input.integration_id.filter(|r| !r.trim().is_empty());
    let new_integration = match integration_id(&mut problems, raw) {
        Some(id) => {
            let usable = usable_integration(services, id, stack.space_id).await?;
            problems.check(usable.and_then(|integration| of_provider(integration, &stack)))
        }
        None => None,
    };
    if repository.is_some() && new_integration.is_none() && stack.integration_id.is_none() && problems.is_empty() {
        problems.push(
            "integration_id",
            "required",
            "This stack is detached: give the integration to attach it to with its repository.",
        );
    }
    if !problems.is_empty() {
        return Err(StackError::Invalid(problems.0));
    }

    // A new integration or repository: find the repository through the
    // integration it will use (the stored name when only re-attaching).
    let reattached = new_integration.as_ref().is_some_and(|i| Some(i.id) != stack.integration_id);
    let mut attachment = None;
    if new_integration.is_some() || repository.is_some() {
        let integration = match (new_integration, stack.integration_id) {
            (Some(integration), _) => integration,
            (None, Some(current)) => integrations::find(&services.pool, current).await?.ok_or(StackError::NotFound)?,
            // Refused above: a detached stack names its new integration.
            (None, None) => return Err(StackError::NotFound),
        };
        let wanted = repository.unwrap_or_else(|| stack.repository_name.clone());
        let (id, name) = repository_through(services, &integration, &wanted).await?;
        attachment = Some((integration.id, id, name));
    }
    let triggers = input.triggers.map(|given| given.over(stack.triggers));
    let moved = attachment.is_some();
    let mut tx = services.pool.begin().await?;
    let updated = super::update(&mut tx, stack.id, StackChanges { name, branch, attachment, triggers })
        .await?
        .ok_or(StackError::NotFound)?;
    if moved {
        // The hook follows the stack: created where it goes, deleted where
        // it left if no other stack is there.
        for (integration, repository) in
            [(stack.integration_id, &stack.repository_id), (updated.integration_id, &updated.repository_id)]
        {
            if let Some(integration) = integration {
                managed_hooks::enqueue(&mut *tx, integration, repository).await?;
            }
        }
    }
    let mut event = if reattached {
        let details = json!({"integration": updated.integration_name, "was_detached": stack.integration_id.is_none()});
        audit_event(by, AuditAction::StackAttached, &updated).details(details)
    } else {
        audit_event(by, AuditAction::StackUpdated, &updated)
    };
    if let Some(changed) = changed_triggers(stack.triggers, updated.triggers) {
        event.details["triggers"] = changed;
    }
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    Ok(updated)
}

/// Deletes a stack: writers of its space.
pub async fn delete(services: &Services, by: &Principal, id: StackId) -> Result<Stack, StackError> {
    let stack = writable(services, by, id, "stack.delete").await?;
    let mut tx = services.pool.begin().await?;
    if !super::delete(&mut *tx, stack.id).await? {
        return Err(StackError::NotFound);
    }
    if let Some(integration) = stack.integration_id {
        managed_hooks::enqueue(&mut *tx, integration, &stack.repository_id).await?;
    }
    audit::record(&mut *tx, audit_event(by, AuditAction::StackDeleted, &stack)).await?;
    tx.commit().await?;
    services.webhooks.endpoints.changed_here();
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_left_out_keep_the_base() {
        let stored = Triggers { all_branches: true, resync_pull_requests: true, ..Triggers::default() };
        assert_eq!(TriggersInput::default().over(stored), stored, "nothing given: nothing changes");
        let one = TriggersInput { build_pull_requests: Some(false), ..Default::default() };
        assert_eq!(
            one.over(stored),
            Triggers {
                build_pull_requests: false,
                all_branches: true,
                prune_branches: true,
                resync_pull_requests: true
            }
        );
        let all = TriggersInput {
            build_pull_requests: Some(false),
            all_branches: Some(false),
            prune_branches: Some(false),
            resync_pull_requests: Some(false),
        };
        let off = Triggers {
            build_pull_requests: false,
            all_branches: false,
            prune_branches: false,
            resync_pull_requests: false,
        };
        assert_eq!(all.over(stored), off);
        // A creation starts from SPEC's defaults.
        assert_eq!(TriggersInput::default().over(Triggers::default()), Triggers::default());
        assert!(Triggers::default().build_pull_requests && Triggers::default().prune_branches);
    }

    #[test]
    fn changed_triggers_name_only_those_that_differ() {
        let before = Triggers::default();
        assert_eq!(changed_triggers(before, before), None);
        let after = Triggers { all_branches: true, prune_branches: false, ..before };
        assert_eq!(changed_triggers(before, after), Some(json!({"all_branches": true, "prune_branches": false})));
    }
}
