//! The shared runtime of one process: configuration, keys, cache, limiter, mailer and the
//! membership directory. Built once, cloned cheaply into every router.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::auth::{MembershipDirectory, TokenVerifier};
use crate::cache::{self, MemoryCache, RedisCache, SharedCache};
use crate::config::Config;
use crate::events::EventBus;
use crate::jwt::KeyRing;
use crate::mailer::{self, SharedMailer};
use crate::ratelimit::{MemoryRateLimiter, RedisRateLimiter, SharedRateLimiter};
use crate::storage::Storage;

#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    keys: Arc<KeyRing>,
    cache: SharedCache,
    limiter: SharedRateLimiter,
    mailer: SharedMailer,
    verifier: TokenVerifier,
    memberships: OnceLock<Arc<dyn MembershipDirectory>>,
    redis: Option<redis::aio::ConnectionManager>,
    storage: Storage,
    events: Arc<EventBus>,
    provided: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// What a caller may replace when building the platform (tests use a memory mailer).
#[derive(Default)]
pub struct PlatformOverrides {
    pub mailer: Option<SharedMailer>,
}

impl Platform {
    pub async fn new(config: Config, overrides: PlatformOverrides) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir)?;
        let keys = Arc::new(KeyRing::load_or_create(
            &config.data_dir,
            config.jwt.leeway_secs,
        )?);
        let redis = match &config.redis_url {
            Some(url) => Some(cache::connect_redis(url.expose()).await?),
            None => None,
        };
        let (cache, limiter): (SharedCache, SharedRateLimiter) = match &redis {
            Some(conn) => (
                Arc::new(RedisCache::new(conn.clone(), &config.redis_namespace)),
                Arc::new(RedisRateLimiter::new(conn.clone(), &config.redis_namespace)),
            ),
            None => (
                Arc::new(MemoryCache::new(config.memory_cache_bytes)),
                Arc::new(MemoryRateLimiter::default()),
            ),
        };
        let mailer = match overrides.mailer {
            Some(m) => m,
            None => mailer::from_config(&config.mail)?,
        };
        let storage = Storage::from_config(&config)?;
        let verifier = TokenVerifier::new(keys.clone(), cache.clone(), &config);
        let events = Arc::new(match &config.amqp_url {
            Some(url) => EventBus::with_broker(crate::amqp::Broker::new(
                url.expose(),
                &config.amqp_namespace,
            )),
            None => EventBus::default(),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                keys,
                cache,
                limiter,
                mailer,
                verifier,
                memberships: OnceLock::new(),
                redis,
                storage,
                events,
                provided: RwLock::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub fn cache(&self) -> &SharedCache {
        &self.inner.cache
    }

    pub fn limiter(&self) -> &SharedRateLimiter {
        &self.inner.limiter
    }

    pub fn mailer(&self) -> &SharedMailer {
        &self.inner.mailer
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    pub fn redis(&self) -> Option<&redis::aio::ConnectionManager> {
        self.inner.redis.as_ref()
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Installs the service that answers "which role does user U hold in project P".
    pub fn set_memberships(&self, directory: Arc<dyn MembershipDirectory>) {
        let _ = self.inner.memberships.set(directory);
    }

    pub fn memberships(&self) -> Option<&Arc<dyn MembershipDirectory>> {
        self.inner.memberships.get()
    }

    /// The in-process event bus (consumers subscribe here, outboxes deliver here).
    pub fn events(&self) -> &Arc<EventBus> {
        &self.inner.events
    }

    /// Makes `value` available to the other services of this process (an in-process client
    /// of a service, typed by a trait of the `integration` crate).
    pub fn provide<T: Any + Send + Sync>(&self, value: T) {
        if let Ok(mut map) = self.inner.provided.write() {
            map.insert(TypeId::of::<T>(), Arc::new(value));
        }
    }

    /// What another service [`provide`](Self::provide)d, if it runs in this process.
    pub fn lookup<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        let map = self.inner.provided.read().ok()?;
        map.get(&TypeId::of::<T>())?.downcast_ref::<T>().cloned()
    }
}
