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

/// Login and tokenless password change, per ip (before the account is looked up).
pub async fn login_ip(platform: &Platform, ip: IpAddr) -> Result<(), ApiError> {
    let per_minute = platform.config().rate_limit.login_ip_per_minute;
    hit(
        platform,
        &format!("login:ip:{ip}"),
        Quota::per_minute(per_minute),
    )
    .await
}

/// Login and tokenless password change, per (ip, account): the account is its id when the name
/// given (username or email, any case) is one, so both spellings share one count.
pub async fn login_account(
    platform: &Platform,
    ip: IpAddr,
    account: Option<i64>,
    given: &str,
) -> Result<(), ApiError> {
    let account = match account {
        Some(id) => format!("#{id}"),
        None => given.trim().to_lowercase(),
    };
    hit(
        platform,
        &format!("login:{ip}:{account}"),
        Quota::per_minute(platform.config().rate_limit.login_per_minute),
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
