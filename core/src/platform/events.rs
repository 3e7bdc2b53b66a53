//! Which events a delivery makes for one stack: the rule of SPEC.md's
//! "Event" and "Stack triggers", as a pure function of the delivery's
//! meaning ([`webhooks::events::Event`](crate::webhooks::events::Event)),
//! the stack's branch and triggers, and the open pull requests Bitgate
//! knows of on the repository. Storing them and serving them are elsewhere;
//! this decides what they are, in one place, for deliveries and polls alike.

use serde::{Deserialize, Serialize};

use crate::{text_enum::text_enum, webhooks::events as delivered};

text_enum! {
    /// What an event asks the platform to do.
    pub enum EventType {
        /// Run the stack's work on a commit.
        RunRequested = "run.requested",
        /// A branch the stack follows is gone.
        BranchDeleted = "branch.deleted",
        /// A pull request into the stack's branch was merged, declined or deleted.
        PullRequestClosed = "pull_request.closed",
    }
}

text_enum! {
    /// Which run is requested.
    pub enum RunKind {
        /// For a push to a branch the stack follows: what it will apply.
        Tracked = "tracked",
        /// For a pull request into the stack's branch: what it would change.
        Proposed = "proposed",
    }
}

/// A stack's triggers, with SPEC's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Triggers {
    /// Proposed runs for pull requests into the branch.
    pub build_pull_requests: bool,
    /// A tracked run for a push to any branch (the branch named in the event).
    pub all_branches: bool,
    /// `branch.deleted` for deleted branches.
    pub prune_branches: bool,
    /// Every push to an open pull request's source also requests a proposed
    /// run, with `resync: true`.
    pub resync_pull_requests: bool,
}

impl Default for Triggers {
    fn default() -> Self {
        Self { build_pull_requests: true, all_branches: false, prune_branches: true, resync_pull_requests: false }
    }
}

/// An open pull request Bitgate knows of on the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPullRequest {
    pub id: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: Option<String>,
    pub url: Option<String>,
}

/// The pull request an event is about, as the event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub id: u64,
    pub source_branch: String,
    pub target_branch: String,
    /// The source's commit, when known.
    pub source_commit: Option<String>,
    pub title: Option<String>,
    /// Its page in Bitbucket.
    pub url: Option<String>,
}

/// One event for one stack, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub event_type: EventType,
    /// `run.requested` only.
    pub kind: Option<RunKind>,
    /// A proposed run requested because its source moved by a push
    /// (`resync_pull_requests`), not by the pull request's own event.
    pub resync: bool,
    /// The branch whose code runs (a pull request's source), or that was deleted.
    pub branch: String,
    pub commit: Option<String>,
    pub pull_request: Option<PullRequestRef>,
}

impl Derived {
    fn run(kind: RunKind, branch: &str, commit: Option<String>, pull_request: Option<PullRequestRef>) -> Self {
        Self {
            event_type: EventType::RunRequested,
            kind: Some(kind),
            resync: false,
            branch: branch.to_owned(),
            commit,
            pull_request,
        }
    }
}

/// What `event` makes for a stack on `stack_branch` with `triggers`, in
/// the order the delivery names things; `open` are the open pull requests
/// on the repository (for `resync_pull_requests`).
pub fn derive(
    event: &delivered::Event,
    stack_branch: &str,
    triggers: Triggers,
    open: &[OpenPullRequest],
) -> Vec<Derived> {
    let mut made = Vec::new();
    if let Some(pr) = &event.pull_request {
        // Pull requests concern the stack whose branch they target.
        if pr.target_branch != stack_branch {
            return made;
        }
        let reference = PullRequestRef {
            id: pr.id,
            source_branch: pr.source_branch.clone(),
            target_branch: pr.target_branch.clone(),
            source_commit: pr.commit.clone(),
            title: pr.title.clone(),
            url: pr.url.clone(),
        };
        match pr.action.as_str() {
            // Opened, or its source moved: what it would change is new. A
            // proposed run needs the commit to run.
            "opened" | "updated" if triggers.build_pull_requests && pr.commit.is_some() => {
                made.push(Derived::run(RunKind::Proposed, &pr.source_branch, pr.commit.clone(), Some(reference)));
            }
            "merged" | "declined" | "deleted" => made.push(Derived {
                event_type: EventType::PullRequestClosed,
                kind: None,
                resync: false,
                branch: pr.source_branch.clone(),
                commit: pr.commit.clone(),
                pull_request: Some(reference),
            }),
            _ => {}
        }
        return made;
    }
    for change in event.refs.iter().filter(|change| change.kind == "branch") {
        let followed = change.name == stack_branch || triggers.all_branches;
        if change.action == "deleted" {
            if followed && triggers.prune_branches {
                made.push(Derived {
                    event_type: EventType::BranchDeleted,
                    kind: None,
                    resync: false,
                    branch: change.name.clone(),
                    commit: None,
                    pull_request: None,
                });
            }
            continue;
        }
        if followed {
            made.push(Derived::run(RunKind::Tracked, &change.name, change.commit.clone(), None));
        }
        if triggers.resync_pull_requests && triggers.build_pull_requests && change.commit.is_some() {
            let moved = open.iter().filter(|pr| pr.source_branch == change.name && pr.target_branch == stack_branch);
            for pr in moved {
                let reference = PullRequestRef {
                    id: pr.id,
                    source_branch: pr.source_branch.clone(),
                    target_branch: pr.target_branch.clone(),
                    source_commit: change.commit.clone(),
                    title: pr.title.clone(),
                    url: pr.url.clone(),
                };
                let mut run = Derived::run(RunKind::Proposed, &change.name, change.commit.clone(), Some(reference));
                run.resync = true;
                made.push(run);
            }
        }
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::events::{PullRequest, RefChange, RepositoryRef};

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn push(changes: &[(&str, &str, &str)]) -> delivered::Event {
        delivered::Event {
            key: "repo:refs_changed".into(),
            repository: RepositoryRef { id: "1".into(), name: "OPS/my-repo".into() },
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

    fn pull_request(action: &str, target: &str) -> delivered::Event {
        let mut event = push(&[]);
        event.pull_request = Some(PullRequest {
            id: 7,
            action: action.into(),
            source_branch: "feature".into(),
            target_branch: target.into(),
            commit: Some(SHA.into()),
            title: Some("Add a feature".into()),
            url: None,
        });
        event
    }

    fn types(made: &[Derived]) -> Vec<(&'static str, Option<&'static str>, &str, bool)> {
        made.iter().map(|d| (d.event_type.as_str(), d.kind.map(RunKind::as_str), d.branch.as_str(), d.resync)).collect()
    }

    #[test]
    fn a_push_to_the_stack_s_branch_requests_a_tracked_run_and_other_branches_nothing() {
        let made = derive(&push(&[("branch", "main", "updated")]), "main", Triggers::default(), &[]);
        assert_eq!(types(&made), [("run.requested", Some("tracked"), "main", false)]);
        assert_eq!(made[0].commit.as_deref(), Some(SHA));
        assert!(derive(&push(&[("branch", "develop", "updated")]), "main", Triggers::default(), &[]).is_empty());
        assert!(derive(&push(&[("tag", "main", "created")]), "main", Triggers::default(), &[]).is_empty(), "a tag");
    }

    #[test]
    fn all_branches_requests_a_tracked_run_for_every_pushed_branch() {
        let all = Triggers { all_branches: true, ..Triggers::default() };
        let made = derive(&push(&[("branch", "develop", "created"), ("branch", "main", "updated")]), "main", all, &[]);
        assert_eq!(
            types(&made),
            [("run.requested", Some("tracked"), "develop", false), ("run.requested", Some("tracked"), "main", false)]
        );
    }

    #[test]
    fn deleted_branches_are_announced_only_while_pruning() {
        let deleted = push(&[("branch", "main", "deleted")]);
        assert_eq!(
            types(&derive(&deleted, "main", Triggers::default(), &[])),
            [("branch.deleted", None, "main", false)]
        );
        let keep = Triggers { prune_branches: false, ..Triggers::default() };
        assert!(derive(&deleted, "main", keep, &[]).is_empty());
        let other = push(&[("branch", "old-feature", "deleted")]);
        assert!(derive(&other, "main", Triggers::default(), &[]).is_empty(), "not a branch the stack follows");
        let all = Triggers { all_branches: true, ..Triggers::default() };
        assert_eq!(types(&derive(&other, "main", all, &[])), [("branch.deleted", None, "old-feature", false)]);
    }

    #[test]
    fn pull_requests_into_the_branch_request_proposed_runs_while_building_them() {
        for action in ["opened", "updated"] {
            let made = derive(&pull_request(action, "main"), "main", Triggers::default(), &[]);
            assert_eq!(types(&made), [("run.requested", Some("proposed"), "feature", false)], "{action}");
            assert_eq!(made[0].pull_request.as_ref().map(|pr| pr.id), Some(7));
        }
        for action in ["modified", "approved", "unapproved", "commented"] {
            assert!(derive(&pull_request(action, "main"), "main", Triggers::default(), &[]).is_empty(), "{action}");
        }
        assert!(derive(&pull_request("opened", "develop"), "main", Triggers::default(), &[]).is_empty());
        let off = Triggers { build_pull_requests: false, ..Triggers::default() };
        assert!(derive(&pull_request("opened", "main"), "main", off, &[]).is_empty());
        let mut no_commit = pull_request("opened", "main");
        no_commit.pull_request.as_mut().unwrap().commit = None;
        assert!(derive(&no_commit, "main", Triggers::default(), &[]).is_empty(), "nothing to run without a commit");
    }

    #[test]
    fn closed_pull_requests_are_announced_whatever_the_triggers() {
        let off = Triggers { build_pull_requests: false, ..Triggers::default() };
        for action in ["merged", "declined", "deleted"] {
            let made = derive(&pull_request(action, "main"), "main", off, &[]);
            assert_eq!(types(&made), [("pull_request.closed", None, "feature", false)], "{action}");
        }
    }

    #[test]
    fn resync_asks_again_for_open_pull_requests_whose_source_was_pushed() {
        let open = [
            OpenPullRequest {
                id: 7,
                source_branch: "feature".into(),
                target_branch: "main".into(),
                title: Some("Add a feature".into()),
                url: None,
            },
            OpenPullRequest {
                id: 8,
                source_branch: "feature".into(),
                target_branch: "develop".into(),
                title: None,
                url: None,
            },
        ];
        let pushed = push(&[("branch", "feature", "updated")]);
        assert!(derive(&pushed, "main", Triggers::default(), &open).is_empty(), "off by default");
        let resync = Triggers { resync_pull_requests: true, ..Triggers::default() };
        let made = derive(&pushed, "main", resync, &open);
        assert_eq!(types(&made), [("run.requested", Some("proposed"), "feature", true)]);
        assert_eq!(made[0].pull_request.as_ref().map(|pr| (pr.id, pr.source_commit.as_deref())), Some((7, Some(SHA))));
        let no_pull_requests = Triggers { build_pull_requests: false, ..resync };
        assert!(derive(&pushed, "main", no_pull_requests, &open).is_empty());
    }
}
