//! Events published by the project service (contract project.md §9).

use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectCreated {
    pub project_id: i64,
    pub owner_id: i64,
    pub username: String,
    pub title: String,
}

impl IntegrationEvent for ProjectCreated {
    const TYPE: &'static str = "project.created";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectUpdated {
    pub project_id: i64,
    pub username: String,
    pub title: String,
    /// The fields the change touched.
    pub changed: Vec<String>,
}

impl IntegrationEvent for ProjectUpdated {
    const TYPE: &'static str = "project.updated";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectDeleted {
    pub project_id: i64,
    pub username: String,
}

impl IntegrationEvent for ProjectDeleted {
    const TYPE: &'static str = "project.deleted";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberAdded {
    pub project_id: i64,
    pub user_id: i64,
    pub role: String,
}

impl IntegrationEvent for MemberAdded {
    const TYPE: &'static str = "project.member_added";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberUpdated {
    pub project_id: i64,
    pub user_id: i64,
    pub role: String,
    pub previous_role: String,
}

impl IntegrationEvent for MemberUpdated {
    const TYPE: &'static str = "project.member_updated";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberRemoved {
    pub project_id: i64,
    pub user_id: i64,
    pub role: String,
}

impl IntegrationEvent for MemberRemoved {
    const TYPE: &'static str = "project.member_removed";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SettingsChanged {
    pub project_id: i64,
    pub key: String,
    pub value: serde_json::Value,
    pub previous_value: Option<serde_json::Value>,
}

impl IntegrationEvent for SettingsChanged {
    const TYPE: &'static str = "project.settings_changed";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeaturesChanged {
    pub project_id: i64,
    pub features: Vec<String>,
}

impl IntegrationEvent for FeaturesChanged {
    const TYPE: &'static str = "project.features_changed";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InvitationCreated {
    pub project_id: i64,
    pub invitation_id: i64,
    pub email: String,
    pub role: String,
}

impl IntegrationEvent for InvitationCreated {
    const TYPE: &'static str = "project.invitation_created";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttachmentUploaded {
    pub id: i64,
    pub project_id: i64,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub mime_type: String,
    pub size: i64,
}

impl IntegrationEvent for AttachmentUploaded {
    const TYPE: &'static str = "attachment.uploaded";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AttachmentDeleted {
    pub id: i64,
    pub project_id: i64,
    pub entity_type: String,
    pub entity_id: Option<String>,
    /// The object to remove from storage (consumed by the project service's own cleaner).
    pub storage_key: String,
}

impl IntegrationEvent for AttachmentDeleted {
    const TYPE: &'static str = "attachment.deleted";
}
