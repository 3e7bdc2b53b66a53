//! Login rate limiting: failed attempts counted per account and per client
//! address in fixed windows, in the database so that every Bitgate process
//! sees the same counters.

use std::{net::IpAddr, time::Duration};

use sqlx::PgPool;

use crate::users::Email;

/// A counter's window, and how many failures it allows.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub failures: i32,
    pub window: Duration,
}

/// Failed logins allowed for one account: slows guessing of one password.
pub const PER_ACCOUNT: Limit = Limit { failures: 5, window: Duration::from_secs(15 * 60) };
/// Failed logins allowed from one address: slows spraying many accounts.
pub const PER_ADDRESS: Limit = Limit { failures: 20, window: Duration::from_secs(15 * 60) };

/// The counters a login attempt touches.
#[derive(Debug, Clone)]
pub struct LoginKeys {
    account: String,
    address: Option<String>,
}

impl LoginKeys {
    pub fn new(email: &Email, address: Option<IpAddr>) -> Self {
        Self { account: format!("account:{email}"), address: address.map(|a| format!("address:{a}")) }
    }

    fn with_limits(&self) -> impl Iterator<Item = (&str, Limit)> {
        std::iter::once((self.account.as_str(), PER_ACCOUNT)).chain(self.address.as_deref().map(|a| (a, PER_ADDRESS)))
    }
}

/// How long to wait before trying again, when a counter is exhausted.
pub async fn retry_after(pool: &PgPool, keys: &LoginKeys) -> Result<Option<Duration>, sqlx::Error> {
    let mut wait = None;
    for (key, limit) in keys.with_limits() {
        let remaining: Option<f64> = sqlx::query_scalar!(
            r#"SELECT extract(epoch FROM window_started_at + make_interval(secs => $2) - now())::float8 AS "remaining!"
               FROM login_throttle
               WHERE key = $1 AND failures >= $3 AND window_started_at + make_interval(secs => $2) > now()"#,
            key,
            limit.window.as_secs_f64(),
            limit.failures
        )
        .fetch_optional(pool)
        .await?;
        if let Some(seconds) = remaining {
            let this = Duration::from_secs(seconds.ceil().max(1.0) as u64);
            wait = Some(wait.map_or(this, |w: Duration| w.max(this)));
        }
    }
    Ok(wait)
}

/// Counts a failed attempt on every counter of the attempt.
pub async fn record_failure(pool: &PgPool, keys: &LoginKeys) -> Result<(), sqlx::Error> {
    for (key, limit) in keys.with_limits() {
        sqlx::query!(
            r#"INSERT INTO login_throttle (key, window_started_at, failures) VALUES ($1, now(), 1)
               ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN login_throttle.window_started_at + make_interval(secs => $2) <= now()
                                 THEN 1 ELSE login_throttle.failures + 1 END,
                 window_started_at = CASE WHEN login_throttle.window_started_at + make_interval(secs => $2) <= now()
                                 THEN now() ELSE login_throttle.window_started_at END"#,
            key,
            limit.window.as_secs_f64()
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A successful login clears its account's counter (not the address's: one
/// good password must not reset a spraying attacker's count).
pub async fn record_success(pool: &PgPool, keys: &LoginKeys) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM login_throttle WHERE key = $1", keys.account).execute(pool).await?;
    Ok(())
}

/// Drops counters whose window has passed (run from time to time).
pub async fn forget_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let window = PER_ACCOUNT.window.max(PER_ADDRESS.window);
    let result = sqlx::query!(
        "DELETE FROM login_throttle WHERE window_started_at + make_interval(secs => $1) < now()",
        window.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
