//! `bitgate secrets rekey`: re-seals every stored secret under the first key
//! of `BITGATE_SECRET_KEYS`, so that older keys can then be dropped. Runs in
//! one transaction with the rows locked: all or nothing.

use sqlx::PgPool;
use uuid::Uuid;

use crate::secrets::{Binding, Keyring, OpenError, Sealed};

/// How many secrets were looked at, and how many were sealed under an older key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rekeyed {
    pub examined: usize,
    pub resealed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{table}.{column} of row {row} does not open: {source}")]
    Open { table: &'static str, column: &'static str, row: Uuid, source: OpenError },
}

fn reseal(
    keyring: &Keyring,
    sealed: Sealed,
    binding: Binding<'static>,
    counts: &mut Rekeyed,
) -> Result<Option<Sealed>, RekeyError> {
    counts.examined += 1;
    if sealed.key_id == keyring.current_key_id() {
        return Ok(None);
    }
    let plain = keyring.open(&sealed, binding).map_err(|source| RekeyError::Open {
        table: binding.table,
        column: binding.column,
        row: binding.row,
        source,
    })?;
    counts.resealed += 1;
    Ok(Some(keyring.seal(&plain, binding)))
}

/// A column's key id and ciphertext, either absent (not sealed: nothing
/// stored there) or as written back (`None` keeps what is stored).
type Column = (Option<String>, Option<Vec<u8>>);

/// The client secret, access token and refresh token of one credentials
/// row, resealed; `None` when none of them needed it.
fn reseal_credentials(
    keyring: &Keyring,
    table: &'static str,
    row: Uuid,
    columns: [Column; 3],
    counts: &mut Rekeyed,
) -> Result<Option<[Column; 3]>, RekeyError> {
    let mut resealed: [Column; 3] = Default::default();
    for ((column, stored), out) in
        ["client_secret", "access_token", "refresh_token"].into_iter().zip(columns).zip(&mut resealed)
    {
        if let (Some(key_id), Some(ciphertext)) = stored {
            let binding = Binding { table, column, row };
            if let Some(sealed) = reseal(keyring, Sealed { key_id, ciphertext }, binding, counts)? {
                *out = (Some(sealed.key_id), Some(sealed.ciphertext));
            }
        }
    }
    Ok(resealed.iter().any(|(key, _)| key.is_some()).then_some(resealed))
}

pub async fn rekey(pool: &PgPool, keyring: &Keyring) -> Result<Rekeyed, RekeyError> {
    let mut counts = Rekeyed::default();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        "SELECT id, webhook_secret_key, webhook_secret, previous_webhook_secret_key, previous_webhook_secret
         FROM integrations FOR UPDATE"
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let binding = Binding { table: "integrations", column: "webhook_secret", row: row.id };
        let current = Sealed { key_id: row.webhook_secret_key, ciphertext: row.webhook_secret };
        if let Some(sealed) = reseal(keyring, current, binding, &mut counts)? {
            sqlx::query!(
                "UPDATE integrations SET webhook_secret_key = $2, webhook_secret = $3 WHERE id = $1",
                row.id,
                sealed.key_id,
                sealed.ciphertext
            )
            .execute(&mut *tx)
            .await?;
        }
        if let (Some(key_id), Some(ciphertext)) = (row.previous_webhook_secret_key, row.previous_webhook_secret) {
            let binding = Binding { table: "integrations", column: "previous_webhook_secret", row: row.id };
            if let Some(sealed) = reseal(keyring, Sealed { key_id, ciphertext }, binding, &mut counts)? {
                sqlx::query!(
                    "UPDATE integrations SET previous_webhook_secret_key = $2, previous_webhook_secret = $3 WHERE id = $1",
                    row.id,
                    sealed.key_id,
                    sealed.ciphertext
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    // An OAuth 1.0a link's private key.
    let rows = sqlx::query!(
        r#"SELECT integration_id, private_key_key AS "private_key_key!", private_key AS "private_key!"
           FROM datacenter_credentials WHERE private_key IS NOT NULL FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let binding = Binding { table: "datacenter_credentials", column: "private_key", row: row.integration_id };
        let current = Sealed { key_id: row.private_key_key, ciphertext: row.private_key };
        if let Some(sealed) = reseal(keyring, current, binding, &mut counts)? {
            sqlx::query!(
                "UPDATE datacenter_credentials SET private_key_key = $2, private_key = $3 WHERE integration_id = $1",
                row.integration_id,
                sealed.key_id,
                sealed.ciphertext
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    // Data Center: an HTTP access token, or an OAuth link's client secret
    // and tokens; Cloud: a consumer's secret and its tokens. The same three
    // columns, in two tables.
    let rows = sqlx::query!(
        "SELECT integration_id, client_secret_key, client_secret, access_token_key, access_token,
                refresh_token_key, refresh_token
         FROM datacenter_credentials FOR UPDATE"
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let columns = [
            (row.client_secret_key, row.client_secret),
            (row.access_token_key, row.access_token),
            (row.refresh_token_key, row.refresh_token),
        ];
        let Some([secret, access, refresh]) =
            reseal_credentials(keyring, "datacenter_credentials", row.integration_id, columns, &mut counts)?
        else {
            continue;
        };
        sqlx::query!(
            "UPDATE datacenter_credentials SET
               client_secret_key = coalesce($2, client_secret_key), client_secret = coalesce($3, client_secret),
               access_token_key = coalesce($4, access_token_key), access_token = coalesce($5, access_token),
               refresh_token_key = coalesce($6, refresh_token_key), refresh_token = coalesce($7, refresh_token)
             WHERE integration_id = $1",
            row.integration_id,
            secret.0,
            secret.1,
            access.0,
            access.1,
            refresh.0,
            refresh.1
        )
        .execute(&mut *tx)
        .await?;
    }
    let rows = sqlx::query!(
        "SELECT integration_id, client_secret_key, client_secret, access_token_key, access_token,
                refresh_token_key, refresh_token
         FROM cloud_credentials FOR UPDATE"
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let columns = [
            (Some(row.client_secret_key), Some(row.client_secret)),
            (row.access_token_key, row.access_token),
            (row.refresh_token_key, row.refresh_token),
        ];
        let Some([secret, access, refresh]) =
            reseal_credentials(keyring, "cloud_credentials", row.integration_id, columns, &mut counts)?
        else {
            continue;
        };
        sqlx::query!(
            "UPDATE cloud_credentials SET
               client_secret_key = coalesce($2, client_secret_key), client_secret = coalesce($3, client_secret),
               access_token_key = coalesce($4, access_token_key), access_token = coalesce($5, access_token),
               refresh_token_key = coalesce($6, refresh_token_key), refresh_token = coalesce($7, refresh_token)
             WHERE integration_id = $1",
            row.integration_id,
            secret.0,
            secret.1,
            access.0,
            access.1,
            refresh.0,
            refresh.1
        )
        .execute(&mut *tx)
        .await?;
    }
    // Flows waiting for their callback live 10 minutes: their verifiers are resealed too.
    let rows = sqlx::query!(
        r#"SELECT id, pkce_verifier_key AS "pkce_verifier_key!", pkce_verifier AS "pkce_verifier!" FROM oauth_flows
           WHERE pkce_verifier IS NOT NULL FOR UPDATE"#
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let binding = Binding { table: "oauth_flows", column: "pkce_verifier", row: row.id };
        let current = Sealed { key_id: row.pkce_verifier_key, ciphertext: row.pkce_verifier };
        if let Some(sealed) = reseal(keyring, current, binding, &mut counts)? {
            sqlx::query!(
                "UPDATE oauth_flows SET pkce_verifier_key = $2, pkce_verifier = $3 WHERE id = $1",
                row.id,
                sealed.key_id,
                sealed.ciphertext
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(counts)
}
