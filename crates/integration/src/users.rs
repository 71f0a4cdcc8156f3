//! The auth service's user lookups, as other services call them.

use std::sync::Arc;

use async_trait::async_trait;
use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

/// A user changed their public identity (auth.md §9 `{user_id, changed}`, plus the new values so
/// that consumers keeping snapshots need no call back).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserUpdated {
    pub user_id: i64,
    pub changed: Vec<String>,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl IntegrationEvent for UserUpdated {
    const TYPE: &'static str = "user.updated";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub email_verified: bool,
}

/// Reads users (implemented in-process by auth; a remote client can implement it too).
#[async_trait]
pub trait UserDirectory: Send + Sync {
    async fn by_id(&self, id: i64) -> anyhow::Result<Option<UserSummary>>;
    /// By exact username, or email case-insensitively.
    async fn by_login(&self, login: &str) -> anyhow::Result<Option<UserSummary>>;
}

/// How a directory is shared through `Platform::provide` / `Platform::lookup`.
pub type SharedUserDirectory = Arc<dyn UserDirectory>;
