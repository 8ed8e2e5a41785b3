//! The master key for secrets at rest (TOTP seeds): where it comes from, the checks on
//! its file, and what happens at start when it is missing (docs/security.md, "Secrets
//! at rest").
//!
//! The current key is `LEXECON_MASTER_KEY` (base64 of 32 bytes) when set, else the file
//! `secrets.master_key_file` (default `DIR/master.key`). Previous keys come from
//! `secrets.previous_master_key_files`. Every key file must be readable by its owner
//! only. With no key at all, a start creates `DIR/master.key` only when that is safe:
//! the default file is absent, no file was configured, the database is SQLite and holds
//! no sealed secret (a data directory from before encryption at rest). Otherwise it
//! refuses with what to do. Key material never appears in a message or log line.

use std::path::Path;
use std::sync::Arc;

use lexecon_auth::{MasterKey, PgAuthStore, SecretKeys, SqliteAuthStore};

use crate::db::Database;
use crate::{Config, EngineError};

/// The environment variable that overrides `secrets.master_key_file`.
pub const MASTER_KEY_ENV: &str = "LEXECON_MASTER_KEY";

fn keys_err(message: String) -> EngineError {
    EngineError::Keys(message)
}

/// Reads a key file: it must exist, be readable by its owner only, and hold 32 bytes
/// (raw or base64 text).
pub fn read_key_file(path: &Path, key: &str) -> Result<MasterKey, EngineError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        keys_err(format!(
            "cannot read the master key file {shown} ({key}): {e}; create it with `lexecon init`, \
             or `(umask 077; head -c 32 /dev/urandom > {shown})`, or point {key} at the right file"
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(keys_err(format!(
                "the master key file {shown} ({key}) has mode {mode:04o}: it is readable by \
                 group or others; run `chmod 600 {shown}` (and check who could have read it)"
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let bytes = std::fs::read(path)
        .map_err(|e| keys_err(format!("cannot read the master key file {shown}: {e}")))?;
    MasterKey::from_bytes(&bytes, &shown.to_string()).map_err(|e| keys_err(e.to_string()))
}

/// The configured keys, with `env` the value of `LEXECON_MASTER_KEY` (if set). `None`
/// when there is no current key: no variable, no configured file, and no default
/// `DIR/master.key`. An explicitly configured file that is missing is an error.
pub fn configured_keys(
    config: &Config,
    env: Option<&str>,
) -> Result<Option<SecretKeys>, EngineError> {
    let previous = config
        .secrets
        .previous_master_key_files
        .iter()
        .map(|p| read_key_file(p, "secrets.previous_master_key_files"))
        .collect::<Result<Vec<_>, _>>()?;
    let current = match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => {
            let decoded = base64_32(value).ok_or_else(|| {
                keys_err(format!(
                    "{MASTER_KEY_ENV} is not base64 of exactly 32 bytes; generate one with \
                     `head -c 32 /dev/urandom | base64`"
                ))
            })?;
            MasterKey::from_bytes(&decoded, MASTER_KEY_ENV).map_err(|e| keys_err(e.to_string()))?
        }
        None => {
            let path = config.master_key_file();
            if config.secrets.master_key_file.is_none() && !path.exists() {
                return Ok(None);
            }
            read_key_file(&path, "secrets.master_key_file")?
        }
    };
    Ok(Some(SecretKeys::new(current, previous)))
}

fn base64_32(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let decoded = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()?;
    (decoded.len() == lexecon_auth::MASTER_KEY_BYTES).then_some(decoded)
}

/// Creates `path` with 32 random bytes at mode 0600 (never wider, not even briefly).
pub fn create_key_file(path: &Path) -> Result<MasterKey, EngineError> {
    let key = MasterKey::generate().map_err(|e| keys_err(e.to_string()))?;
    crate::init::write_secret_file(path, &key).map_err(|e| {
        keys_err(format!(
            "cannot create the master key file {}: {e}",
            path.display()
        ))
    })?;
    MasterKey::from_bytes(&key, &path.display().to_string()).map_err(|e| keys_err(e.to_string()))
}

/// The keys for a start on `db`, reading `LEXECON_MASTER_KEY` from the environment;
/// seals any plaintext seed left from before encryption at rest.
pub async fn open_keys(config: &Config, db: &Database) -> Result<Arc<SecretKeys>, EngineError> {
    let env = std::env::var(MASTER_KEY_ENV).ok();
    open_keys_with(config, db, env.as_deref()).await
}

/// [`open_keys`] with the variable's value given.
pub async fn open_keys_with(
    config: &Config,
    db: &Database,
    env: Option<&str>,
) -> Result<Arc<SecretKeys>, EngineError> {
    let store_err = |e: lexecon_auth::StoreError| keys_err(e.to_string());
    let keys = match configured_keys(config, env)? {
        Some(keys) => keys,
        None => {
            let census = match db {
                Database::Sqlite(pool) => SqliteAuthStore::secrets_census(pool).await,
                Database::Postgres(pool) => PgAuthStore::secrets_census(pool).await,
            }
            .map_err(store_err)?;
            let path = config.master_key_file();
            if census.sealed() > 0 {
                let ids: Vec<&str> = census.by_key.keys().map(String::as_str).collect();
                return Err(keys_err(format!(
                    "no master key: {} is missing and {MASTER_KEY_ENV} is unset, but the database \
                     holds {} encrypted TOTP seed(s) under master key {}; restore the key file \
                     from your backup (mode 0600), or set {MASTER_KEY_ENV} or \
                     secrets.master_key_file to it. A new key would not decrypt them",
                    path.display(),
                    census.sealed(),
                    ids.join(", ")
                )));
            }
            if matches!(db, Database::Postgres(_)) {
                return Err(keys_err(format!(
                    "no master key: {} is missing and {MASTER_KEY_ENV} is unset. With \
                     PostgreSQL every replica must use the same key, so none is made here: \
                     create one with `(umask 077; head -c 32 /dev/urandom > {})` and copy it to \
                     every replica, or set {MASTER_KEY_ENV} (`head -c 32 /dev/urandom | base64`)",
                    path.display(),
                    path.display()
                )));
            }
            let key = create_key_file(&path)?;
            tracing::warn!(
                file = %path.display(),
                key_id = %key.id(),
                "created the master key for secrets at rest (this data directory predates it); \
                 back it up apart from the database"
            );
            SecretKeys::new(key, Vec::new())
        }
    };
    let keys = Arc::new(keys);
    let sealed = match db {
        Database::Sqlite(pool) => {
            SqliteAuthStore::new(pool.clone(), Arc::clone(&keys))
                .seal_legacy_secrets()
                .await
        }
        Database::Postgres(pool) => {
            PgAuthStore::new(pool.clone(), Arc::clone(&keys))
                .seal_legacy_secrets()
                .await
        }
    }
    .map_err(store_err)?;
    if sealed > 0 {
        tracing::info!(
            seeds = sealed,
            key_id = %keys.current().id(),
            "encrypted TOTP seeds stored in the clear by an earlier version"
        );
    }
    Ok(keys)
}

/// What `lexecon secrets rotate` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretsRotation {
    /// The key every secret is now sealed under.
    pub key_id: String,
    /// Where that key came from (a file or `LEXECON_MASTER_KEY`).
    pub key_source: String,
    /// The other keys that were accepted for decryption.
    pub previous_key_ids: Vec<String>,
    /// Secrets re-encrypted (all of them, in one transaction).
    pub reencrypted: u64,
    /// How many of those had been under another key (or in the clear).
    pub moved_from_other_keys: u64,
    /// The ledger index of the `secrets_rotated` entry.
    pub ledger_index: u64,
}

/// The keys a rotation uses: `new_key` (when given) becomes current and every
/// configured key only decrypts; otherwise the configured keys as they are.
pub fn rotation_keys(
    config: &Config,
    env: Option<&str>,
    new_key: Option<MasterKey>,
) -> Result<SecretKeys, EngineError> {
    let configured = configured_keys(config, env)?;
    match (new_key, configured) {
        (Some(new), Some(old)) => {
            let mut previous = vec![old.current().clone()];
            previous.extend(old.previous().iter().cloned());
            previous.retain(|k| k.id() != new.id());
            Ok(SecretKeys::new(new, previous))
        }
        (Some(new), None) => Ok(SecretKeys::new(new, Vec::new())),
        (None, Some(keys)) => Ok(keys),
        (None, None) => Err(keys_err(format!(
            "no master key: {} is missing and {MASTER_KEY_ENV} is unset; pass --new-key-file, \
             or restore the key file",
            config.master_key_file().display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "a test")]

    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused_naming_file_and_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        create_key_file(&path).unwrap();
        read_key_file(&path, "secrets.master_key_file").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = read_key_file(&path, "secrets.master_key_file")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(err.contains("0644"), "{err}");
        }
    }

    /// A row of `auth_mfa` as stored, for user `usr_legacy`.
    async fn raw_seed(db: &Database) -> Vec<u8> {
        let Database::Sqlite(pool) = db else {
            panic!("sqlite expected")
        };
        sqlx::query_scalar("SELECT totp_secret FROM auth_mfa WHERE user_id = 'usr_legacy'")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn init_key_legacy_seeds_missing_and_wrong_keys_and_rotation() {
        let _env = crate::TEST_ENV_LOCK.lock().await;
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            eprintln!("{MASTER_KEY_ENV} is set in this environment; this test needs it unset");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let clock: Arc<dyn lexecon_core::Clock> = Arc::new(lexecon_core::ManualClock::new(
            lexecon_core::Timestamp::from_unix_secs(1_790_000_000),
        ));
        crate::init::init(
            &crate::init::InitOptions {
                data_dir: dir.clone(),
                node_id: "n1".to_owned(),
                rsa: false,
                force: false,
            },
            Arc::clone(&clock),
        )
        .await
        .unwrap();
        let key_file = dir.join("master.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "init writes master.key at 0600");
        }
        assert_eq!(std::fs::read(&key_file).unwrap().len(), 32);
        let config = config_in(&dir);
        let db = Database::connect(&config.database_url(), 2).await.unwrap();

        // An older data directory: no master.key, a seed in the clear.
        let seed = [0x33u8; 20];
        {
            let Database::Sqlite(pool) = &db else {
                panic!("sqlite expected")
            };
            sqlx::query(
                "INSERT INTO auth_users (id, username, password_hash, role, created_at, \
                 failed_logins, locked_until, mfa_enabled) \
                 VALUES ('usr_legacy', 'legacy', NULL, 'viewer', 0, 0, NULL, 1)",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO auth_mfa (user_id, totp_secret, last_used_step, enrolled_at) \
                 VALUES ('usr_legacy', $1, NULL, 0)",
            )
            .bind(&seed[..])
            .execute(pool)
            .await
            .unwrap();
        }
        std::fs::remove_file(&key_file).unwrap();
        let keys = open_keys_with(&config, &db, None).await.unwrap();
        assert!(key_file.is_file(), "an older SQLite data dir gets a key");
        let first = keys.current().id();
        let sealed = raw_seed(&db).await;
        assert_eq!(
            lexecon_auth::stored_form(&sealed),
            lexecon_auth::StoredForm::Sealed(first.clone())
        );
        // Idempotent.
        open_keys_with(&config, &db, None).await.unwrap();
        assert_eq!(raw_seed(&db).await, sealed);

        // Missing key with sealed seeds: refused, never replaced.
        let kept = tmp.path().join("first.key");
        std::fs::rename(&key_file, &kept).unwrap();
        let err = open_keys_with(&config, &db, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&first) && err.contains("restore"), "{err}");
        assert!(!key_file.exists(), "no new key made over sealed seeds");

        // A different key: the error names the missing key id and what to do.
        create_key_file(&key_file).unwrap();
        let err = open_keys_with(&config, &db, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&first), "{err}");
        assert!(err.contains("secrets.previous_master_key_files"), "{err}");
        assert!(!err.contains(&hex::encode(seed)), "{err}");

        // Rotation: the new key current, the first one previous.
        let mut rotating = config.clone();
        rotating.secrets.previous_master_key_files = vec![kept.clone()];
        db.close().await;
        let engine = crate::Engine::open_local(rotating, Arc::clone(&clock))
            .await
            .unwrap();
        let done = engine
            .rotate_secrets(&crate::Caller::local(), None)
            .await
            .unwrap();
        engine.shutdown().await.unwrap();
        assert_eq!((done.reencrypted, done.moved_from_other_keys), (1, 1));
        assert_eq!(done.previous_key_ids, vec![first.clone()]);
        assert_ne!(done.key_id, first);
        assert!(done.ledger_index > 0);

        // The first key is no longer needed.
        let db = Database::connect(&config.database_url(), 2).await.unwrap();
        let keys = open_keys_with(&config, &db, None).await.unwrap();
        let rotated = raw_seed(&db).await;
        assert_eq!(
            lexecon_auth::stored_form(&rotated),
            lexecon_auth::StoredForm::Sealed(done.key_id.clone())
        );
        assert_ne!(rotated, sealed);
        let open = keys
            .open("lexecon/totp_seed/v1", "usr_legacy", &rotated, &String::new)
            .unwrap();
        assert_eq!(open, seed);
        db.close().await;

        // A key file readable by others stops the start.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = crate::Engine::open_local(config.clone(), clock)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("chmod 600") && err.contains("master.key"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn postgres_without_a_key_is_refused_not_given_a_per_replica_key() {
        let Some(pg) = lexecon_testkit::PgDatabase::create().await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config_in(tmp.path());
        config.database.url = Some(pg.url.clone());
        let db = Database::connect(&pg.url, 2).await.unwrap();
        crate::migrate_all(&db).await.unwrap();
        let err = open_keys_with(&config, &db, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("every replica"), "{err}");
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
        assert!(!tmp.path().join("master.key").exists());
        // With the key in the environment variable it opens.
        let value = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="; // 32 x 0x02
        let keys = open_keys_with(&config, &db, Some(value)).await.unwrap();
        assert_eq!(keys.current().source_name(), MASTER_KEY_ENV);
        db.close().await;
    }

    #[test]
    fn env_overrides_the_file_and_bad_values_name_the_variable_not_the_value() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config_in(tmp.path());
        assert!(configured_keys(&config, None).unwrap().is_none());
        let value = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 x 0x01
        let keys = configured_keys(&config, Some(value)).unwrap().unwrap();
        assert_eq!(
            keys.current().id(),
            MasterKey::from_bytes(&[1u8; 32], "x").unwrap().id()
        );
        assert_eq!(keys.current().source_name(), MASTER_KEY_ENV);
        let err = configured_keys(&config, Some("c2hvcnQ="))
            .unwrap_err()
            .to_string();
        assert!(err.contains(MASTER_KEY_ENV), "{err}");
        assert!(!err.contains("c2hvcnQ="), "{err}");
        // An explicitly configured file that is missing is an error, not "no key".
        let mut explicit = config.clone();
        explicit.secrets.master_key_file = Some(tmp.path().join("nope.key"));
        let err = configured_keys(&explicit, None).unwrap_err().to_string();
        assert!(err.contains("nope.key"), "{err}");
    }
}
