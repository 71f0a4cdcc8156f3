//! JWT signing and verification with EdDSA (Ed25519) keys, published as JWKS.
//!
//! Keys are generated on first start and kept in `{data_dir}/keys/signing-keys.json` (mode 0600).
//! Rotation adds a new current key; retired keys stay in the JWKS until every token they signed
//! has expired, then are dropped.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use crate::rbac::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims every token carries (contract auth.md §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(serialize_with = "user_id_out", deserialize_with = "user_id_in")]
    pub user_id: i64,
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub project_id: Option<i64>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default)]
    pub sid: Option<uuid::Uuid>,
}

fn user_id_out<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

fn user_id_in<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Int(i64),
        Str(String),
    }
    match Id::deserialize(d)? {
        Id::Int(i) => Ok(i),
        Id::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// A fresh token id: 32 lowercase hex characters.
pub fn new_jti() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed or its signature is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
    #[error("token is of the wrong type")]
    WrongType,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
    /// PKCS#8 DER, base64.
    private_key: String,
}

struct LoadedKey {
    kid: String,
    retired_at: Option<i64>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Public key, base64url (the JWK `x`).
    x: String,
}

/// The signing keys: the newest is current, older ones only verify.
pub struct KeyRing {
    keys: Vec<LoadedKey>,
    leeway: u64,
}

fn keys_file(dir: &Path) -> PathBuf {
    dir.join("keys").join("signing-keys.json")
}

fn generate() -> anyhow::Result<StoredKey> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("encoding a new signing key: {e}"))?;
    let kid = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    Ok(StoredKey {
        kid,
        created_at: Utc::now().timestamp(),
        retired_at: None,
        private_key: base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
    })
}

fn load(stored: &StoredKey) -> anyhow::Result<LoadedKey> {
    let der = base64::engine::general_purpose::STANDARD.decode(&stored.private_key)?;
    let signing = SigningKey::from_pkcs8_der(&der)
        .map_err(|e| anyhow::anyhow!("signing key {} is unreadable: {e}", stored.kid))?;
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    Ok(LoadedKey {
        kid: stored.kid.clone(),
        retired_at: stored.retired_at,
        encoding: EncodingKey::from_ed_der(&der),
        decoding: DecodingKey::from_ed_components(&x)?,
        x,
    })
}

fn read_store(path: &Path) -> anyhow::Result<Vec<StoredKey>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}

/// Writes `keys` to a private temporary file beside `path` (mode 0600) and returns it.
fn write_temp(path: &Path, keys: &[StoredKey]) -> anyhow::Result<PathBuf> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(keys)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tmp)
}

fn write_store(path: &Path, keys: &[StoredKey]) -> anyhow::Result<()> {
    let tmp = write_temp(path, keys)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates the key file only if no other process did first (atomic: a hard link fails when the
/// target exists). Returns false when another process won; its keys are then the ones to use.
fn create_store(path: &Path, keys: &[StoredKey]) -> anyhow::Result<bool> {
    let tmp = write_temp(path, keys)?;
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl KeyRing {
    /// Loads the keys under `data_dir`, generating the first one if there is none.
    pub fn load_or_create(data_dir: &Path, leeway: u64) -> anyhow::Result<Self> {
        let path = keys_file(data_dir);
        let mut stored = read_store(&path)?;
        if stored.is_empty() {
            let first = vec![generate()?];
            if create_store(&path, &first)? {
                tracing::info!(path = %path.display(), "generated a new JWT signing key");
            }
            stored = read_store(&path)?;
        } else if stored.iter().all(|k| k.retired_at.is_some()) {
            stored.push(generate()?);
            write_store(&path, &stored)?;
            tracing::info!(path = %path.display(), "generated a new JWT signing key");
        }
        Self::from_stored(&stored, leeway)
    }

    /// Makes a new current key; the old ones keep verifying until `keep_secs` after retirement.
    pub fn rotate(data_dir: &Path, keep_secs: i64) -> anyhow::Result<String> {
        let path = keys_file(data_dir);
        let now = Utc::now().timestamp();
        let mut stored = read_store(&path)?;
        stored.retain(|k| k.retired_at.is_none_or(|r| r + keep_secs > now));
        for key in stored.iter_mut().filter(|k| k.retired_at.is_none()) {
            key.retired_at = Some(now);
        }
        let fresh = generate()?;
        let kid = fresh.kid.clone();
        stored.push(fresh);
        write_store(&path, &stored)?;
        Ok(kid)
    }

    fn from_stored(stored: &[StoredKey], leeway: u64) -> anyhow::Result<Self> {
        let mut keys = stored
            .iter()
            .map(load)
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Current key (not retired, newest) first.
        keys.sort_by_key(|k| k.retired_at.map_or(i64::MIN, |r| -r));
        anyhow::ensure!(
            keys.first().is_some_and(|k| k.retired_at.is_none()),
            "no current signing key"
        );
        Ok(Self { keys, leeway })
    }

    pub fn current_kid(&self) -> &str {
        self.keys.first().map_or("", |k| k.kid.as_str())
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Verifies signature, algorithm, expiry (with leeway) and the expected token type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = self.leeway;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        if data.claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }

    /// The public keys as a JWK Set.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.x})
            })
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(token_type: TokenType, exp_offset: i64) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            token_type,
            exp: now + exp_offset,
            iat: now,
            jti: new_jti(),
            user_id: 7,
            username: "amal".into(),
            email: Some("amal@example.com".into()),
            project_id: None,
            role: None,
            is_staff: false,
            is_superuser: false,
            sid: Some(uuid::Uuid::new_v4()),
        }
    }

    fn ring() -> (tempdir::Dir, KeyRing) {
        let dir = tempdir::Dir::new();
        let ring = KeyRing::load_or_create(dir.path(), 0).expect("ring");
        (dir, ring)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("zv-jwt-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).expect("tmp");
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn round_trip_and_claim_shape() {
        let (_dir, ring) = ring();
        let token = ring.sign(&claims(TokenType::Access, 60)).expect("sign");
        let verified = ring.verify(&token, TokenType::Access).expect("verify");
        assert_eq!(verified.user_id, 7);
        let payload = token.split('.').nth(1).expect("payload");
        let json: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        assert_eq!(json["user_id"], "7", "user_id travels as a string");
        assert_eq!(json["jti"].as_str().map(str::len), Some(32));
    }

    #[test]
    fn rejects_wrong_type_expired_and_tampered() {
        let (_dir, ring) = ring();
        let refresh = ring.sign(&claims(TokenType::Refresh, 60)).expect("sign");
        assert_eq!(
            ring.verify(&refresh, TokenType::Access),
            Err(TokenError::WrongType)
        );
        let expired = ring.sign(&claims(TokenType::Access, -120)).expect("sign");
        assert_eq!(
            ring.verify(&expired, TokenType::Access),
            Err(TokenError::Expired)
        );
        let good = ring.sign(&claims(TokenType::Access, 60)).expect("sign");
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
        payload["is_superuser"] = Value::Bool(true);
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(
            ring.verify(&parts.join("."), TokenType::Access),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn processes_starting_together_agree_on_one_key() {
        let dir = tempdir::Dir::new();
        let path = dir.path().to_path_buf();
        let kids: Vec<String> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    KeyRing::load_or_create(&path, 0).map(|r| r.current_kid().to_owned())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread").expect("ring"))
            .collect();
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let (dir, ring) = ring();
        let old = ring.sign(&claims(TokenType::Access, 60)).expect("sign");
        let new_kid = KeyRing::rotate(dir.path(), 3600).expect("rotate");
        let rotated = KeyRing::load_or_create(dir.path(), 0).expect("reload");
        assert_eq!(rotated.current_kid(), new_kid);
        assert!(rotated.verify(&old, TokenType::Access).is_ok());
        assert_eq!(rotated.jwks()["keys"].as_array().map(Vec::len), Some(2));
    }
}
