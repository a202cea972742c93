//! Where sealed values live, the vault canary, and re-sealing under a new key.

use rand::RngCore;
use sqlx::Row;

use super::{Store, StoreError};
use crate::vault::{SealContext, Vault, VaultError};

/// A column holding vault records. The record's associated data binds `table`, the row's key
/// and `purpose`.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub key_column: &'static str,
    pub column: &'static str,
    pub purpose: &'static str,
}

/// Every sealed column in the schema. `rotate-key` re-seals exactly these.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "vault_meta",
        key_column: "id",
        column: "canary",
        purpose: "canary",
    },
    SealedColumn {
        table: "session_dcs",
        key_column: "dc_id",
        column: "auth_key",
        purpose: "auth_key",
    },
];

const CANARY: SealedColumn = SEALED_COLUMNS[0];

impl SealedColumn {
    pub fn context<'a>(&'a self, row: &'a str) -> SealContext<'a> {
        SealContext {
            table: self.table,
            row,
            purpose: self.purpose,
        }
    }
}

impl Store {
    /// On a new database, records which key seals it; on an existing one, proves `vault` holds
    /// that key before anything is written with it.
    pub async fn verify_or_init_vault(
        &self,
        vault: &Vault,
        key_file: &std::path::Path,
    ) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT key_id, canary FROM vault_meta WHERE id = 1")
            .fetch_optional(self.reader())
            .await?;
        match row {
            Some(row) => {
                let key_id: String = row.try_get(0)?;
                let canary: Vec<u8> = row.try_get(1)?;
                vault
                    .open(CANARY.context("1"), &canary)
                    .map(|_| ())
                    .map_err(|_| {
                        VaultError::KeyMismatch {
                            path: key_file.to_path_buf(),
                            expected: key_id,
                            found: vault.key_id_hex(),
                        }
                        .into()
                    })
            }
            None => {
                let mut nonce = [0u8; 32];
                rand::rng().fill_bytes(&mut nonce);
                let sealed = vault.seal(CANARY.context("1"), &nonce)?;
                let key_id = vault.key_id_hex();
                self.write_durable(async move |conn| {
                    sqlx::query(
                        "INSERT INTO vault_meta (id, key_id, canary, created_at) VALUES (1, ?, ?, ?) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(key_id)
                    .bind(sealed)
                    .bind(crate::time::unix_now())
                    .execute(conn)
                    .await?;
                    Ok(())
                })
                .await
            }
        }
    }

    /// Opens every sealed value with `old` and seals it again with `new`, in one transaction:
    /// either everything is under the new key afterwards, or nothing changed. Returns how many
    /// values were re-sealed.
    pub async fn reseal_all(&self, old: &Vault, new: &Vault) -> Result<u64, StoreError> {
        self.write_durable(async |conn| {
            let mut count = 0u64;
            for col in SEALED_COLUMNS {
                let select = format!(
                    "SELECT CAST({k} AS TEXT), {c} FROM {t} WHERE {c} IS NOT NULL",
                    k = col.key_column,
                    c = col.column,
                    t = col.table
                );
                // Table and column names come from the constant list above, never from input.
                let rows = sqlx::query(sqlx::AssertSqlSafe(select.as_str()))
                    .fetch_all(&mut *conn)
                    .await?;
                let update = format!(
                    "UPDATE {t} SET {c} = ? WHERE CAST({k} AS TEXT) = ?",
                    k = col.key_column,
                    c = col.column,
                    t = col.table
                );
                for row in rows {
                    let key: String = row.try_get(0)?;
                    let record: Vec<u8> = row.try_get(1)?;
                    let plain = old.open(col.context(&key), &record)?;
                    let resealed = new.seal(col.context(&key), &plain)?;
                    sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                        .bind(resealed)
                        .bind(&key)
                        .execute(&mut *conn)
                        .await?;
                    count += 1;
                }
            }
            sqlx::query("UPDATE vault_meta SET key_id = ?, rotated_at = ? WHERE id = 1")
                .bind(new.key_id_hex())
                .bind(crate::time::unix_now())
                .execute(&mut *conn)
                .await?;
            Ok(count)
        })
        .await
    }
}
