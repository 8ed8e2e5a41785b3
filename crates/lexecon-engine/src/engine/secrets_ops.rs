//! Re-encrypting secrets at rest under the current master key (`lexecon secrets rotate`).

use std::sync::Arc;

use lexecon_auth::{MasterKey, PgAuthStore, SqliteAuthStore};
use lexecon_ledger::EntryKind;
use serde_json::json;

use super::{Caller, Engine, EngineError};
use crate::db::Database;
use crate::secrets::{MASTER_KEY_ENV, SecretsRotation, rotation_keys};

impl Engine {
    /// Re-encrypts every TOTP seed in one transaction under `new_key` (when given, with
    /// every configured key accepted for decryption) or else under the configured current
    /// key, and records a `secrets_rotated` auth event naming the caller and key ids
    /// (never key material). All or nothing: a seed that does not open stops it.
    pub async fn rotate_secrets(
        &self,
        caller: &Caller,
        new_key: Option<MasterKey>,
    ) -> Result<SecretsRotation, EngineError> {
        let env = std::env::var(MASTER_KEY_ENV).ok();
        let keys = Arc::new(rotation_keys(&self.config, env.as_deref(), new_key)?);
        let resealed = match &self.db {
            Database::Sqlite(pool) => {
                SqliteAuthStore::new(pool.clone(), Arc::clone(&keys))
                    .reseal_secrets()
                    .await
            }
            Database::Postgres(pool) => {
                PgAuthStore::new(pool.clone(), Arc::clone(&keys))
                    .reseal_secrets()
                    .await
            }
        };
        let (reencrypted, moved) = resealed.map_err(|e| EngineError::Keys(e.to_string()))?;
        let key_id = keys.current().id();
        let previous_key_ids: Vec<String> = keys.previous().iter().map(MasterKey::id).collect();
        let entry = self
            .ledger
            .append(
                EntryKind::AuthEvent,
                json!({
                    "event": "secrets_rotated",
                    "by": caller.ledger_name(),
                    "key_id": key_id,
                    "previous_key_ids": previous_key_ids,
                    "reencrypted": reencrypted,
                    "moved_from_other_keys": moved,
                }),
            )
            .await?;
        Ok(SecretsRotation {
            key_id,
            key_source: keys.current().source_name().to_owned(),
            previous_key_ids,
            reencrypted,
            moved_from_other_keys: moved,
            ledger_index: entry.index,
        })
    }
}
