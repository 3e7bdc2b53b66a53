//! Branches and the commits they point to, as much of a Git repository as
//! the simulator's pages need: a person pushes a commit (a message on a
//! branch) and Bitbucket tells the webhooks what moved. No trees, no
//! parents: a commit is its id and its message, which is what Bitgate's
//! events and the demo platform read.

use sha2::{Digest, Sha256};

use super::Instance;
use crate::sender::NO_COMMIT;

/// A branch of a repository and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub repository_id: u64,
    /// Without `refs/heads/`, such as `feature/thing`.
    pub name: String,
    /// The commit id: 40 lowercase hex digits.
    pub head: String,
}

/// A commit of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub repository_id: u64,
    /// 40 lowercase hex digits.
    pub id: String,
    pub message: String,
}

/// What a push did to one branch, in the words of a `repo:refs_changed` change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub branch: String,
    /// The branch's head before ([`NO_COMMIT`] for a new branch).
    pub from_hash: String,
    pub to_hash: String,
    /// `ADD` for a new branch, `UPDATE` otherwise.
    pub change: &'static str,
}

/// Why a branch name is refused (Git's rules for a ref name, in short), if it is.
pub fn branch_name_problem(name: &str) -> Option<&'static str> {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c);
    if name.is_empty() {
        Some("Enter a branch name.")
    } else if name.chars().any(forbidden)
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.starts_with(['/', '-', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
    {
        Some("A branch name has no spaces and none of ~ ^ : ? * [ \\, no `..` or `//`, and does not begin or end with `/` or `.`.")
    } else {
        None
    }
}

impl Instance {
    /// The sample's branches and commits: those of OPS/my-repo that the
    /// sender's deliveries and the sample pull requests name.
    pub(super) fn sample_history() -> (Vec<Branch>, Vec<Commit>) {
        let commit = |id: &str, message: &str| Commit { repository_id: 1, id: id.into(), message: message.into() };
        let branch = |name: &str, head: &str| Branch { repository_id: 1, name: name.into(), head: head.into() };
        let commits = vec![
            // main's head before the sender's push (`datacenter_push`'s fromHash).
            commit("5c64a07cd6c0f21b753bf261ef059c7e7633c50a", "Start the infrastructure"),
            commit("823b2230a56056231c9425d63758fa87078a66b4", "Describe the stacks in the README"),
            commit("c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00", "Add the feature"),
            commit("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "Add the thing"),
        ];
        let branches = vec![
            branch("main", "823b2230a56056231c9425d63758fa87078a66b4"),
            branch("feature", "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"),
            branch("feature/thing", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
        ];
        (branches, commits)
    }

    /// The branch `name` of a repository.
    pub fn branch(&self, repository_id: u64, name: &str) -> Option<&Branch> {
        self.branches.iter().find(|b| b.repository_id == repository_id && b.name == name)
    }

    /// The commit `id` of a repository (any case).
    pub fn commit(&self, repository_id: u64, id: &str) -> Option<&Commit> {
        self.commits.iter().find(|c| c.repository_id == repository_id && c.id.eq_ignore_ascii_case(id))
    }

    /// A push of one commit with `message` onto `branch`, which is created
    /// when new; the branch must have a valid name ([`branch_name_problem`]).
    pub fn push_commit(&mut self, repository_id: u64, branch: &str, message: &str) -> Pushed {
        let before = self.branch(repository_id, branch).map(|b| b.head.clone());
        let id = self.new_commit_id(repository_id, branch, message);
        self.commits.push(Commit { repository_id, id: id.clone(), message: message.to_owned() });
        match self.branches.iter_mut().find(|b| b.repository_id == repository_id && b.name == branch) {
            Some(existing) => existing.head = id.clone(),
            None => self.branches.push(Branch { repository_id, name: branch.to_owned(), head: id.clone() }),
        }
        Pushed {
            branch: branch.to_owned(),
            change: if before.is_some() { "UPDATE" } else { "ADD" },
            from_hash: before.unwrap_or_else(|| NO_COMMIT.to_owned()),
            to_hash: id,
        }
    }

    /// A new commit id: 40 hex digits of a SHA-256 over what the commit is
    /// and a counter and the time, so that the same message twice makes two
    /// commits, as in Git (whose ids hash the parent and the time too).
    fn new_commit_id(&self, repository_id: u64, branch: &str, message: &str) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut attempt = self.commits.len();
        loop {
            let digest = Sha256::digest(format!("{repository_id}\n{branch}\n{message}\n{attempt}\n{nanos}"));
            let id: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
            if !self.commits.iter().any(|c| c.id == id) {
                return id;
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_adds_a_commit_and_creates_or_moves_its_branch() {
        let mut instance = Instance::sample();
        let moved = instance.push_commit(1, "main", "Works");
        assert_eq!((moved.change, moved.from_hash.as_str()), ("UPDATE", "823b2230a56056231c9425d63758fa87078a66b4"));
        assert!(moved.to_hash.len() == 40 && moved.to_hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_eq!(instance.branch(1, "main").map(|b| b.head.as_str()), Some(moved.to_hash.as_str()));
        assert_eq!(instance.commit(1, &moved.to_hash.to_uppercase()).map(|c| c.message.as_str()), Some("Works"));

        let again = instance.push_commit(1, "main", "Works");
        assert_ne!(again.to_hash, moved.to_hash, "the same message twice is two commits");
        assert_eq!(again.from_hash, moved.to_hash);

        let created = instance.push_commit(1, "feature/new", "Start it");
        assert_eq!((created.change, created.from_hash.as_str()), ("ADD", NO_COMMIT));
        assert!(instance.branch(1, "feature/new").is_some());
        assert!(instance.branch(2, "feature/new").is_none(), "another repository's branches are its own");
    }

    #[test]
    fn branch_names_follow_gits_rules() {
        for good in ["main", "feature/demo", "release-1.2", "fix_it"] {
            assert_eq!(branch_name_problem(good), None, "{good}");
        }
        for bad in ["", "two words", "a..b", "/lead", "trail/", "-dash", "x.lock", "what?", "a//b", "tab\tbed"] {
            assert!(branch_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
