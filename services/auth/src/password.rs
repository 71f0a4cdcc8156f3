//! Password hashing (argon2id, off the async runtime) and the password rules of auth.md §6.
//! Imported Django `pbkdf2_sha256$` hashes verify and are flagged for rehashing.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use kernel::{ApiError, FieldErrors};
use subtle::ConstantTimeEq;

/// A hash that matches no password (accounts without a usable password).
pub const UNUSABLE: &str = "!";

/// Outcome of a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Valid, but stored in an old scheme: rehash now.
    ValidNeedsRehash,
    Invalid,
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

pub async fn verify(password: String, stored: Option<String>) -> Verdict {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => verify_blocking(&password, &stored),
        None => {
            // Unknown user: spend the same time as a real check so timing reveals nothing.
            let _ = verify_blocking(&password, DUMMY_HASH);
            Verdict::Invalid
        }
    })
    .await
    .unwrap_or(Verdict::Invalid)
}

const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2bdnRUv7KtGA0Nw0hG3j0K8L8n9n4rSj9ASfC4DmN0g";

fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return if verify_django(password, rest) {
            Verdict::ValidNeedsRehash
        } else {
            Verdict::Invalid
        };
    }
    match PasswordHash::new(stored) {
        Ok(parsed)
            if Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok() =>
        {
            Verdict::Valid
        }
        _ => Verdict::Invalid,
    }
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
fn verify_django(password: &str, rest: &str) -> bool {
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    let mut derived = vec![0u8; expected.len().max(1)];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut derived,
    );
    derived.ct_eq(&expected).into()
}

/// 8–128 characters, not all digits, not the username or the email's local part.
pub fn check_rules(
    password: &str,
    username: &str,
    email: &str,
    field: &str,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::new();
    let len = password.chars().count();
    if len < 8 {
        errors.add(
            field,
            "This password is too short. It must contain at least 8 characters.",
        );
    }
    if len > 128 {
        errors.add(
            field,
            "This password is too long. It must contain at most 128 characters.",
        );
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        errors.add(field, "This password is entirely numeric.");
    }
    let local = email.split('@').next().unwrap_or("");
    if (!username.is_empty() && password.eq_ignore_ascii_case(username))
        || (!local.is_empty() && password.eq_ignore_ascii_case(local))
    {
        errors.add(
            field,
            "The password is too similar to the username or email.",
        );
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2_round_trip() -> Result<(), ApiError> {
        let stored = hash("correct horse".into()).await?;
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            verify("correct horse".into(), Some(stored.clone())).await,
            Verdict::Valid
        );
        assert_eq!(verify("wrong".into(), Some(stored)).await, Verdict::Invalid);
        assert_eq!(verify("x".into(), None).await, Verdict::Invalid);
        Ok(())
    }

    #[test]
    fn django_hashes_verify_and_ask_for_rehash() {
        // Django 4 hash of "pass1234word" with salt "saltsalt", 1000 iterations.
        let mut derived = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pass1234word", b"saltsalt", 1000, &mut derived);
        let stored = format!(
            "pbkdf2_sha256$1000$saltsalt${}",
            base64::engine::general_purpose::STANDARD.encode(derived)
        );
        assert_eq!(
            verify_blocking("pass1234word", &stored),
            Verdict::ValidNeedsRehash
        );
        assert_eq!(verify_blocking("other", &stored), Verdict::Invalid);
    }

    #[test]
    fn rules() {
        assert!(check_rules("short", "u", "e@x.io", "password").is_err());
        assert!(check_rules("12345678901", "u", "e@x.io", "password").is_err());
        assert!(check_rules("amalhaddad", "amalhaddad", "e@x.io", "password").is_err());
        assert!(check_rules("Str0ng-enough", "amal", "amal@x.io", "password").is_ok());
    }
}
