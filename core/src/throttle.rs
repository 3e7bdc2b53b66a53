//! Login rate limiting: failed attempts counted per account and per client
//! network in fixed windows, in the database so that every Bitgate process
//! sees the same counters. An attempt is counted before its password is
//! checked, and given back when the password was right.

use std::{net::IpAddr, time::Duration};

use ipnet::{IpNet, Ipv6Net};
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
        Self { account: format!("account:{email}"), address: address.map(|a| format!("address:{}", network_of(a))) }
    }

    /// Account first, then address: every attempt locks the counters in this
    /// order, so that two attempts never wait on each other in a cycle.
    fn with_limits(&self) -> impl Iterator<Item = (&str, Limit)> {
        std::iter::once((self.account.as_str(), PER_ACCOUNT)).chain(self.address.as_deref().map(|a| (a, PER_ADDRESS)))
    }
}

/// The network one client is counted by. An IPv6 client is usually given a
/// whole /64 and can pick any address in it, so it is counted by its /64;
/// an IPv4 client (or an IPv4-mapped IPv6 one) by its address.
fn network_of(address: IpAddr) -> IpNet {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpNet::from(IpAddr::V4(v4)),
            None => IpNet::V6(Ipv6Net::new_assert(v6, 64).trunc()),
        },
        IpAddr::V4(_) => IpNet::from(address),
    }
}

/// What [`reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The attempt is counted as a failure already; [`record_success`]
    /// gives it back when the password is right.
    Allowed,
    /// A counter is exhausted: try again after this long.
    Refused { retry_after: Duration },
}

/// Takes one attempt from every counter of the login, before its password is
/// checked, or refuses it when a counter is exhausted. The counters are
/// locked while they are read and raised, so that a burst of concurrent
/// guesses cannot all pass one check made before any of them is counted.
pub async fn reserve(pool: &PgPool, keys: &LoginKeys) -> Result<Attempt, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut wait: Option<Duration> = None;
    for (key, limit) in keys.with_limits() {
        // Creates the counter or restarts its window when it has passed, and
        // holds its row lock until the transaction ends.
        let counter = sqlx::query!(
            r#"INSERT INTO login_throttle (key, window_started_at, failures) VALUES ($1, now(), 0)
               ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN login_throttle.window_started_at + make_interval(secs => $2) <= now()
                                 THEN 0 ELSE login_throttle.failures END,
                 window_started_at = CASE WHEN login_throttle.window_started_at + make_interval(secs => $2) <= now()
                                 THEN now() ELSE login_throttle.window_started_at END
               RETURNING failures,
                 extract(epoch FROM window_started_at + make_interval(secs => $2) - now())::float8 AS "remaining!""#,
            key,
            limit.window.as_secs_f64()
        )
        .fetch_one(&mut *tx)
        .await?;
        if counter.failures >= limit.failures {
            let this = Duration::from_secs(counter.remaining.ceil().max(1.0) as u64);
            wait = Some(wait.map_or(this, |w| w.max(this)));
        }
    }
    if let Some(retry_after) = wait {
        tx.rollback().await?;
        return Ok(Attempt::Refused { retry_after });
    }
    for (key, _) in keys.with_limits() {
        sqlx::query!("UPDATE login_throttle SET failures = failures + 1 WHERE key = $1", key).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Attempt::Allowed)
}

/// A successful login clears its account's counter, and gives back the
/// attempt it took from its address's (the address's count stays: one good
/// password must not reset a spraying attacker's count).
pub async fn record_success(pool: &PgPool, keys: &LoginKeys) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM login_throttle WHERE key = $1", keys.account).execute(&mut *tx).await?;
    if let Some(address) = &keys.address {
        sqlx::query!("UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $1", address)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(address: &str) -> LoginKeys {
        LoginKeys::new(&Email::parse("ada@example.com").unwrap(), Some(address.parse().unwrap()))
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let one = keys("2001:db8:1:2::1");
        assert_eq!(one.address.as_deref(), Some("address:2001:db8:1:2::/64"));
        assert_eq!(one.address, keys("2001:db8:1:2:ffff:ffff:ffff:ffff").address, "the same /64");
        assert_ne!(one.address, keys("2001:db8:1:3::1").address, "another /64");
    }

    #[test]
    fn an_ipv4_client_is_counted_by_its_address() {
        assert_eq!(keys("203.0.113.9").address.as_deref(), Some("address:203.0.113.9/32"));
        assert_ne!(keys("203.0.113.9").address, keys("203.0.113.10").address);
        assert_eq!(keys("::ffff:203.0.113.9").address, keys("203.0.113.9").address, "IPv4-mapped is IPv4");
    }
}
