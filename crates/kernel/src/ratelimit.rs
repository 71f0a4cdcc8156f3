//! GCRA rate limiting, in-process or in Redis (so several gateways share one budget).
//!
//! The same arithmetic runs in both backends: each key stores a theoretical arrival time (TAT);
//! a request is allowed while `TAT + interval − now ≤ period`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use redis::aio::ConnectionManager;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            period: Duration::from_secs(60),
        }
    }

    pub fn per_hour(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            period: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the budget is whole again.
    pub reset_after: Duration,
    /// Until the next request would pass (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// Whole seconds to wait, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// `X-RateLimit-*` (reset as a Unix time) and `RateLimit-*` (reset in seconds).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let reset_secs = self.reset_after.as_millis().div_ceil(1000) as u64;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pairs: [(&str, u64); 6] = [
            ("x-ratelimit-limit", u64::from(self.limit)),
            ("x-ratelimit-remaining", u64::from(self.remaining)),
            ("x-ratelimit-reset", now + reset_secs),
            ("ratelimit-limit", u64::from(self.limit)),
            ("ratelimit-remaining", u64::from(self.remaining)),
            ("ratelimit-reset", reset_secs),
        ];
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request against `key` and says whether it may proceed.
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision>;
}

pub type SharedRateLimiter = Arc<dyn RateLimiter>;

/// One GCRA step. Times in milliseconds. Returns the new TAT (unchanged when denied).
fn gcra(tat: f64, now: f64, quota: Quota) -> (f64, Decision) {
    let period = quota.period.as_secs_f64() * 1000.0;
    let interval = period / f64::from(quota.limit);
    let tat = tat.max(now);
    let new_tat = tat + interval;
    let diff = new_tat - now;
    if diff > period {
        let decision = Decision {
            allowed: false,
            limit: quota.limit,
            remaining: 0,
            reset_after: Duration::from_millis((tat - now).ceil() as u64),
            retry_after: Duration::from_millis((diff - period).ceil() as u64),
        };
        return (tat, decision);
    }
    let decision = Decision {
        allowed: true,
        limit: quota.limit,
        remaining: ((period - diff) / interval).floor() as u32,
        reset_after: Duration::from_millis(diff.ceil() as u64),
        retry_after: Duration::ZERO,
    };
    (new_tat, decision)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// In-process limiter; idle keys age out.
pub struct MemoryRateLimiter {
    tats: moka::sync::Cache<String, f64>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            tats: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let now = now_ms();
        let mut decision = None;
        self.tats.entry(key.to_owned()).and_compute_with(|entry| {
            let tat = entry.map_or(now, |e| e.into_value());
            let (new_tat, d) = gcra(tat, now, quota);
            decision = Some(d);
            moka::ops::compute::Op::Put(new_tat)
        });
        decision.ok_or_else(|| anyhow::anyhow!("rate limiter produced no decision"))
    }
}

/// The GCRA step of [`gcra`], run atomically in Redis with the server's clock.
const GCRA_LUA: &str = r#"
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local diff = new_tat - now
if diff > period then
  return {0, 0, math.ceil(tat - now), math.ceil(diff - period)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(diff))
return {1, math.floor((period - diff) / interval), math.ceil(diff), 0}
"#;

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    namespace: String,
}

impl RedisRateLimiter {
    pub fn new(conn: ConnectionManager, namespace: &str) -> Self {
        Self {
            conn,
            script: redis::Script::new(GCRA_LUA),
            namespace: namespace.to_owned(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let mut conn = self.conn.clone();
        let period_ms = quota.period.as_millis() as u64;
        let (allowed, remaining, reset_ms, retry_ms): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}:rl:{key}", self.namespace))
            .arg(period_ms)
            .arg(quota.limit)
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.limit,
            remaining: remaining.max(0) as u32,
            reset_after: Duration::from_millis(reset_ms.max(0) as u64),
            retry_after: Duration::from_millis(retry_ms.max(0) as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_denies() {
        let quota = Quota {
            limit: 3,
            period: Duration::from_secs(60),
        };
        let now = 1_000_000.0;
        let mut tat = now;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (next, d) = gcra(tat, now, quota);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = next;
        }
        assert_eq!(remaining, vec![2, 1, 0]);
        let (_, denied) = gcra(tat, now, quota);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Duration::from_secs(20));
        // One interval later, one more request passes.
        let (_, later) = gcra(tat, now + 20_000.0, quota);
        assert!(later.allowed);
    }

    #[tokio::test]
    async fn memory_limiter_counts_per_key() -> anyhow::Result<()> {
        let limiter = MemoryRateLimiter::default();
        let quota = Quota::per_minute(2);
        assert!(limiter.check("a", quota).await?.allowed);
        assert!(limiter.check("a", quota).await?.allowed);
        assert!(!limiter.check("a", quota).await?.allowed);
        assert!(limiter.check("b", quota).await?.allowed);
        Ok(())
    }
}
