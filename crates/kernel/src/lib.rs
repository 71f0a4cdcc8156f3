//! The platform kernel: everything services share and nothing service-specific.

pub mod amqp;
pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod extract;
pub mod graphql;
pub mod graphql_guard;
pub mod idempotency;
pub mod jwt;
pub mod lang;
pub mod list;
pub mod mailer;
pub mod observe;
pub mod openapi;
pub mod platform;
pub mod ratelimit;
pub mod rbac;
pub mod resource;
pub mod resource_graphql;
mod resource_row;
pub mod resource_written;
pub mod routing;
pub mod service;
pub mod storage;
pub mod text;

pub use error::{ApiError, ApiResult, FieldErrors};
pub use platform::Platform;
