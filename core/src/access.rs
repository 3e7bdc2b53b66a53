//! Who may do what: the permission table of SPEC.md, in one place. A role on
//! a space holds on its descendants; an admin of `root` is an account admin.
//! Every operation asks here (refusals are recorded by `Principal::refused`).

use std::collections::HashMap;

use sqlx::PgExecutor;

use crate::{
    spaces::SpaceId,
    users::{Role, UserId},
};

/// A user's effective roles, loaded once per request.
#[derive(Debug, Clone, Default)]
pub struct Access {
    roles: HashMap<SpaceId, Role>,
    root: Option<SpaceId>,
    /// The installation's operator (the CLI): every write is allowed. Lists
    /// are not made from this (`visible_spaces` names only roles held).
    operator: bool,
}

/// What a caller may not do, and whether they may know the thing exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// They cannot see it: answer as if it did not exist (404).
    Hidden,
    /// They can see it but not do this (403).
    Forbidden,
}

impl Access {
    pub async fn load(db: impl PgExecutor<'_>, user_id: UserId) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query!(
            r#"WITH RECURSIVE granted AS (
                   SELECT m.space_id AS id, m.role FROM memberships m WHERE m.user_id = $1
                   UNION ALL
                   SELECT s.id, g.role FROM spaces s JOIN granted g ON s.parent_id = g.id
               )
               SELECT g.id AS "id!", g.role AS "role!", s.parent_id IS NULL AS "is_root!"
               FROM granted g JOIN spaces s ON s.id = g.id"#,
            user_id
        )
        .fetch_all(db)
        .await?;
        let mut access = Access::default();
        for row in rows {
            let Ok(role) = Role::parse(&row.role) else { continue };
            let held = access.roles.entry(row.id).or_insert(role);
            *held = (*held).max(role);
            if row.is_root {
                access.root = Some(row.id);
            }
        }
        Ok(access)
    }

    /// The operator's: the CLI acts with authority over everything.
    pub fn operator() -> Self {
        Access { operator: true, ..Access::default() }
    }

    /// The role held on a space, directly or through an ancestor.
    pub fn role_on(&self, space: SpaceId) -> Option<Role> {
        self.roles.get(&space).copied()
    }

    pub fn is_account_admin(&self) -> bool {
        self.operator || self.root.and_then(|root| self.role_on(root)) == Some(Role::Admin)
    }

    /// The spaces the user can see (any role).
    pub fn visible_spaces(&self) -> Vec<SpaceId> {
        self.roles.keys().copied().collect()
    }

    fn require(&self, space: SpaceId, needed: Role) -> Result<(), Denied> {
        if self.operator {
            return Ok(());
        }
        match self.role_on(space) {
            None => Err(Denied::Hidden),
            Some(role) if role >= needed => Ok(()),
            Some(_) => Err(Denied::Forbidden),
        }
    }

    /// See a space, its stacks and its integrations in lists.
    pub fn can_see(&self, space: SpaceId) -> Result<(), Denied> {
        self.require(space, Role::Read)
    }

    /// Create, edit, delete stacks; list repositories to create one.
    pub fn can_write(&self, space: SpaceId) -> Result<(), Denied> {
        self.require(space, Role::Write)
    }

    /// Administer a space: create child spaces, manage members, its
    /// integrations and webhook secrets, read its audit log.
    pub fn can_administer(&self, space: SpaceId) -> Result<(), Denied> {
        self.require(space, Role::Admin)
    }

    /// The spaces this user administers (directly or through a space above).
    pub fn administered_spaces(&self) -> Vec<SpaceId> {
        self.roles.iter().filter(|(_, role)| **role == Role::Admin).map(|(space, _)| *space).collect()
    }

    /// The spaces where this user may create and change stacks.
    pub fn writable_spaces(&self) -> Vec<SpaceId> {
        self.roles.iter().filter(|(_, role)| **role >= Role::Write).map(|(space, _)| *space).collect()
    }

    /// Open an integration's details, test it, see its deliveries, change
    /// or delete it, reveal or rotate its webhook secret: admins of its
    /// space; for a default integration (`None`), account admins. Everyone
    /// sees defaults in lists, so refusing one is 403, not 404.
    pub fn can_administer_integration(&self, space: Option<SpaceId>) -> Result<(), Denied> {
        match space {
            Some(space) => self.can_administer(space),
            None => self.can_administer_account(),
        }
    }

    /// Manage users, default integrations, the whole audit log.
    pub fn can_administer_account(&self) -> Result<(), Denied> {
        if self.is_account_admin() {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn access(roles: &[(SpaceId, Role)], root: SpaceId) -> Access {
        Access { roles: roles.iter().copied().collect(), root: Some(root), operator: false }
    }

    #[test]
    fn roles_decide_hidden_forbidden_or_allowed() {
        let (root, team, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let reader = access(&[(team, Role::Read)], root);
        assert_eq!(reader.can_see(team), Ok(()));
        assert_eq!(reader.can_write(team), Err(Denied::Forbidden));
        assert_eq!(reader.can_administer(team), Err(Denied::Forbidden));
        assert_eq!(reader.can_see(other), Err(Denied::Hidden));
        assert_eq!(reader.can_administer_account(), Err(Denied::Forbidden));

        let writer = access(&[(team, Role::Write)], root);
        assert_eq!(writer.can_write(team), Ok(()));
        assert_eq!(writer.can_administer(team), Err(Denied::Forbidden));

        let admin = access(&[(team, Role::Admin)], root);
        assert_eq!(admin.can_administer(team), Ok(()));
        assert!(!admin.is_account_admin());

        assert_eq!(admin.can_administer_integration(Some(team)), Ok(()));
        assert_eq!(admin.administered_spaces(), [team]);
        assert!(reader.administered_spaces().is_empty());
        assert_eq!((writer.writable_spaces(), admin.writable_spaces()), (vec![team], vec![team]));
        assert!(reader.writable_spaces().is_empty());
        assert_eq!(admin.can_administer_integration(None), Err(Denied::Forbidden), "defaults are for account admins");
        assert_eq!(reader.can_administer_integration(Some(team)), Err(Denied::Forbidden));
        assert_eq!(reader.can_administer_integration(Some(other)), Err(Denied::Hidden));

        let account_admin = access(&[(root, Role::Admin)], root);
        assert!(account_admin.is_account_admin());
        assert_eq!(account_admin.can_administer_account(), Ok(()));

        let operator = Access::operator();
        assert_eq!(operator.can_administer_integration(Some(other)), Ok(()));
        assert_eq!(operator.can_administer_integration(None), Ok(()));
        assert!(operator.visible_spaces().is_empty(), "lists are not made from the operator's access");
    }
}
