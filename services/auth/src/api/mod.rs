//! HTTP adapters of the auth service.

pub mod account;
pub mod tokens;
pub mod user;
