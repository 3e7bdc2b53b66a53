//! Matching an accepted delivery to the stacks it concerns: pushes by
//! repository and branch, pull requests by repository. A push that deletes
//! a tracked branch flags its stacks (and one that creates it again clears
//! the flag).
//!
//! Matching is a lookup in memory, in the stacks each process keeps beside
//! an endpoint's secrets (refreshed by the same notifications), and its
//! result is written by the statement that stores the delivery: nothing
//! acknowledged is ever left unrouted, and no delivery is written twice.

use std::collections::HashMap;

use uuid::Uuid;

use super::events::Event;

/// A stack as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRoute {
    pub id: Uuid,
    pub branch: String,
}

/// An integration's stacks by repository id (the stable one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(HashMap<String, Vec<StackRoute>>);

impl Routes {
    pub fn from_rows(rows: impl IntoIterator<Item = (String, StackRoute)>) -> Self {
        let mut routes = HashMap::<String, Vec<StackRoute>>::new();
        for (repository, stack) in rows {
            routes.entry(repository).or_default().push(stack);
        }
        Self(routes)
    }

    /// What `event` does to the stacks on its repository.
    pub fn route(&self, event: &Event) -> Routed {
        let mut routed = Routed::default();
        for stack in self.0.get(&event.repository.id).map(Vec::as_slice).unwrap_or_default() {
            let change = event.refs.iter().find(|r| r.kind == "branch" && r.name == stack.branch);
            let triggers = match (&event.pull_request, change) {
                (Some(_), _) => true,
                (None, Some(change)) => {
                    let deleted = change.action == "deleted";
                    routed.branch_deleted.push((stack.id, deleted));
                    !deleted
                }
                (None, None) => false,
            };
            if triggers {
                routed.stacks.push(stack.id);
            }
        }
        routed
    }
}

/// What one delivery does to stacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// The stacks it triggers (it becomes their last triggering delivery).
    pub stacks: Vec<Uuid>,
    /// Stacks whose branch it deleted (`true`) or pushed to again (`false`).
    pub branch_deleted: Vec<(Uuid, bool)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::events::{PullRequest, RefChange, RepositoryRef};

    fn stack(n: u128, branch: &str) -> StackRoute {
        StackRoute { id: Uuid::from_u128(n), branch: branch.into() }
    }

    fn routes() -> Routes {
        Routes::from_rows([
            ("1".to_owned(), stack(1, "main")),
            ("1".to_owned(), stack(2, "develop")),
            ("2".to_owned(), stack(3, "main")),
        ])
    }

    fn push(repository: &str, changes: &[(&str, &str, &str)]) -> Event {
        Event {
            key: "repo:refs_changed".into(),
            repository: RepositoryRef { id: repository.into(), name: "OPS/my-repo".into() },
            actor: None,
            refs: changes
                .iter()
                .map(|(kind, name, action)| RefChange {
                    kind: (*kind).into(),
                    name: (*name).into(),
                    action: (*action).into(),
                    commit: None,
                })
                .collect(),
            pull_request: None,
        }
    }

    #[test]
    fn a_push_triggers_the_stacks_on_its_repository_and_branch_only() {
        let routed = routes().route(&push("1", &[("branch", "main", "updated")]));
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1)]);
        assert_eq!(routed.branch_deleted, vec![(Uuid::from_u128(1), false)]);
        assert_eq!(routes().route(&push("3", &[("branch", "main", "updated")])), Routed::default());
        // A tag of the same name is not the branch.
        assert_eq!(routes().route(&push("1", &[("tag", "main", "created")])), Routed::default());
    }

    #[test]
    fn deleting_a_tracked_branch_flags_its_stack_without_triggering_it() {
        let routed = routes().route(&push("1", &[("branch", "develop", "deleted"), ("branch", "main", "created")]));
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1)]);
        assert_eq!(routed.branch_deleted, vec![(Uuid::from_u128(1), false), (Uuid::from_u128(2), true)]);
    }

    #[test]
    fn a_pull_request_triggers_every_stack_on_its_repository() {
        let mut event = push("1", &[]);
        event.pull_request = Some(PullRequest {
            id: 7,
            action: "opened".into(),
            source_branch: "feature".into(),
            target_branch: "main".into(),
            commit: None,
        });
        let routed = routes().route(&event);
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert!(routed.branch_deleted.is_empty());
    }
}
