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

/// In-process cache; entries carry their own deadline.
pub struct MemoryCache {
    entries: moka::future::Cache<String, (String, Instant)>,
}

impl MemoryCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(8 * 24 * 3600))
                .build(),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        match self.entries.get(key).await {
            Some((value, deadline)) if deadline > Instant::now() => Ok(Some(value)),
            Some(_) => {
                self.entries.invalidate(key).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<()> {
        self.entries
            .insert(key.to_owned(), (value.to_owned(), Instant::now() + ttl))
            .await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.entries.invalidate(key).await;
        Ok(())
    }
}

/// Redis-backed cache; keys carry the configured namespace.
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
    async fn memory_entries_expire() -> anyhow::Result<()> {
        let cache = MemoryCache::new(100);
        cache.set("a", "1", Duration::from_millis(30)).await?;
        assert_eq!(cache.get("a").await?.as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get("a").await?, None);
        Ok(())
    }
}
