//! The project service's files (attachments, contract project.md §6) as other services use them:
//! a product image is a public attachment of the project, uploaded with every check the project
//! service makes (type sniffed from content, size limits, quota).

use std::sync::Arc;

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::ApiError;

/// A stored file another service may link to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub attachment_id: i64,
    /// Where clients read it (public: no signature, no expiry).
    pub url: String,
    pub mime_type: String,
}

/// A file received by another service, to be stored as a public attachment of a record.
pub struct FileUpload {
    /// `product`, `repair`… (the attachment's `entity_type`).
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    /// Only files of this category are accepted (`image`).
    pub category: &'static str,
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: bytes::Bytes,
}

#[async_trait]
pub trait ProjectFiles: Send + Sync {
    /// Stores `upload` for `scope`'s project (`username` is the uploader's, `origin` the public
    /// origin links are built on). 4xx in the contract's shape for a refused file.
    async fn upload(
        &self,
        scope: &ProjectScope,
        username: &str,
        upload: FileUpload,
        origin: &str,
    ) -> Result<StoredFile, ApiError>;

    /// A completed, public attachment of `category` in the project, or `None`.
    async fn find(
        &self,
        project_id: i64,
        attachment_id: i64,
        category: &str,
        origin: &str,
    ) -> Result<Option<StoredFile>, ApiError>;

    /// Deletes an attachment stored by [`ProjectFiles::upload`] when the record it was for could
    /// not be written.
    async fn discard(&self, scope: &ProjectScope, attachment_id: i64) -> Result<(), ApiError>;
}

/// How the files are shared through `Platform::provide` / `Platform::lookup`.
pub type SharedProjectFiles = Arc<dyn ProjectFiles>;
