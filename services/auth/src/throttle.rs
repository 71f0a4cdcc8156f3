//! The auth-specific throttles of auth.md §6, on the shared limiter (Redis when configured).

use kernel::ratelimit::Quota;
use kernel::{ApiError, Platform};
use std::net::IpAddr;

async fn hit(platform: &Platform, key: &str, quota: Quota) -> Result<(), ApiError> {
    if !platform.config().rate_limit.enabled {
        return Ok(());
    }
    let decision = platform
        .limiter()
        .check(key, quota)
        .await
        .map_err(|e| ApiError::internal(format!("rate limiter: {e}")))?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::throttled(decision.retry_after_secs()))
    }
}

/// Login and tokenless password change: per (ip, username) and per ip.
pub async fn login(platform: &Platform, ip: IpAddr, username: &str) -> Result<(), ApiError> {
    let limits = &platform.config().rate_limit;
    hit(
        platform,
        &format!("login:ip:{ip}"),
        Quota::per_minute(limits.login_ip_per_minute),
    )
    .await?;
    let user = username.trim().to_lowercase();
    hit(
        platform,
        &format!("login:{ip}:{user}"),
        Quota::per_minute(limits.login_per_minute),
    )
    .await
}

pub async fn register(platform: &Platform, ip: IpAddr) -> Result<(), ApiError> {
    let per_hour = platform.config().rate_limit.register_per_hour;
    hit(
        platform,
        &format!("register:{ip}"),
        Quota::per_hour(per_hour),
    )
    .await
}
