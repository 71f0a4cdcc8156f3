//! Object storage behind `object_store`: the local filesystem under `{data_dir}/files` by
//! default. Keys are made by the platform, never taken from clients.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

/// A stored object, ready to stream.
pub struct StoredObject {
    pub size: u64,
    pub body: Body,
}

fn path(key: &str) -> anyhow::Result<Path> {
    Path::parse(key).map_err(|e| anyhow::anyhow!("invalid object key {key:?}: {e}"))
}

impl Storage {
    pub fn local(root: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(root)?),
        })
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&path(key)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// `None` when there is no such object (or the key is not a valid path).
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<StoredObject>> {
        let Ok(location) = path(key) else {
            return Ok(None);
        };
        match self.store.get(&location).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(std::io::Error::other);
                Ok(Some(StoredObject {
                    size,
                    body: Body::from_stream(stream),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The image kind of `bytes` by its magic number: (extension, content type).
pub fn sniff_image(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some(("jpg", "image/jpeg")),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(("png", "image/png")),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(("gif", "image/gif")),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => {
            Some(("webp", "image/webp"))
        }
        _ => None,
    }
}

/// Content type of a key by its extension.
pub fn content_type(key: &str) -> &'static str {
    match key
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_hostile_keys() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("zv-storage-{}", uuid::Uuid::new_v4()));
        let storage = Storage::local(&dir)?;
        storage.put("a/b.png", Bytes::from_static(b"png")).await?;
        let object = storage.get("a/b.png").await?.map(|o| o.size);
        assert_eq!(object, Some(3));
        assert!(storage.get("../etc/passwd").await?.is_none());
        assert!(storage.put("../escape.txt", Bytes::new()).await.is_err());
        storage.delete("a/b.png").await?;
        assert!(storage.get("a/b.png").await?.is_none());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn sniffs_images_not_names() {
        assert_eq!(
            sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]).map(|s| s.0),
            Some("jpg")
        );
        assert_eq!(sniff_image(b"GIF89a...").map(|s| s.0), Some("gif"));
        assert_eq!(
            sniff_image(b"RIFF\0\0\0\0WEBPVP8 ").map(|s| s.0),
            Some("webp")
        );
        assert_eq!(sniff_image(b"<svg onload=alert(1)>"), None);
    }
}
