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
    let rows =
        sqlx::query!("SELECT integration_id, access_token_key, access_token FROM datacenter_credentials FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    for row in rows {
        let binding = Binding { table: "datacenter_credentials", column: "access_token", row: row.integration_id };
        let current = Sealed { key_id: row.access_token_key, ciphertext: row.access_token };
        if let Some(sealed) = reseal(keyring, current, binding, &mut counts)? {
            sqlx::query!(
                "UPDATE datacenter_credentials SET access_token_key = $2, access_token = $3 WHERE integration_id = $1",
                row.integration_id,
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
