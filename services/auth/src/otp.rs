//! One-time codes: 6 CSPRNG digits, 2-minute life, single use, dead after 5 wrong tries,
//! resend cooldown 60 s and at most 5 an hour per email.

use kernel::mailer::Mail;
use kernel::{ApiError, Platform};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::data::otp;

const TTL_SECS: i64 = 120;
const COOLDOWN_SECS: f64 = 60.0;
const PER_HOUR: i64 = 5;

fn digest(salt: &str, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{salt}:{code}").as_bytes()))
}

/// Creates a code for `email` and mails it.
pub async fn send(
    platform: &Platform,
    db: &PgPool,
    email: &str,
    purpose: &str,
) -> Result<(), ApiError> {
    let (sent_last_hour, newest_age) = otp::recent(db, email, 3600).await?;
    if let Some(age) = newest_age.filter(|age| *age < COOLDOWN_SECS) {
        return Err(ApiError::throttled((COOLDOWN_SECS - age).ceil() as u64));
    }
    if sent_last_hour >= PER_HOUR {
        return Err(ApiError::throttled(600));
    }
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    let salt = hex::encode(rand::random::<[u8; 16]>());
    let mut tx = db.begin().await?;
    otp::replace(
        &mut tx,
        email,
        purpose,
        &salt,
        &digest(&salt, &code),
        TTL_SECS,
    )
    .await?;
    tx.commit().await?;
    let subject = match purpose {
        "verify" => "Verify your ZoneVast account",
        _ => "Your ZoneVast password reset code",
    };
    platform
        .mailer()
        .send(Mail {
            to: email.to_owned(),
            subject: subject.to_owned(),
            body: format!("Your code is {code}. It expires in 2 minutes."),
        })
        .await
        .map_err(|e| ApiError::service_unavailable(format!("The mail could not be sent: {e}")))
}

fn invalid() -> ApiError {
    ApiError::bad_request("invalid_otp", "Invalid or expired OTP")
        .with("error", "Invalid or expired OTP")
}

/// Checks and consumes the live code of `email`, returning its purpose. A wrong code counts a
/// failed try; the fifth kills the code.
pub async fn consume(db: &PgPool, email: &str, code: &str) -> Result<String, ApiError> {
    let mut tx = db.begin().await?;
    let row = otp::live(&mut tx, email).await?.ok_or_else(invalid)?;
    let expected = digest(&row.salt, code.trim());
    let matches = bool::from(expected.as_bytes().ct_eq(row.code_hash.as_bytes()));
    if matches {
        otp::consume(&mut *tx, row.id).await?;
    } else {
        otp::count_failure(&mut *tx, row.id).await?;
    }
    tx.commit().await?;
    if matches {
        Ok(row.purpose)
    } else {
        Err(invalid())
    }
}
