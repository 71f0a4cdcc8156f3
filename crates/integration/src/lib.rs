//! What services know about each other: the integration events they publish (names, versions,
//! payloads) and the typed clients one service uses to call another. Services depend on this
//! crate, never on each other.

pub mod billing;
pub mod files;
pub mod inventory;
pub mod order;
pub mod product;
pub mod project;
pub mod users;
