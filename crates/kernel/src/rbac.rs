//! Project roles and the role → permission-codename table (contract auth.md §5).
//!
//! Codenames are `{service}.{action}_{model}`. Defaults: owner everything; admin everything but
//! the owner-only codenames; editor `view_`/`add_`/`change_` plus the extra grants a service
//! declares; viewer `view_` only. Superusers pass every check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// Accepts the documented spellings (`staff`, `project_owner`, `Admins`…), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" | "project_owner" => Ok(Role::Owner),
            "admin" | "admins" => Ok(Role::Admin),
            "editor" | "editors" | "staff" => Ok(Role::Editor),
            "viewer" | "viewers" => Ok(Role::Viewer),
            other => Err(format!("\"{other}\" is not a valid role.")),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Codenames only an owner holds by default.
const OWNER_ONLY: &[&str] = &["project.delete_project", "project.transfer_project"];

/// Per-service extra grants for editors (workflow verbs, the deletes a contract allows).
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub editor_extra: &'static [&'static str],
    /// When set, an editor's only non-view codenames (a service whose editors may write
    /// little, like the project service: attachments only).
    pub editor_writes: Option<&'static [&'static str]>,
}

fn action_of(codename: &str) -> &str {
    codename
        .split_once('.')
        .map_or(codename, |(_, rest)| rest)
        .split('_')
        .next()
        .unwrap_or("")
}

/// Whether `role` holds `codename` by default.
pub fn role_allows(role: Role, codename: &str, grants: &Grants) -> bool {
    match role {
        Role::Owner => true,
        Role::Admin => !OWNER_ONLY.contains(&codename),
        Role::Editor => match grants.editor_writes {
            Some(writes) => action_of(codename) == "view" || writes.contains(&codename),
            None => {
                matches!(action_of(codename), "view" | "add" | "change")
                    || grants.editor_extra.contains(&codename)
            }
        },
        Role::Viewer => action_of(codename) == "view",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grants_follow_the_contract() {
        let none = Grants::default();
        assert!(role_allows(Role::Owner, "project.delete_project", &none));
        assert!(!role_allows(Role::Admin, "project.delete_project", &none));
        assert!(role_allows(Role::Admin, "product.delete_product", &none));
        assert!(role_allows(Role::Editor, "product.change_product", &none));
        assert!(!role_allows(Role::Editor, "product.delete_product", &none));
        assert!(role_allows(Role::Viewer, "product.view_product", &none));
        assert!(!role_allows(Role::Viewer, "product.add_product", &none));
        let repair = Grants {
            editor_extra: &["repair.transition_repair"],
            editor_writes: None,
        };
        let project = Grants {
            editor_extra: &[],
            editor_writes: Some(&["project.add_attachment"]),
        };
        assert!(role_allows(
            Role::Editor,
            "project.add_attachment",
            &project
        ));
        assert!(role_allows(Role::Editor, "project.view_member", &project));
        assert!(!role_allows(
            Role::Editor,
            "project.change_project",
            &project
        ));
        assert!(role_allows(
            Role::Editor,
            "repair.transition_repair",
            &repair
        ));
    }

    #[test]
    fn documented_spellings_parse() {
        assert_eq!("staff".parse::<Role>(), Ok(Role::Editor));
        assert_eq!("project_owner".parse::<Role>(), Ok(Role::Owner));
        assert_eq!("Admins".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
