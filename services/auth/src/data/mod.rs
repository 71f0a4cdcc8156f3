//! SQL of the auth service, one module per aggregate.

pub mod geo;
pub mod memberships;
pub mod otp;
pub mod profiles;
pub mod sessions;
pub mod users;
