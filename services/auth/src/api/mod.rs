//! HTTP adapters of the auth service.

pub mod account;
pub mod geo;
pub mod media;
pub mod paging;
pub mod profile;
pub mod tokens;
pub mod user;
