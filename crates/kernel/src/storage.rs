//! Object storage behind `object_store`: the local filesystem under `{data_dir}/files` by
//! default, an S3-compatible store when `s3_endpoint` is set. Keys are made by the platform,
//! never taken from clients.
//!
//! Signed URLs: S3 mode uses SigV4 (query-signed GET, browser POST policies); local mode signs
//! GET URLs with an HMAC of a per-installation secret and accepts the same POST-policy form at
//! the platform's own upload endpoint, verified exactly as S3 would.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    mode: Arc<Mode>,
}

enum Mode {
    Local {
        secret: Vec<u8>,
    },
    S3 {
        client: Arc<AmazonS3>,
        endpoint: String,
        bucket: String,
        region: String,
        access_key: String,
        secret_key: String,
    },
}

/// A stored object, ready to stream.
pub struct StoredObject {
    pub size: u64,
    pub body: Body,
}

/// What a streamed upload wrote.
#[derive(Debug)]
pub struct Written {
    pub size: u64,
    pub sha256_hex: String,
}

/// A browser-style presigned POST: the form's target and the fields to send before `file`.
#[derive(Debug)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// What a verified POST policy allows (local uploads).
#[derive(Debug)]
pub struct AllowedUpload {
    pub key: String,
    pub content_type: String,
    pub max_size: u64,
}

fn path(key: &str) -> anyhow::Result<Path> {
    Path::parse(key).map_err(|e| anyhow::anyhow!("invalid object key {key:?}: {e}"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A random secret kept in `{dir}/storage-secret`, created once (first writer wins).
fn load_or_create_secret(dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let file = dir.join("storage-secret");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&file) {
        Ok(mut f) => {
            let secret: [u8; 32] = rand::random();
            let encoded = hex::encode(secret);
            f.write_all(encoded.as_bytes())?;
            f.sync_all()?;
            Ok(encoded.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A concurrent first start may still be writing it.
            for _ in 0..50 {
                let content = std::fs::read(&file)?;
                if content.len() == 64 {
                    return Ok(content);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            anyhow::bail!("{} is not a storage secret", file.display())
        }
        Err(e) => Err(e.into()),
    }
}

impl Storage {
    /// Files under `root`; the signing secret in `keys` (outside what is served).
    pub fn local(root: &std::path::Path, keys: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)?;
        let secret = load_or_create_secret(keys)?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(root)?),
            mode: Arc::new(Mode::Local { secret }),
        })
    }

    /// S3 when `s3_endpoint` is configured, else the local filesystem under `data_dir/files`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let Some(endpoint) = &config.s3_endpoint else {
            return Self::local(
                &config.data_dir.join("files"),
                &config.data_dir.join("keys"),
            );
        };
        let access_key = config
            .s3_access_key_id
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        let secret_key = config
            .s3_secret_access_key
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default();
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let client = Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&endpoint)
                .with_bucket_name(&config.s3_bucket)
                .with_region(&config.s3_region)
                .with_access_key_id(&access_key)
                .with_secret_access_key(&secret_key)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false)
                .build()?,
        );
        Ok(Self {
            store: client.clone(),
            mode: Arc::new(Mode::S3 {
                client,
                endpoint,
                bucket: config.s3_bucket.clone(),
                region: config.s3_region.clone(),
                access_key,
                secret_key,
            }),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(*self.mode, Mode::S3 { .. })
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&path(key)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Streams `body` to `key`, hashing as it goes. More than `max_bytes` aborts the upload
    /// (413); `check` sees the first bytes (up to 512) before anything is kept, and may refuse.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        body: S,
        max_bytes: u64,
        check: impl FnOnce(&[u8]) -> Result<(), ApiError>,
    ) -> Result<Written, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let location = path(key)?;
        let mut body = body;
        let mut head: Vec<u8> = Vec::with_capacity(512);
        let mut pending: Vec<Bytes> = Vec::new();
        let mut check = Some(check);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut writer: Option<WriteMultipart> = None;
        let too_large = || {
            ApiError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!(
                    "File size exceeds maximum allowed size of {}.",
                    human_size(max_bytes)
                ),
            )
        };
        let outcome: Result<(), ApiError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        "upload_failed",
                        format!("The upload was interrupted: {e}"),
                    )
                })?;
                size += chunk.len() as u64;
                if size > max_bytes {
                    return Err(too_large());
                }
                hasher.update(&chunk);
                if check.is_some() {
                    let take = (512 - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                pending.push(chunk);
                if check.is_some() {
                    if head.len() < 512 {
                        continue;
                    }
                    if let Some(c) = check.take() {
                        c(&head)?;
                    }
                }
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(WriteMultipart::new(
                        self.store
                            .put_multipart(&location)
                            .await
                            .map_err(anyhow::Error::from)?,
                    )),
                };
                for part in pending.drain(..) {
                    w.wait_for_capacity(4).await.map_err(anyhow::Error::from)?;
                    w.put(part);
                }
            }
            if let Some(c) = check.take() {
                c(&head)?;
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                match writer {
                    Some(mut w) => {
                        for part in pending.drain(..) {
                            w.put(part);
                        }
                        w.finish().await.map_err(anyhow::Error::from)?;
                    }
                    None => {
                        let payload: PutPayload = pending.into_iter().collect();
                        self.store
                            .put(&location, payload)
                            .await
                            .map_err(anyhow::Error::from)?;
                    }
                }
                Ok(Written {
                    size,
                    sha256_hex: hex::encode(hasher.finalize()),
                })
            }
            Err(e) => {
                if let Some(w) = writer {
                    if let Err(abort) = w.abort().await {
                        tracing::warn!(error = %abort, "aborting a refused upload failed");
                    }
                }
                Err(e)
            }
        }
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

    /// The object's size, `None` when it does not exist.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> anyhow::Result<Bytes> {
        Ok(self.store.get_range(&path(key)?, range).await?)
    }

    pub async fn copy(&self, from: &str, to: &str) -> anyhow::Result<()> {
        Ok(self.store.copy(&path(from)?, &path(to)?).await?)
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A URL that reads `key` until `expires_at`. `local_base` is where this platform serves
    /// local files (`…/media`).
    pub async fn signed_get_url(
        &self,
        key: &str,
        expires_in: Duration,
        local_base: &str,
    ) -> anyhow::Result<String> {
        match &*self.mode {
            Mode::S3 { client, .. } => Ok(client
                .signed_url(http::Method::GET, &path(key)?, expires_in)
                .await?
                .to_string()),
            Mode::Local { secret } => {
                let expires = Utc::now().timestamp() + expires_in.as_secs() as i64;
                let signature =
                    hex::encode(hmac(secret, format!("GET\n{key}\n{expires}").as_bytes()));
                Ok(format!(
                    "{}/{key}?expires={expires}&signature={signature}",
                    local_base.trim_end_matches('/')
                ))
            }
        }
    }

    /// Local mode: whether `signature` signs (`key`, `expires`) and has not expired.
    pub fn verify_local_get(&self, key: &str, expires: i64, signature: &str) -> bool {
        let Mode::Local { secret } = &*self.mode else {
            return false;
        };
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            return false;
        };
        mac.update(format!("GET\n{key}\n{expires}").as_bytes());
        expires >= Utc::now().timestamp() && mac.verify_slice(&given).is_ok()
    }

    /// A SigV4 POST policy pinning the key, the content type and `content-length-range
    /// [1, max_size]`. In local mode the form goes to `local_upload_url`.
    pub fn presigned_post(
        &self,
        key: &str,
        content_type: &str,
        max_size: u64,
        expires_in: Duration,
        local_upload_url: &str,
    ) -> PresignedPost {
        let now = Utc::now();
        let (url, bucket, region, access_key, secret): (String, &str, &str, &str, &[u8]) =
            match &*self.mode {
                Mode::S3 {
                    endpoint,
                    bucket,
                    region,
                    access_key,
                    secret_key,
                    ..
                } => (
                    format!("{endpoint}/{bucket}"),
                    bucket,
                    region,
                    access_key,
                    secret_key.as_bytes(),
                ),
                Mode::Local { secret } => (
                    local_upload_url.to_owned(),
                    "local",
                    "local",
                    "local",
                    secret,
                ),
            };
        let date = now.format("%Y%m%d").to_string();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let credential = format!("{access_key}/{date}/{region}/s3/aws4_request");
        let expiration: DateTime<Utc> =
            now + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::hours(1));
        let policy = json!({
            "expiration": expiration.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": [
                {"bucket": bucket},
                {"key": key},
                {"Content-Type": content_type},
                ["content-length-range", 1, max_size],
                {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                {"x-amz-credential": credential},
                {"x-amz-date": amz_date},
            ]
        });
        let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
        let signature = sign_v4(secret, &date, region, &policy_b64);
        let fields = BTreeMap::from([
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("policy".to_owned(), policy_b64),
            ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("x-amz-credential".to_owned(), credential),
            ("x-amz-date".to_owned(), amz_date),
            ("x-amz-signature".to_owned(), signature),
        ]);
        PresignedPost { url, fields }
    }

    /// Local mode: checks a POST-policy form as S3 would (signature, expiry, every condition)
    /// and says what it allows. The file's size is checked by the caller while streaming.
    pub fn verify_local_post(
        &self,
        fields: &BTreeMap<String, String>,
    ) -> Result<AllowedUpload, ApiError> {
        let denied = || ApiError::forbidden("invalid_policy", "The upload policy is not valid.");
        let Mode::Local { secret } = &*self.mode else {
            return Err(denied());
        };
        let get = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let policy_b64 = get("policy").ok_or_else(denied)?;
        let credential = get("x-amz-credential").ok_or_else(denied)?;
        let signature = get("x-amz-signature").ok_or_else(denied)?;
        let date = credential.split('/').nth(1).ok_or_else(denied)?;
        let expected = sign_v4(secret, date, "local", policy_b64);
        let given = hex::decode(signature).map_err(|_| denied())?;
        let expected = hex::decode(expected).map_err(|_| denied())?;
        if !constant_time_eq(&given, &expected) {
            return Err(denied());
        }
        let policy: Value = base64::engine::general_purpose::STANDARD
            .decode(policy_b64)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or_else(denied)?;
        let expiration = policy["expiration"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(denied)?;
        if expiration < Utc::now() {
            return Err(ApiError::forbidden(
                "policy_expired",
                "The upload policy has expired.",
            ));
        }
        let mut allowed = AllowedUpload {
            key: String::new(),
            content_type: String::new(),
            max_size: 0,
        };
        for condition in policy["conditions"].as_array().ok_or_else(denied)? {
            match condition {
                Value::Object(map) => {
                    for (name, want) in map {
                        if name == "bucket" {
                            continue;
                        }
                        let want = want.as_str().ok_or_else(denied)?;
                        if get(name) != Some(want) {
                            return Err(denied());
                        }
                        match name.as_str() {
                            "key" => allowed.key = want.to_owned(),
                            "Content-Type" => allowed.content_type = want.to_owned(),
                            _ => {}
                        }
                    }
                }
                Value::Array(items) if items.first() == Some(&json!("content-length-range")) => {
                    allowed.max_size = items.get(2).and_then(Value::as_u64).ok_or_else(denied)?;
                }
                _ => return Err(denied()),
            }
        }
        if allowed.key.is_empty() || allowed.max_size == 0 {
            return Err(denied());
        }
        Ok(allowed)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SigV4 signature of a POST policy: the signing key is derived from the secret, date, region
/// and service; the policy (base64) is the string to sign.
fn sign_v4(secret: &[u8], date: &str, region: &str, string_to_sign: &str) -> String {
    let mut key = b"AWS4".to_vec();
    key.extend_from_slice(secret);
    let k_date = hmac(&key, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// `10MB`, `9.8GB`: sizes as the contract's messages show them (MB = 2^20 B).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if (value - value.round()).abs() < 0.05 {
        format!("{}{}", value.round() as u64, UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// The kind of a file by its magic bytes: (extension, content type). Text formats have no
/// magic; the caller decides those from the declared type and a text check.
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    if let Some(image) = sniff_image(bytes) {
        return Some(image);
    }
    infer::get(bytes).map(|t| (t.extension(), t.mime_type()))
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
        Some("svg") => "image/svg+xml",
        Some("bmp") => "image/bmp",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("ogg") => "audio/ogg",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_storage() -> anyhow::Result<(Storage, std::path::PathBuf)> {
        let dir = std::env::temp_dir().join(format!("zv-storage-{}", uuid::Uuid::new_v4()));
        Ok((Storage::local(&dir.join("files"), &dir.join("keys"))?, dir))
    }

    #[tokio::test]
    async fn round_trip_and_hostile_keys() -> anyhow::Result<()> {
        let (storage, dir) = temp_storage()?;
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

    #[tokio::test]
    async fn streamed_uploads_hash_and_stop_at_the_limit() -> anyhow::Result<()> {
        let (storage, dir) = temp_storage()?;
        let chunks = || {
            futures::stream::iter(
                (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 300]))),
            )
        };
        let written = storage
            .put_stream("x/ok.bin", chunks(), 1200, |_| Ok(()))
            .await?;
        assert_eq!(written.size, 1200);
        assert_eq!(
            written.sha256_hex,
            hex::encode(Sha256::digest(vec![7u8; 1200]))
        );
        assert_eq!(storage.size("x/ok.bin").await?, Some(1200));
        let refused = storage
            .put_stream("x/big.bin", chunks(), 1199, |_| Ok(()))
            .await;
        assert_eq!(
            refused.map(|_| ()).map_err(|e| e.status().as_u16()),
            Err(413)
        );
        assert_eq!(storage.size("x/big.bin").await?, None);
        let vetoed = storage
            .put_stream("x/no.bin", chunks(), 5000, |head| {
                assert_eq!(head.len(), 512);
                Err(ApiError::bad_request("no", "no"))
            })
            .await;
        assert!(vetoed.is_err());
        assert_eq!(storage.size("x/no.bin").await?, None);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn local_signatures_verify_and_expire() -> anyhow::Result<()> {
        let (storage, dir) = temp_storage()?;
        let url = storage
            .signed_get_url("p/1/private/a.pdf", Duration::from_secs(60), "/media")
            .await?;
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let expires: i64 = params["expires"].parse()?;
        assert!(storage.verify_local_get("p/1/private/a.pdf", expires, &params["signature"]));
        assert!(!storage.verify_local_get("p/2/private/a.pdf", expires, &params["signature"]));
        assert!(!storage.verify_local_get("p/1/private/a.pdf", expires + 1, &params["signature"]));
        assert!(!storage.verify_local_get("p/1/private/a.pdf", 1, &params["signature"]));

        let post =
            storage.presigned_post("k/1.png", "image/png", 100, Duration::from_secs(60), "/up");
        let allowed = storage.verify_local_post(&post.fields)?;
        assert_eq!((allowed.key.as_str(), allowed.max_size), ("k/1.png", 100));
        let mut other_key = post.fields.clone();
        other_key.insert("key".into(), "k/2.png".into());
        assert!(storage.verify_local_post(&other_key).is_err());
        let mut forged = post.fields.clone();
        forged.insert("x-amz-signature".into(), "00".repeat(32));
        assert!(storage.verify_local_post(&forged).is_err());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn sizes_read_like_the_contract() {
        assert_eq!(human_size(10 << 20), "10MB");
        assert_eq!(human_size(10 << 30), "10GB");
        assert_eq!(human_size((98 << 30) / 10), "9.8GB");
    }

    #[test]
    fn sniffs_content_not_names() {
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
        assert_eq!(sniff(b"%PDF-1.7\n").map(|s| s.1), Some("application/pdf"));
        assert_eq!(
            sniff(b"MZ\x90\0"),
            Some(("exe", "application/vnd.microsoft.portable-executable"))
        );
    }
}
