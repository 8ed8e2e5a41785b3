//! Secrets at rest: TOTP seeds are sealed under the master key in SQLite and PostgreSQL
//! (`LEXECON_TEST_DATABASE_URL`, a fresh database per test); MFA survives a restart;
//! a wrong or missing key is a clear error without the secret; rotation re-encrypts
//! every seed; plaintext seeds from older databases are sealed on open.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test: failing loudly is the point"
)]

use std::path::PathBuf;
use std::sync::Arc;

use lexecon_auth::*;
use lexecon_core::{Clock as _, ManualClock, Timestamp};

const START: i64 = 1_790_000_000;
const PASSWORD: &str = "correct horse battery staple";

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32], &format!("key file {byte}")).unwrap()
}

fn keys(current: u8, previous: &[u8]) -> Arc<SecretKeys> {
    Arc::new(SecretKeys::new(
        key(current),
        previous.iter().map(|b| key(*b)).collect(),
    ))
}

/// The database under test; every `store` call is a fresh "process" on it.
enum Backend {
    Sqlite {
        _tmp: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(lexecon_testkit::PgDatabase),
}

/// One node's store, with the inherent (non-trait) secrets operations.
enum Store {
    Sqlite(SqliteAuthStore, sqlx::SqlitePool),
    Postgres(PgAuthStore, sqlx::PgPool),
}

impl Backend {
    async fn sqlite() -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lexecon.db");
        Backend::Sqlite { _tmp: tmp, path }
    }

    async fn postgres() -> Option<Backend> {
        lexecon_testkit::PgDatabase::create()
            .await
            .map(Backend::Postgres)
    }

    async fn store(&self, keys: Arc<SecretKeys>) -> Store {
        match self {
            Backend::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                SqliteAuthStore::migrate(&pool).await.unwrap();
                Store::Sqlite(SqliteAuthStore::new(pool.clone(), keys), pool)
            }
            Backend::Postgres(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                PgAuthStore::migrate(&pool).await.unwrap();
                Store::Postgres(PgAuthStore::new(pool.clone(), keys), pool)
            }
        }
    }
}

impl Store {
    fn service(&self, clock: &ManualClock) -> AuthService {
        let store: Arc<dyn AuthStore> = match self {
            Store::Sqlite(s, _) => Arc::new(s.clone()),
            Store::Postgres(s, _) => Arc::new(s.clone()),
        };
        let config = AuthConfig {
            password: PasswordParams::INSECURE_FOR_TESTS,
            ..AuthConfig::default()
        };
        AuthService::new(store, Arc::new(clock.clone()), config)
    }

    async fn seal_legacy(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s, _) => s.seal_legacy_secrets().await,
            Store::Postgres(s, _) => s.seal_legacy_secrets().await,
        }
    }

    async fn reseal(&self) -> Result<(u64, u64), StoreError> {
        match self {
            Store::Sqlite(s, _) => s.reseal_secrets().await,
            Store::Postgres(s, _) => s.reseal_secrets().await,
        }
    }

    async fn census(&self) -> SecretsCensus {
        match self {
            Store::Sqlite(_, pool) => SqliteAuthStore::secrets_census(pool).await.unwrap(),
            Store::Postgres(_, pool) => PgAuthStore::secrets_census(pool).await.unwrap(),
        }
    }

    /// The `auth_mfa.totp_secret` column as stored.
    async fn raw_seed(&self, user_id: &str) -> Vec<u8> {
        let sql = "SELECT totp_secret FROM auth_mfa WHERE user_id = $1";
        match self {
            Store::Sqlite(_, pool) => sqlx::query_scalar(sql)
                .bind(user_id)
                .fetch_one(pool)
                .await
                .unwrap(),
            Store::Postgres(_, pool) => sqlx::query_scalar(sql)
                .bind(user_id)
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    }

    /// Writes `auth_mfa.totp_secret` as given and marks MFA enrolled (what a database
    /// from before encryption at rest, or a tampered row, holds).
    async fn write_raw_seed(&self, user_id: &str, seed: &[u8]) {
        let upsert = "INSERT INTO auth_mfa (user_id, totp_secret, last_used_step, enrolled_at) \
                      VALUES ($1, $2, NULL, 0) ON CONFLICT (user_id) DO UPDATE SET \
                      totp_secret = excluded.totp_secret";
        let enable = "UPDATE auth_users SET mfa_enabled = 1 WHERE id = $1";
        match self {
            Store::Sqlite(_, pool) => {
                sqlx::query(upsert)
                    .bind(user_id)
                    .bind(seed)
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query(enable)
                    .bind(user_id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Store::Postgres(_, pool) => {
                sqlx::query(upsert)
                    .bind(user_id)
                    .bind(seed)
                    .execute(pool)
                    .await
                    .unwrap();
                sqlx::query(enable)
                    .bind(user_id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    async fn close(self) {
        match self {
            Store::Sqlite(_, pool) => pool.close().await,
            Store::Postgres(_, pool) => pool.close().await,
        }
    }
}

fn code(clock: &ManualClock, seed: &[u8]) -> String {
    totp::code_at_step(seed, totp::step_at(clock.now().unix_secs()), 6)
}

/// Logs in with the password and answers the MFA challenge with the current code.
async fn mfa_login(
    service: &AuthService,
    clock: &ManualClock,
    user: &str,
    seed: &[u8],
) -> Result<Session, AuthError> {
    let LoginOutcome::MfaRequired { challenge } = service.login(user, PASSWORD).await? else {
        panic!("expected an MFA challenge for {user}");
    };
    service
        .verify_mfa(challenge.expose(), &code(clock, seed))
        .await
}

fn assert_no_seed(message: &str, seed: &[u8]) {
    let base32 = data_encoding::BASE32_NOPAD.encode(seed);
    assert!(!message.contains(&base32), "seed (base32) in: {message}");
    assert!(
        !message.contains(&hex::encode(seed)),
        "seed (hex) in: {message}"
    );
    assert!(
        !message.contains(&format!("{seed:?}")),
        "seed (bytes) in: {message}"
    );
}

/// Enrolls `user` (an admin) and returns their id and seed.
async fn enroll(service: &AuthService, user: &str) -> (String, Vec<u8>) {
    let created = service
        .create_user(user, PASSWORD, Role::Admin)
        .await
        .unwrap();
    let LoginOutcome::Session(session) = service.login(user, PASSWORD).await.unwrap() else {
        panic!("expected a session before enrollment");
    };
    let principal = service.authenticate(session.token.expose()).await.unwrap();
    let enrollment = service.enroll_mfa(&principal).await.unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.expose().as_bytes())
        .unwrap();
    (created.user_id, seed)
}

async fn seeds_are_sealed_and_survive_restart_and_rotation(b: &Backend) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(START));
    let node = b.store(keys(1, &[])).await;
    let (alice, seed) = enroll(&node.service(&clock), "alice").await;

    // At rest: not the plaintext, sealed under key 1.
    let raw = node.raw_seed(&alice).await;
    assert_ne!(raw, seed);
    assert!(!raw.windows(seed.len()).any(|w| w == seed.as_slice()));
    assert_eq!(stored_form(&raw), StoredForm::Sealed(key(1).id()));
    assert_eq!(node.census().await.by_key.get(&key(1).id()), Some(&1));
    node.close().await;

    // A restart with the same key: MFA verifies.
    let node = b.store(keys(1, &[])).await;
    assert_eq!(node.seal_legacy().await.unwrap(), 0);
    mfa_login(&node.service(&clock), &clock, "alice", &seed)
        .await
        .unwrap();
    node.close().await;

    // The wrong key: a clear error at open and at login, naming the key id, not the seed.
    clock.advance_secs(30);
    let wrong = b.store(keys(2, &[])).await;
    let err = wrong.seal_legacy().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&key(1).id()), "{msg}");
    assert!(msg.contains(&alice), "{msg}");
    assert!(msg.contains("secrets.previous_master_key_files"), "{msg}");
    assert_no_seed(&msg, &seed);
    assert_no_seed(&format!("{err:?}"), &seed);
    let err = mfa_login(&wrong.service(&clock), &clock, "alice", &seed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&key(1).id()), "{err}");
    assert_no_seed(&err.to_string(), &seed);
    // A failed rotation changes nothing.
    assert!(wrong.reseal().await.is_err());
    assert_eq!(wrong.raw_seed(&alice).await, raw);
    wrong.close().await;

    // Rotation to key 2 with key 1 as a previous key: every seed re-encrypted.
    let rotating = b.store(keys(2, &[1])).await;
    assert_eq!(rotating.reseal().await.unwrap(), (1, 1));
    let rotated = rotating.raw_seed(&alice).await;
    assert_ne!(rotated, raw);
    assert_eq!(stored_form(&rotated), StoredForm::Sealed(key(2).id()));
    // Again: re-encrypted (fresh nonce), none moved between keys.
    assert_eq!(rotating.reseal().await.unwrap(), (1, 0));
    rotating.close().await;

    // Key 1 is no longer needed.
    clock.advance_secs(30);
    let node = b.store(keys(2, &[])).await;
    assert_eq!(node.seal_legacy().await.unwrap(), 0);
    mfa_login(&node.service(&clock), &clock, "alice", &seed)
        .await
        .unwrap();
    node.close().await;
}

async fn legacy_plaintext_seeds_are_sealed_on_open(b: &Backend) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(START));
    let node = b.store(keys(3, &[])).await;
    let service = node.service(&clock);
    let bob = service
        .create_user("bob", PASSWORD, Role::Viewer)
        .await
        .unwrap()
        .user_id;
    let seed = [0x5au8; totp::SECRET_BYTES];
    node.write_raw_seed(&bob, &seed).await;
    assert_eq!(node.census().await.plaintext, 1);

    // Opening seals it, once.
    assert_eq!(node.seal_legacy().await.unwrap(), 1);
    assert_eq!(node.seal_legacy().await.unwrap(), 0);
    let raw = node.raw_seed(&bob).await;
    assert_eq!(stored_form(&raw), StoredForm::Sealed(key(3).id()));
    assert!(!raw.windows(seed.len()).any(|w| w == seed));
    let census = node.census().await;
    assert_eq!((census.plaintext, census.sealed()), (0, 1));
    mfa_login(&service, &clock, "bob", &seed).await.unwrap();

    // A sealed seed copied onto another user's row does not open (associated data).
    clock.advance_secs(30);
    let (_alice, _) = enroll(&service, "alice").await;
    let alice_id = service_user_id(&node, "alice").await;
    let alices = node.raw_seed(&alice_id).await;
    node.write_raw_seed(&bob, &alices).await;
    let err = mfa_login(&service, &clock, "bob", &seed).await.unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    node.close().await;
}

async fn service_user_id(store: &Store, name: &str) -> String {
    let sql = "SELECT id FROM auth_users WHERE username = $1";
    match store {
        Store::Sqlite(_, pool) => sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Postgres(_, pool) => sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(b) = super::Backend::postgres().await else { return };
                    super::$name(&b).await;
                }
            )*
        }
    };
}

both!(
    seeds_are_sealed_and_survive_restart_and_rotation,
    legacy_plaintext_seeds_are_sealed_on_open,
);
