//! Matching an accepted delivery to the stacks it concerns and deriving
//! the events it makes for each ([`platform::events::derive`], the one
//! place the rule lives). A push that deletes a tracked branch flags its
//! stacks (and one that creates it again clears the flag).
//!
//! Matching is a lookup in memory, in the stacks each process keeps beside
//! an endpoint's secrets (refreshed by the same notifications), and its
//! result is written by the statement that stores the delivery: nothing
//! acknowledged is ever left unrouted, and no delivery is written twice.

use std::collections::HashMap;

use uuid::Uuid;

use super::events::Event;
use crate::platform::events::{derive, Derived, OpenPullRequest, Triggers};

/// A stack as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRoute {
    pub id: Uuid,
    pub branch: String,
    pub triggers: Triggers,
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

    fn stacks_of(&self, event: &Event) -> &[StackRoute] {
        self.0.get(&event.repository.id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The stacks whose open pull requests routing `event` needs: for a
    /// push, those that request their runs again (`resync_pull_requests`).
    pub fn resyncing(&self, event: &Event) -> Vec<Uuid> {
        if event.pull_request.is_some() || event.refs.is_empty() {
            return Vec::new();
        }
        let stacks = self.stacks_of(event).iter();
        stacks.filter(|s| s.triggers.resync_pull_requests && s.triggers.build_pull_requests).map(|s| s.id).collect()
    }

    /// What `event` does to the stacks on its repository; `open` are the
    /// open pull requests of the stacks [`Self::resyncing`] names.
    pub fn route(&self, event: &Event, open: &[OpenPullRequest]) -> Routed {
        let mut routed = Routed::default();
        for stack in self.stacks_of(event) {
            if event.pull_request.is_none() {
                if let Some(change) = event.refs.iter().find(|r| r.kind == "branch" && r.name == stack.branch) {
                    routed.branch_deleted.push((stack.id, change.action == "deleted"));
                }
            }
            let made = derive(event, &stack.branch, stack.triggers, open);
            if !made.is_empty() {
                routed.stacks.push(stack.id);
                routed.events.extend(made.into_iter().map(|derived| (stack.id, derived)));
            }
        }
        routed
    }
}

/// What one delivery does to stacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// The stacks it makes events for (it becomes their last triggering delivery).
    pub stacks: Vec<Uuid>,
    /// Stacks whose branch it deleted (`true`) or pushed to again (`false`).
    pub branch_deleted: Vec<(Uuid, bool)>,
    /// The events it makes, per stack, in order.
    pub events: Vec<(Uuid, Derived)>,
}

impl Routed {
    /// Whether storing it concerns stack rows (events come with their stack).
    pub fn concerns_stacks(&self) -> bool {
        !self.stacks.is_empty() || !self.branch_deleted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::events::{EventType, RunKind};
    use crate::webhooks::events::{PullRequest, RefChange, RepositoryRef};

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn stack(n: u128, branch: &str, triggers: Triggers) -> StackRoute {
        StackRoute { id: Uuid::from_u128(n), branch: branch.into(), triggers }
    }

    fn routes() -> Routes {
        let resync = Triggers { resync_pull_requests: true, ..Triggers::default() };
        Routes::from_rows([
            ("1".to_owned(), stack(1, "main", Triggers::default())),
            ("1".to_owned(), stack(2, "develop", Triggers::default())),
            ("2".to_owned(), stack(3, "main", resync)),
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
                    commit: (*action != "deleted").then(|| SHA.to_owned()),
                })
                .collect(),
            pull_request: None,
        }
    }

    fn made(routed: &Routed) -> Vec<(u128, &'static str)> {
        routed.events.iter().map(|(stack, d)| (stack.as_u128(), d.event_type.as_str())).collect()
    }

    #[test]
    fn a_push_makes_events_for_the_stacks_on_its_repository_and_branch_only() {
        let routed = routes().route(&push("1", &[("branch", "main", "updated")]), &[]);
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1)]);
        assert_eq!(routed.branch_deleted, vec![(Uuid::from_u128(1), false)]);
        assert_eq!(made(&routed), [(1, "run.requested")]);
        assert_eq!(routed.events[0].1.kind, Some(RunKind::Tracked));
        assert_eq!(routes().route(&push("3", &[("branch", "main", "updated")]), &[]), Routed::default());
        // A tag of the same name is not the branch.
        assert_eq!(routes().route(&push("1", &[("tag", "main", "created")]), &[]), Routed::default());
    }

    #[test]
    fn deleting_a_tracked_branch_flags_its_stack_and_announces_it() {
        let routed =
            routes().route(&push("1", &[("branch", "develop", "deleted"), ("branch", "main", "created")]), &[]);
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(routed.branch_deleted, vec![(Uuid::from_u128(1), false), (Uuid::from_u128(2), true)]);
        assert_eq!(made(&routed), [(1, "run.requested"), (2, "branch.deleted")]);
    }

    #[test]
    fn a_pull_request_concerns_the_stacks_whose_branch_it_targets() {
        let mut event = push("1", &[]);
        event.pull_request = Some(PullRequest {
            id: 7,
            action: "opened".into(),
            source_branch: "feature".into(),
            target_branch: "main".into(),
            commit: Some(SHA.into()),
            title: None,
            url: None,
        });
        let routed = routes().route(&event, &[]);
        assert_eq!(routed.stacks, vec![Uuid::from_u128(1)]);
        assert_eq!(made(&routed), [(1, "run.requested")]);
        assert_eq!(routed.events[0].1.kind, Some(RunKind::Proposed));
        assert!(routed.branch_deleted.is_empty());
    }

    #[test]
    fn open_pull_requests_are_needed_only_for_pushes_where_a_stack_resyncs() {
        let pushed = push("2", &[("branch", "feature", "updated")]);
        assert_eq!(routes().resyncing(&pushed), [Uuid::from_u128(3)]);
        assert!(routes().resyncing(&push("1", &[("branch", "feature", "updated")])).is_empty());
        let open = [OpenPullRequest {
            id: 9,
            source_branch: "feature".into(),
            target_branch: "main".into(),
            title: None,
            url: None,
        }];
        let routed = routes().route(&pushed, &open);
        assert_eq!(made(&routed), [(3, "run.requested")]);
        assert!(routed.events[0].1.resync);
        assert_eq!(routed.events[0].1.event_type, EventType::RunRequested);
    }
}
