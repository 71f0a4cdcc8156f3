//! Key/value cache with per-entry TTL: in-process by default, Redis when configured so that
//! several processes share it (revocations, throttles, cached reads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>>;
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()>;
    async fn delete(&self, key: &str) -> anyhow::Result<()>;

    /// Several keys in one round trip where the backend allows it.
    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
}

pub type SharedCache = Arc<dyn Cache>;

/// In-process cache, bounded in bytes: each entry weighs its key and value, the least useful
/// go first when the budget is reached, and each one expires at its own TTL (moka's per-entry
/// expiry), so a key no one asks for again (a cached page of an outdated version) is gone when
/// its TTL ends instead of waiting for the budget.
pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
}

#[derive(Clone)]
struct Entry {
    value: Arc<str>,
    ttl: Duration,
}

struct PerEntry;

impl moka::Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// What an entry costs besides its text (the map's node, the deadline, the `Arc`).
const ENTRY_OVERHEAD: usize = 96;

impl MemoryCache {
    /// A cache holding at most `budget_bytes` of keys and values.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|key: &String, entry: &Entry| {
                    u32::try_from(key.len() + entry.value.len() + ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// Bytes held now (keys, values and overhead), after pending evictions ran.
    pub async fn weight(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.entries.get(key).await.map(|e| e.value.to_string()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        let entry = Entry {
            value: Arc::from(value),
            ttl,
        };
        self.entries.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.entries.invalidate(key).await;
        Ok(())
    }
}

pub struct RedisCache {
    conn: ConnectionManager,
    namespace: String,
}

impl RedisCache {
    pub fn new(conn: ConnectionManager, namespace: &str) -> Self {
        Self {
            conn,
            namespace: namespace.to_owned(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.key(key)).await?)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let secs = ttl.as_secs().max(1);
        let _: () = conn.set_ex(self.key(key), value, secs).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key(key)).await?;
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<String>>> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        Ok(redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?)
    }
}

/// Connects to Redis, failing fast when it is unreachable.
pub async fn connect_redis(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis"))??;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_entries_expire_and_stay_within_the_budget() -> anyhow::Result<()> {
        let cache = MemoryCache::new(100_000);
        // A thousand 1 KiB values in a 100 KB budget: the weight never passes it.
        let value = "v".repeat(1024);
        for n in 0..1000 {
            cache
                .set(&format!("k{n}"), &value, Duration::from_secs(600))
                .await?;
        }
        let weight = cache.weight().await;
        assert!(weight <= 100_000, "{weight}");
        assert!(weight >= 50_000, "{weight}");
        // Entries no one reads again leave at their own TTL.
        let cache = MemoryCache::new(1 << 20);
        for n in 0..100 {
            cache
                .set(&format!("old{n}"), &value, Duration::from_millis(30))
                .await?;
        }
        assert!(cache.weight().await > 100 * 1024);
        // (moka's timer wheel turns about once a second)
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(cache.weight().await, 0);
        let cache = MemoryCache::new(100_000);
        cache.set("a", "1", Duration::from_millis(30)).await?;
        assert_eq!(cache.get("a").await?.as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get("a").await?, None);
        Ok(())
    }
}
