//! Behaviour of the auth service through its public API: one suite run against the
//! SQLite store (temp dir) and the PostgreSQL store (`LEXECON_TEST_DATABASE_URL`),
//! including API keys' actor bindings seen by one node and by two sharing a database,
//! plus OIDC ID-token validation with keys made in the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test: failing loudly is the point"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use lexecon_auth::*;
use lexecon_core::{Clock as _, ManualClock, Timestamp};
use serde_json::json;

const START: i64 = 1_790_000_000; // 2026-09-21
const PASSWORD: &str = "correct horse battery staple";

struct Harness {
    service: AuthService,
    store: Arc<dyn AuthStore>,
    clock: ManualClock,
    db: Db,
    _tmp: Option<tempfile::TempDir>,
    _pg: Option<lexecon_testkit::PgDatabase>,
}

/// The database under test, for a second node's own connections and for writing rows
/// the service would not write (keys from before bindings, damaged values).
enum Db {
    Sqlite(sqlx::SqlitePool, PathBuf),
    Postgres(sqlx::PgPool, String),
}

async fn sqlite_pool(path: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(opts)
        .await
        .unwrap()
}

/// The master key TOTP seeds are sealed with in these tests.
fn master_keys() -> Arc<SecretKeys> {
    Arc::new(SecretKeys::new(
        MasterKey::from_bytes(&[42u8; 32], "test key").unwrap(),
        vec![],
    ))
}

fn test_config() -> AuthConfig {
    AuthConfig {
        password: PasswordParams::INSECURE_FOR_TESTS,
        ..AuthConfig::default()
    }
}

impl Harness {
    async fn sqlite() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lexecon.db");
        let pool = sqlite_pool(&path).await;
        SqliteAuthStore::migrate(&pool).await.unwrap();
        // Migrating twice is harmless (the engine migrates on every start).
        SqliteAuthStore::migrate(&pool).await.unwrap();
        Self::with_store(
            Arc::new(SqliteAuthStore::new(pool.clone(), master_keys())),
            Db::Sqlite(pool, path),
            Some(tmp),
            None,
        )
    }

    async fn postgres() -> Option<Harness> {
        let db = lexecon_testkit::PgDatabase::create().await?;
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        PgAuthStore::migrate(&pool).await.unwrap();
        PgAuthStore::migrate(&pool).await.unwrap();
        Some(Self::with_store(
            Arc::new(PgAuthStore::new(pool.clone(), master_keys())),
            Db::Postgres(pool, db.url.clone()),
            None,
            Some(db),
        ))
    }

    fn with_store(
        store: Arc<dyn AuthStore>,
        db: Db,
        tmp: Option<tempfile::TempDir>,
        pg: Option<lexecon_testkit::PgDatabase>,
    ) -> Harness {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        let mut config = test_config();
        config.oidc_providers = vec![oidc_provider(&TestKeys::get().jwks().to_string())];
        let service = AuthService::new(Arc::clone(&store), Arc::new(clock.clone()), config);
        Harness {
            service,
            store,
            clock,
            db,
            _tmp: tmp,
            _pg: pg,
        }
    }

    /// Another node on the same database: its own connections, cache and clock (which
    /// starts where this harness's clock is and moves only when told).
    async fn other_node(&self) -> (AuthService, ManualClock) {
        let store: Arc<dyn AuthStore> = match &self.db {
            Db::Sqlite(_, path) => {
                Arc::new(SqliteAuthStore::new(sqlite_pool(path).await, master_keys()))
            }
            Db::Postgres(_, url) => Arc::new(PgAuthStore::new(
                sqlx::PgPool::connect(url).await.unwrap(),
                master_keys(),
            )),
        };
        let clock = ManualClock::new(self.clock.now());
        let service = AuthService::new(store, Arc::new(clock.clone()), test_config());
        (service, clock)
    }

    /// Runs one statement with `$1` bound to `arg` (the same SQL works in both).
    async fn exec(&self, sql: &str, arg: &str) {
        match &self.db {
            Db::Sqlite(pool, _) => {
                sqlx::query(sql).bind(arg).execute(pool).await.unwrap();
            }
            Db::Postgres(pool, _) => {
                sqlx::query(sql).bind(arg).execute(pool).await.unwrap();
            }
        }
    }

    async fn session(&self, username: &str) -> Session {
        match self.service.login(username, PASSWORD).await.unwrap() {
            LoginOutcome::Session(s) => s,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    async fn challenge(&self, username: &str) -> SecretString {
        match self.service.login(username, PASSWORD).await.unwrap() {
            LoginOutcome::MfaRequired { challenge } => challenge,
            other => panic!("expected an mfa challenge, got {other:?}"),
        }
    }

    fn totp_now(&self, secret_base32: &str, step_offset: i64) -> String {
        let secret = data_encoding::BASE32_NOPAD
            .decode(secret_base32.as_bytes())
            .unwrap();
        let step = totp::step_at(self.clock.now().unix_secs()) + step_offset;
        totp::code_at_step(&secret, step, 6)
    }

    /// A 6-digit code that matches no step within the drift window.
    fn wrong_code(&self, secret_base32: &str) -> String {
        let window: Vec<String> = (-1..=1).map(|o| self.totp_now(secret_base32, o)).collect();
        (0..4u32)
            .map(|i| format!("{:06}", 111_111 * (i + 1)))
            .find(|c| !window.contains(c))
            .unwrap()
    }
}

/// Asserts that neither the message nor the Debug of `err` contains `secret`.
fn assert_no_secret(err: &AuthError, secret: &str) {
    assert!(
        !err.to_string().contains(secret),
        "secret in message: {err}"
    );
    assert!(
        !format!("{err:?}").contains(secret),
        "secret in debug: {err:?}"
    );
}

async fn users_and_passwords(h: &Harness) {
    let created = h
        .service
        .create_user("alice", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    assert!(created.user_id.starts_with("usr_"));
    assert!(!created.mfa_required);
    let err = h
        .service
        .create_user("alice", PASSWORD, Role::Auditor)
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");

    let check_invalid = |result: Result<CreatedUser, AuthError>, field: &str| {
        let err = result.unwrap_err();
        assert!(err.is_invalid_argument(), "{err}");
        assert!(
            err.to_string().starts_with(&format!("invalid {field}")),
            "{err}"
        );
    };
    check_invalid(
        h.service.create_user("bob", "short", Role::Viewer).await,
        "password",
    );
    check_invalid(
        h.service
            .create_user("bad name", PASSWORD, Role::Viewer)
            .await,
        "username",
    );
    check_invalid(
        h.service.create_user("a:b", PASSWORD, Role::Viewer).await,
        "username",
    );
    check_invalid(
        h.service.create_user("", PASSWORD, Role::Viewer).await,
        "username",
    );
    check_invalid(
        h.service.create_user("svc", PASSWORD, Role::Agent).await,
        "role",
    );

    let session = h.session("alice").await;
    assert!(session.token.expose().starts_with("lxs_"));
    assert_eq!(
        session.expires_at,
        Timestamp::from_unix_secs(START + 12 * 3600)
    );
    assert_eq!(session.idle_timeout_secs, 900);
    let me = h
        .service
        .authenticate(session.token.expose())
        .await
        .unwrap();
    assert_eq!(
        me,
        Principal {
            kind: PrincipalKind::User,
            id: created.user_id,
            name: "alice".into(),
            role: Role::Viewer,
            mfa_verified: false,
            actors: None,
            llm_roles: Arc::default(),
            created_by: None,
        }
    );
    h.service
        .authorize(&me, "/lexecon.v1.LedgerService/GetEntries")
        .unwrap();
    let err = h
        .service
        .authorize(&me, "/lexecon.v1.PolicyService/LoadPolicy")
        .unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
}

async fn wrong_password_and_unknown_user_look_the_same(h: &Harness) {
    h.service
        .create_user("alice", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    let wrong = "not the right password";
    let e1 = h.service.login("alice", wrong).await.unwrap_err();
    let e2 = h.service.login("nobody", wrong).await.unwrap_err();
    for e in [&e1, &e2] {
        assert!(matches!(e, AuthError::InvalidCredentials), "{e}");
        assert!(e.is_unauthenticated());
        assert_no_secret(e, wrong);
    }
    assert_eq!(e1.to_string(), e2.to_string());
}

async fn lockout_after_five_failures_for_thirty_minutes(h: &Harness) {
    h.service
        .create_user("alice", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    for _ in 0..4 {
        let e = h
            .service
            .login("alice", "wrong password!!")
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials), "{e}");
    }
    // A success resets the count...
    h.session("alice").await;
    for _ in 0..4 {
        h.service
            .login("alice", "wrong password!!")
            .await
            .unwrap_err();
    }
    // ...so the lock comes at the fifth consecutive failure.
    let locked_at = Timestamp::from_unix_secs(START + 1800);
    let e = h
        .service
        .login("alice", "wrong password!!")
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::AccountLocked { until } if until == locked_at),
        "{e}"
    );
    let e = h.service.login("alice", PASSWORD).await.unwrap_err();
    assert!(
        matches!(e, AuthError::AccountLocked { .. }),
        "the right password is refused too: {e}"
    );
    assert!(e.is_unauthenticated());
    assert_no_secret(&e, PASSWORD);
    h.clock.advance_secs(1799);
    assert!(matches!(
        h.service.login("alice", PASSWORD).await,
        Err(AuthError::AccountLocked { .. })
    ));
    h.clock.advance_secs(1);
    h.session("alice").await;
}

async fn sessions_expire_idle_and_absolute_and_are_revocable(h: &Harness) {
    h.service
        .create_user("alice", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    // Idle timeout: 15 minutes without use.
    let s = h.session("alice").await;
    h.clock.advance_secs(14 * 60);
    h.service.authenticate(s.token.expose()).await.unwrap();
    h.clock.advance_secs(14 * 60);
    h.service.authenticate(s.token.expose()).await.unwrap();
    h.clock.advance_secs(15 * 60);
    let e = h.service.authenticate(s.token.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::SessionExpired), "{e}");
    assert!(e.is_unauthenticated());
    assert_no_secret(&e, s.token.expose());

    // Absolute lifetime: 12 hours even when used every 10 minutes.
    let s = h.session("alice").await;
    for _ in 0..(12 * 6 - 1) {
        h.clock.advance_secs(600);
        h.service.authenticate(s.token.expose()).await.unwrap();
    }
    h.clock.advance_secs(600);
    let e = h.service.authenticate(s.token.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::SessionExpired), "{e}");

    // Logout revokes at once; a second logout revokes nothing.
    let s = h.session("alice").await;
    assert!(h.service.logout(s.token.expose()).await.unwrap());
    let e = h.service.authenticate(s.token.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::SessionRevoked), "{e}");
    assert!(!h.service.logout(s.token.expose()).await.unwrap());
    assert!(h.service.purge_expired().await.unwrap() >= 1);
    let e = h.service.authenticate(s.token.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials), "purged: {e}");

    // Tokens that are not ours.
    for bad in ["lxs_forged", "lxk_forged", "Bearer x", "garbage"] {
        let e = h.service.authenticate(bad).await.unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials), "{bad}: {e}");
        assert_no_secret(&e, bad);
    }
    let e = h.service.authenticate("  ").await.unwrap_err();
    assert!(matches!(e, AuthError::MissingCredentials), "{e}");
}

async fn api_keys_expire_and_are_revocable(h: &Harness) {
    let key = h
        .service
        .create_api_key(agent_key("ci-agent", &["ai_agent:ci"]))
        .await
        .unwrap();
    assert!(key.api_key.expose().starts_with("lxk_"));
    assert!(key.key_id.starts_with("key_"));
    let p = h.service.authenticate(key.api_key.expose()).await.unwrap();
    assert_eq!(
        p,
        Principal {
            kind: PrincipalKind::ApiKey,
            id: key.key_id.clone(),
            name: "ci-agent".into(),
            role: Role::Agent,
            mfa_verified: false,
            actors: Some(Arc::new(
                ActorBinding::new(&["ai_agent:ci".to_owned()]).unwrap()
            )),
            llm_roles: Arc::default(),
            created_by: None,
        }
    );
    h.service
        .authorize(&p, "/lexecon.v1.DecisionService/Decide")
        .unwrap();
    let e = h
        .service
        .authorize(&p, "/lexecon.v1.AuthService/CreateApiKey")
        .unwrap_err();
    assert!(e.is_permission_denied(), "{e}");
    assert!(e.to_string().contains("role agent may not call"), "{e}");

    // An admin API key works without MFA (the node's admin.token).
    let admin = h
        .service
        .create_api_key(NewApiKey::new("admin", Role::Admin))
        .await
        .unwrap();
    assert_eq!(admin.actors, None);
    let p = h
        .service
        .authenticate(admin.api_key.expose())
        .await
        .unwrap();
    h.service
        .authorize(&p, "/lexecon.v1.AuthService/CreateApiKey")
        .unwrap();

    assert!(h.service.revoke_api_key(&key.key_id).await.unwrap());
    assert!(!h.service.revoke_api_key(&key.key_id).await.unwrap());
    assert!(!h.service.revoke_api_key("key_unknown").await.unwrap());
    let e = h
        .service
        .authenticate(key.api_key.expose())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyRevoked), "{e}");
    assert_no_secret(&e, key.api_key.expose());

    let expiring = h
        .service
        .create_api_key(NewApiKey {
            expires_at: Some(Timestamp::from_unix_secs(START + 60)),
            ..NewApiKey::new("short", Role::Viewer)
        })
        .await
        .unwrap();
    h.service
        .authenticate(expiring.api_key.expose())
        .await
        .unwrap();
    h.clock.advance_secs(60);
    let e = h
        .service
        .authenticate(expiring.api_key.expose())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyExpired), "{e}");
    assert!(e.is_unauthenticated());

    let e = h
        .service
        .create_api_key(NewApiKey {
            expires_at: Some(Timestamp::from_unix_secs(START)),
            ..NewApiKey::new("past", Role::Viewer)
        })
        .await
        .unwrap_err();
    assert!(e.is_invalid_argument(), "{e}");
    let e = h
        .service
        .create_api_key(NewApiKey::new(" ", Role::Viewer))
        .await
        .unwrap_err();
    assert!(e.is_invalid_argument(), "{e}");
}

async fn mfa_is_required_for_admins_and_cannot_be_skipped(h: &Harness) {
    let created = h
        .service
        .create_user("root", PASSWORD, Role::Admin)
        .await
        .unwrap();
    assert!(created.mfa_required);

    // Before enrollment: a session that can only enroll.
    let s = h.session("root").await;
    assert!(!s.mfa_verified);
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    assert!(!p.mfa_verified);
    let e = h
        .service
        .authorize(&p, "/lexecon.v1.PolicyService/LoadPolicy")
        .unwrap_err();
    assert!(
        matches!(e, AuthError::MfaEnrollmentRequired { role: Role::Admin }),
        "{e}"
    );
    assert!(e.is_permission_denied());
    h.service
        .authorize(&p, "/lexecon.v1.AuthService/EnrollMfa")
        .unwrap();
    let enrollment = h.service.enroll_mfa(&p).await.unwrap();
    assert_eq!(enrollment.backup_codes.len(), 10);
    assert!(
        enrollment
            .otpauth_uri
            .expose()
            .starts_with("otpauth://totp/Lexecon:root?secret=")
    );
    let secret = enrollment.secret_base32.expose().to_owned();
    assert_eq!(secret.len(), 32, "160-bit seed in base32");

    // Re-enrolling needs an MFA-verified session.
    let e = h.service.enroll_mfa(&p).await.unwrap_err();
    assert!(e.is_permission_denied(), "{e}");

    // After enrollment: login gives a challenge, never a session.
    let challenge = h.challenge("root").await;
    assert!(challenge.expose().starts_with("lxc_"));
    let wrong = h.wrong_code(&secret);
    let e = h
        .service
        .verify_mfa(challenge.expose(), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidMfaCode), "{e}");
    assert!(e.is_unauthenticated());
    let code = h.totp_now(&secret, 0);
    let s = h
        .service
        .verify_mfa(challenge.expose(), &code)
        .await
        .unwrap();
    assert!(s.mfa_verified);
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    assert!(p.mfa_verified);
    h.service
        .authorize(&p, "/lexecon.v1.PolicyService/LoadPolicy")
        .unwrap();

    // The challenge is single use.
    let e = h
        .service
        .verify_mfa(challenge.expose(), &h.totp_now(&secret, 1))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidMfaChallenge), "{e}");

    // Replay: the same code (same step) on a new challenge is refused.
    let c2 = h.challenge("root").await;
    let e = h.service.verify_mfa(c2.expose(), &code).await.unwrap_err();
    assert!(matches!(e, AuthError::MfaCodeReused), "{e}");
    // So is an earlier step within the drift window; the next step is accepted.
    let e = h
        .service
        .verify_mfa(c2.expose(), &h.totp_now(&secret, -1))
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::MfaCodeReused | AuthError::InvalidMfaCode),
        "{e}"
    );
    h.service
        .verify_mfa(c2.expose(), &h.totp_now(&secret, 1))
        .await
        .unwrap();

    // Two steps of drift is too much.
    h.clock.advance_secs(120);
    let c3 = h.challenge("root").await;
    let e = h
        .service
        .verify_mfa(c3.expose(), &h.totp_now(&secret, 2))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidMfaCode), "{e}");

    // Backup codes: each works once, in any case and with or without dashes.
    let backup = enrollment.backup_codes[0].expose().to_owned();
    let typed = backup.replace('-', " ").to_lowercase();
    h.service.verify_mfa(c3.expose(), &typed).await.unwrap();
    let c4 = h.challenge("root").await;
    let e = h
        .service
        .verify_mfa(c4.expose(), &backup)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::InvalidMfaCode),
        "reused backup code: {e}"
    );
    assert_no_secret(&e, &backup);
    h.service
        .verify_mfa(c4.expose(), enrollment.backup_codes[1].expose())
        .await
        .unwrap();

    // Challenges lapse after 5 minutes.
    let c5 = h.challenge("root").await;
    h.clock.advance_secs(301);
    let e = h
        .service
        .verify_mfa(c5.expose(), &h.totp_now(&secret, 0))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidMfaChallenge), "{e}");
    let e = h
        .service
        .verify_mfa("lxc_forged", "123456")
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidMfaChallenge), "{e}");
}

async fn wrong_mfa_codes_count_towards_lockout(h: &Harness) {
    h.service
        .create_user("officer", PASSWORD, Role::ComplianceOfficer)
        .await
        .unwrap();
    let s = h.session("officer").await;
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    let enrollment = h.service.enroll_mfa(&p).await.unwrap();
    let secret = enrollment.secret_base32.expose().to_owned();
    let bad = h.wrong_code(&secret);
    let c = h.challenge("officer").await;
    for _ in 0..4 {
        let e = h.service.verify_mfa(c.expose(), &bad).await.unwrap_err();
        assert!(matches!(e, AuthError::InvalidMfaCode), "{e}");
    }
    let e = h.service.verify_mfa(c.expose(), &bad).await.unwrap_err();
    assert!(matches!(e, AuthError::AccountLocked { .. }), "{e}");
    let e = h.service.login("officer", PASSWORD).await.unwrap_err();
    assert!(matches!(e, AuthError::AccountLocked { .. }), "{e}");
    h.clock.advance_secs(1800);
    let c = h.challenge("officer").await;
    h.service
        .verify_mfa(c.expose(), &h.totp_now(&secret, 0))
        .await
        .unwrap();
}

async fn viewer_may_opt_into_mfa(h: &Harness) {
    h.service
        .create_user("carol", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    let s = h.session("carol").await;
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    let enrollment = h.service.enroll_mfa(&p).await.unwrap();
    let c = h.challenge("carol").await;
    let s = h
        .service
        .verify_mfa(
            c.expose(),
            &h.totp_now(enrollment.secret_base32.expose(), 0),
        )
        .await
        .unwrap();
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    assert!(p.mfa_verified);
    // Re-enrolling from a verified session replaces the codes.
    let again = h.service.enroll_mfa(&p).await.unwrap();
    assert_ne!(again.secret_base32, enrollment.secret_base32);
    let c = h.challenge("carol").await;
    let e = h
        .service
        .verify_mfa(c.expose(), enrollment.backup_codes[2].expose())
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::InvalidMfaCode),
        "old backup codes are void: {e}"
    );
    h.service
        .verify_mfa(c.expose(), again.backup_codes[2].expose())
        .await
        .unwrap();
}

async fn oidc_exchange_gives_a_session_linked_by_subject(h: &Harness) {
    let keys = TestKeys::get();
    let now = START;
    let mut claims = good_claims(now);
    claims["groups"] = json!(["staff", "lexecon-auditors"]);
    let token = keys.sign_ed25519("ed", &claims);
    let (session, role) = h
        .service
        .exchange_oidc_token("test", &token, Some("n-0S6"))
        .await
        .unwrap();
    assert_eq!(role, Role::Auditor);
    let p = h
        .service
        .authenticate(session.token.expose())
        .await
        .unwrap();
    assert_eq!(p.name, "test:user-123");
    assert_eq!(p.role, Role::Auditor);
    assert!(!p.mfa_verified);

    // The same subject with another email is the same user; the role follows the claim.
    claims["email"] = json!("other@example.com");
    claims["groups"] = json!([]);
    let token = keys.sign_ed25519("ed", &claims);
    let (s2, role) = h
        .service
        .exchange_oidc_token("test", &token, None)
        .await
        .unwrap();
    assert_eq!(role, Role::Viewer);
    let p2 = h.service.authenticate(s2.token.expose()).await.unwrap();
    assert_eq!(p2.id, p.id);
    // A password login is impossible for an OIDC user.
    let e = h
        .service
        .login("test:user-123", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials), "{e}");

    let e = h
        .service
        .exchange_oidc_token("nope", &token, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::Oidc(OidcError::UnknownProvider(_))),
        "{e}"
    );
    assert!(e.is_unauthenticated());
    let names: Vec<_> = h.service.oidc_providers().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["test"]);
}

/// An agent key bound to `actors`.
fn agent_key(name: &str, actors: &[&str]) -> NewApiKey {
    NewApiKey {
        actors: strings(actors),
        ..NewApiKey::new(name, Role::Agent)
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The patterns of an API-key principal's binding (panics on a user or unbound key).
fn patterns(p: &Principal) -> Vec<String> {
    p.actors
        .as_deref()
        .expect("a bound key")
        .patterns()
        .to_vec()
}

async fn api_key_revoked_elsewhere_stops_working_within_the_cache_time(h: &Harness) {
    let ttl = h.service.config().api_key_cache_secs;
    assert_eq!(
        ttl, 2,
        "run-time state reaches every replica within 2 seconds"
    );
    let key = h
        .service
        .create_api_key(agent_key("agent", &["ai_agent:a"]))
        .await
        .unwrap();
    // This node has the key in its cache.
    h.service.authenticate(key.api_key.expose()).await.unwrap();
    // Another node sharing the database revokes the key: at once there.
    let (other, _) = h.other_node().await;
    other.authenticate(key.api_key.expose()).await.unwrap();
    assert!(other.revoke_api_key(&key.key_id).await.unwrap());
    let e = other.authenticate(key.api_key.expose()).await.unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyRevoked), "{e}");
    // This node may still remember the key as valid, but not once api_key_cache_secs
    // have passed on its clock.
    h.clock.advance_secs(ttl);
    let e = h
        .service
        .authenticate(key.api_key.expose())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyRevoked), "{e}");

    // Expiry is checked on every call, cached or not.
    let at = h.clock.now().add_secs(1);
    let expiring = h
        .service
        .create_api_key(NewApiKey {
            expires_at: Some(at),
            ..agent_key("exp", &["ai_agent:a"])
        })
        .await
        .unwrap();
    h.service
        .authenticate(expiring.api_key.expose())
        .await
        .unwrap();
    h.clock.advance_secs(1);
    let e = h
        .service
        .authenticate(expiring.api_key.expose())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyExpired), "{e}");
}

async fn api_key_binding_changed_elsewhere_takes_effect_within_the_cache_time(h: &Harness) {
    let ttl = h.service.config().api_key_cache_secs;
    let key = h
        .service
        .create_api_key(agent_key("support", &["ai_agent:support_bot"]))
        .await
        .unwrap();
    let token = key.api_key.expose();
    let p = h.service.authenticate(token).await.unwrap();
    assert!(p.actors.as_deref().unwrap().permits("ai_agent:support_bot"));

    let (other, other_clock) = h.other_node().await;
    other.authenticate(token).await.unwrap();
    assert!(
        other
            .set_api_key_binding(
                &key.key_id,
                strings(&["ai_agent:billing_*"]),
                strings(&["analyst"])
            )
            .await
            .unwrap()
    );
    // At once on the node that changed it.
    let p = other.authenticate(token).await.unwrap();
    assert_eq!(patterns(&p), ["ai_agent:billing_*"]);
    assert_eq!(&p.llm_roles[..], ["analyst"]);
    // On this node once api_key_cache_secs have passed on its clock.
    h.clock.advance_secs(ttl);
    let p = h.service.authenticate(token).await.unwrap();
    assert_eq!(patterns(&p), ["ai_agent:billing_*"]);
    assert!(!p.actors.as_deref().unwrap().permits("ai_agent:support_bot"));
    assert!(p.actors.as_deref().unwrap().permits("ai_agent:billing_bot"));
    assert_eq!(&p.llm_roles[..], ["analyst"]);

    // And the other way round: a revocation here reaches the other node within the
    // cache time of the other node's clock.
    other.authenticate(token).await.unwrap();
    assert!(h.service.revoke_api_key(&key.key_id).await.unwrap());
    other_clock.advance_secs(ttl);
    let e = other.authenticate(token).await.unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyRevoked), "{e}");
}

async fn api_key_bindings_round_trip_and_show_on_the_principal(h: &Harness) {
    let actors = strings(&["ai_agent:support_*", "ai_agent:triage"]);
    let llm_roles = strings(&["analyst", "support agent"]);
    let created = h
        .service
        .create_api_key(NewApiKey {
            actors: actors.clone(),
            llm_roles: llm_roles.clone(),
            ..NewApiKey::new("support", Role::Agent)
        })
        .await
        .unwrap();
    assert_eq!(created.actors.as_ref(), Some(&actors));
    assert_eq!(created.llm_roles, llm_roles);

    // What the store holds.
    let record = h
        .store
        .api_key_by_id(&created.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.actors.as_ref(), Some(&actors));
    assert_eq!(record.llm_roles, llm_roles);
    assert_eq!(record.name, "support");
    assert_eq!(h.store.api_key_by_id("key_unknown").await.unwrap(), None);
    let info = h
        .service
        .api_key_info(&created.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&info.name, info.role, &info.actors, &info.llm_roles),
        (
            &"support".to_owned(),
            Role::Agent,
            &Some(actors.clone()),
            &llm_roles
        )
    );
    assert_eq!(h.service.api_key_info("key_unknown").await.unwrap(), None);

    // On the principal: read from the store, from the cache, and with no cache.
    let uncached = AuthService::new(
        Arc::clone(&h.store),
        Arc::new(h.clock.clone()),
        AuthConfig {
            api_key_cache_secs: 0,
            ..test_config()
        },
    );
    for service in [&h.service, &h.service, &uncached] {
        let p = service
            .authenticate(created.api_key.expose())
            .await
            .unwrap();
        assert_eq!(patterns(&p), actors);
        let binding = p.actors.as_deref().unwrap();
        assert!(binding.permits("ai_agent:support_bot"));
        assert!(binding.permits("ai_agent:triage"));
        assert!(!binding.permits("ai_agent:Support_bot"));
        assert!(!binding.permits("ai_agent:support"));
        assert!(!binding.permits("ai_agent:triage2"));
        assert!(!binding.permits("admin:root"));
        assert_eq!(binding.sole_literal(), None);
        assert_eq!(&p.llm_roles[..], llm_roles);
        // Every principal, agent included, may ask who it is.
        service
            .authorize(&p, "/lexecon.v1.AuthService/WhoAmI")
            .unwrap();
        let e = service
            .authorize(&p, "/lexecon.v1.AuthService/SetApiKeyActors")
            .unwrap_err();
        assert!(e.is_permission_denied(), "{e}");
    }

    // One literal actor: a request that leaves the actor empty means that actor.
    let one = h
        .service
        .create_api_key(agent_key("bot", &["ai_agent:support_bot"]))
        .await
        .unwrap();
    let p = h.service.authenticate(one.api_key.expose()).await.unwrap();
    assert_eq!(
        p.actors.as_deref().unwrap().sole_literal(),
        Some("ai_agent:support_bot")
    );
    assert!(p.llm_roles.is_empty());

    // Other roles may be bound too; without actors they have no binding.
    let viewer = h
        .service
        .create_api_key(NewApiKey {
            actors: strings(&["ai_agent:*"]),
            ..NewApiKey::new("dashboard", Role::Viewer)
        })
        .await
        .unwrap();
    assert_eq!(viewer.actors, Some(strings(&["ai_agent:*"])));
    let p = h
        .service
        .authenticate(viewer.api_key.expose())
        .await
        .unwrap();
    assert_eq!(patterns(&p), ["ai_agent:*"]);
    let admin = h
        .service
        .create_api_key(NewApiKey::new("ops", Role::Admin))
        .await
        .unwrap();
    assert_eq!((admin.actors, admin.llm_roles), (None, Vec::new()));
    let p = h
        .service
        .authenticate(admin.api_key.expose())
        .await
        .unwrap();
    assert_eq!(p.actors, None);
    assert!(p.llm_roles.is_empty());
    h.service
        .authorize(&p, "/lexecon.v1.AuthService/SetApiKeyActors")
        .unwrap();
    // Users are bound to nothing.
    h.service
        .create_user("alice", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    let s = h.session("alice").await;
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    assert_eq!((p.actors, p.llm_roles.len()), (None, 0));
}

async fn api_key_bindings_are_checked_naming_the_field(h: &Harness) {
    fn refused<T: std::fmt::Debug>(result: Result<T, AuthError>, field: &str) -> String {
        let e = result.unwrap_err();
        assert!(e.is_invalid_argument(), "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("invalid {field}: ")), "{msg}");
        msg
    }
    let create = |new: NewApiKey| h.service.create_api_key(new);

    let msg = refused(create(NewApiKey::new("agent", Role::Agent)).await, "actors");
    assert!(
        msg.contains("an agent key must be bound to the actors it speaks for")
            && msg.contains("--actor"),
        "{msg}"
    );
    let msg = refused(
        create(agent_key("agent", &["ai_agent:ok", "ai agent:bad"])).await,
        "actors",
    );
    assert!(
        msg.contains(r#"pattern 1 ("ai agent:bad") is invalid"#),
        "{msg}"
    );
    let msg = refused(
        create(agent_key("agent", &["ai_agent:ok", ""])).await,
        "actors",
    );
    assert!(msg.contains("pattern 1"), "{msg}");
    let many: Vec<String> = (0..65).map(|i| format!("ai_agent:{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let msg = refused(create(agent_key("agent", &many)).await, "actors");
    assert!(msg.contains("at most 64"), "{msg}");
    // Refused for other roles too: a binding given is a binding checked.
    refused(
        create(NewApiKey {
            actors: strings(&["bad actor"]),
            ..NewApiKey::new("viewer", Role::Viewer)
        })
        .await,
        "actors",
    );
    for bad in [
        strings(&[""]),
        strings(&["a\nb"]),
        vec!["x".repeat(65)],
        (0..33).map(|i| format!("role{i}")).collect(),
    ] {
        refused(
            create(NewApiKey {
                llm_roles: bad,
                ..agent_key("agent", &["ai_agent:a"])
            })
            .await,
            "llm_roles",
        );
    }
    let ok = create(NewApiKey {
        llm_roles: vec!["x".repeat(64), "support agent".into()],
        ..agent_key("agent", &["ai_agent:a"])
    })
    .await
    .unwrap();
    assert_eq!(ok.llm_roles.len(), 2);

    // Changing a binding is checked the same way, and a refusal changes nothing.
    let set = |actors: &[&str], roles: &[&str]| {
        h.service
            .set_api_key_binding(&ok.key_id, strings(actors), strings(roles))
    };
    let msg = refused(set(&[], &[]).await, "actors");
    assert!(msg.contains("--actor"), "{msg}");
    let msg = refused(set(&["ai_agent:b", "a b"], &[]).await, "actors");
    assert!(msg.contains(r#"pattern 1 ("a b")"#), "{msg}");
    refused(set(&["ai_agent:b"], &[""]).await, "llm_roles");
    let p = h.service.authenticate(ok.api_key.expose()).await.unwrap();
    assert_eq!(patterns(&p), ["ai_agent:a"]);
    assert_eq!(p.llm_roles.len(), 2);

    // Unknown and revoked keys are not changed.
    assert!(
        !h.service
            .set_api_key_binding("key_unknown", strings(&["ai_agent:a"]), Vec::new())
            .await
            .unwrap()
    );
    assert!(h.service.revoke_api_key(&ok.key_id).await.unwrap());
    assert!(!set(&["ai_agent:b"], &[]).await.unwrap());
    let record = h.store.api_key_by_id(&ok.key_id).await.unwrap().unwrap();
    assert_eq!(record.actors, Some(strings(&["ai_agent:a"])));

    // A key of another role may lose its binding (stored as none).
    let viewer = create(NewApiKey {
        actors: strings(&["ai_agent:*"]),
        ..NewApiKey::new("viewer", Role::Viewer)
    })
    .await
    .unwrap();
    assert!(
        h.service
            .set_api_key_binding(&viewer.key_id, Vec::new(), strings(&["r"]))
            .await
            .unwrap()
    );
    let info = h
        .service
        .api_key_info(&viewer.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.actors, info.llm_roles), (None, strings(&["r"])));
}

async fn binding_changes_and_revocation_take_effect_at_once_on_this_node(h: &Harness) {
    assert!(h.service.config().api_key_cache_secs > 0, "the cache is on");
    let key = h
        .service
        .create_api_key(agent_key("support", &["ai_agent:support_bot"]))
        .await
        .unwrap();
    let token = key.api_key.expose();
    // Twice, so the second comes from the cache.
    for _ in 0..2 {
        let p = h.service.authenticate(token).await.unwrap();
        assert_eq!(patterns(&p), ["ai_agent:support_bot"]);
    }
    assert!(
        h.service
            .set_api_key_binding(
                &key.key_id,
                strings(&["ai_agent:billing_bot"]),
                strings(&["analyst"])
            )
            .await
            .unwrap()
    );
    // The clock has not moved: the cached principal must not be reused.
    let p = h.service.authenticate(token).await.unwrap();
    assert_eq!(patterns(&p), ["ai_agent:billing_bot"]);
    assert!(!p.actors.as_deref().unwrap().permits("ai_agent:support_bot"));
    assert_eq!(&p.llm_roles[..], ["analyst"]);
    assert!(h.service.revoke_api_key(&key.key_id).await.unwrap());
    let e = h.service.authenticate(token).await.unwrap_err();
    assert!(matches!(e, AuthError::ApiKeyRevoked), "{e}");
}

async fn keys_from_before_bindings_speak_for_no_actor(h: &Harness) {
    use sha2::Digest as _;
    // A row as written before migration 3002: the new columns take their defaults.
    let token = "lxk_a_key_created_before_bindings_existed";
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let sql = "INSERT INTO auth_api_keys (key_id, name, role, key_hash, created_at) \
               VALUES ('key_old', 'old', 'agent', $1, 0)";
    match &h.db {
        Db::Sqlite(pool, _) => {
            sqlx::query(sql)
                .bind(&hash[..])
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql)
                .bind(&hash[..])
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let record = h.store.api_key_by_id("key_old").await.unwrap().unwrap();
    assert_eq!((record.actors, record.llm_roles), (None, Vec::new()));
    let p = h.service.authenticate(token).await.unwrap();
    assert_eq!(
        (p.kind, p.name.as_str(), p.role),
        (PrincipalKind::ApiKey, "old", Role::Agent)
    );
    assert_eq!(p.actors, None);
    assert!(p.llm_roles.is_empty());

    // Binding it makes it speak for its actors.
    assert!(
        h.service
            .set_api_key_binding("key_old", strings(&["ai_agent:old_*"]), Vec::new())
            .await
            .unwrap()
    );
    let p = h.service.authenticate(token).await.unwrap();
    assert!(p.actors.as_deref().unwrap().permits("ai_agent:old_bot"));

    // A stored binding that does not compile (edited by hand) fails closed: the key
    // speaks for no actor.
    let ttl = h.service.config().api_key_cache_secs;
    h.exec(
        "UPDATE auth_api_keys SET actors = $1 WHERE key_id = 'key_old'",
        r#"["ai_agent:old_*", "not an actor"]"#,
    )
    .await;
    h.clock.advance_secs(ttl);
    let p = h.service.authenticate(token).await.unwrap();
    let binding = p.actors.as_deref().unwrap();
    assert!(binding.patterns().is_empty(), "{binding:?}");
    assert!(!binding.permits("ai_agent:old_bot"));
    assert_eq!(binding.sole_literal(), None);

    // A value that is not a JSON list is a damaged database, not a key to trust.
    h.exec(
        "UPDATE auth_api_keys SET actors = $1 WHERE key_id = 'key_old'",
        "{not json",
    )
    .await;
    h.clock.advance_secs(ttl);
    let e = h.service.authenticate(token).await.unwrap_err();
    assert!(
        matches!(e, AuthError::Store(StoreError::Corrupt("actors"))),
        "{e}"
    );
    assert!(!e.is_unauthenticated() && !e.is_permission_denied());
}

async fn api_keys_record_their_creator_and_older_keys_have_none(h: &Harness) {
    let made = h
        .service
        .create_api_key(NewApiKey {
            created_by: Some("user:root".into()),
            ..agent_key("made", &["ai_agent:made"])
        })
        .await
        .unwrap();
    let p = h.service.authenticate(made.api_key.expose()).await.unwrap();
    assert_eq!(p.created_by.as_deref(), Some("user:root"));
    let info = h.service.api_key_info(&made.key_id).await.unwrap().unwrap();
    assert_eq!(info.created_by.as_deref(), Some("user:root"));

    // A row written before migration 3003 has no creator.
    use sha2::Digest as _;
    let token = "lxk_a_key_created_before_creators_were_recorded";
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    let sql = "INSERT INTO auth_api_keys (key_id, name, role, key_hash, created_at, actors) \
               VALUES ('key_older', 'older', 'viewer', $1, 0, NULL)";
    match &h.db {
        Db::Sqlite(pool, _) => {
            sqlx::query(sql)
                .bind(&hash[..])
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Postgres(pool, _) => {
            sqlx::query(sql)
                .bind(&hash[..])
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let p = h.service.authenticate(token).await.unwrap();
    assert_eq!((p.name.as_str(), p.created_by), ("older", None));
    let users = h
        .service
        .create_user("bob", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    assert!(!users.user_id.is_empty());
    let s = h.session("bob").await;
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    assert_eq!(p.created_by, None, "users have no key creator");
}

async fn concurrent_use_of_one_code_succeeds_once(h: &Harness) {
    h.service
        .create_user("root", PASSWORD, Role::Admin)
        .await
        .unwrap();
    let s = h.session("root").await;
    let p = h.service.authenticate(s.token.expose()).await.unwrap();
    let enrollment = h.service.enroll_mfa(&p).await.unwrap();
    let secret = enrollment.secret_base32.expose().to_owned();
    for code in [
        h.totp_now(&secret, 0),
        enrollment.backup_codes[0].expose().to_owned(),
    ] {
        let mut challenges = Vec::new();
        for _ in 0..4 {
            challenges.push(h.challenge("root").await);
        }
        let attempts = challenges
            .iter()
            .map(|c| h.service.verify_mfa(c.expose(), &code));
        let results = futures_join_all(attempts).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        for e in results.into_iter().filter_map(Result::err) {
            assert!(
                matches!(e, AuthError::MfaCodeReused | AuthError::InvalidMfaCode),
                "{e}"
            );
        }
    }
    // The same challenge answered twice at once yields one session.
    let c = h.challenge("root").await;
    let next = h.totp_now(&secret, 1);
    let results = futures_join_all([
        h.service.verify_mfa(c.expose(), &next),
        h.service.verify_mfa(c.expose(), &next),
    ])
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

/// Polls every future to completion concurrently on the current task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let h = super::Harness::sqlite().await;
                    super::$name(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$name(&h).await;
                }
            )*
        }
    };
}

store_suite!(
    users_and_passwords,
    wrong_password_and_unknown_user_look_the_same,
    lockout_after_five_failures_for_thirty_minutes,
    sessions_expire_idle_and_absolute_and_are_revocable,
    api_keys_expire_and_are_revocable,
    api_key_revoked_elsewhere_stops_working_within_the_cache_time,
    api_key_binding_changed_elsewhere_takes_effect_within_the_cache_time,
    api_key_bindings_round_trip_and_show_on_the_principal,
    api_key_bindings_are_checked_naming_the_field,
    binding_changes_and_revocation_take_effect_at_once_on_this_node,
    keys_from_before_bindings_speak_for_no_actor,
    api_keys_record_their_creator_and_older_keys_have_none,
    mfa_is_required_for_admins_and_cannot_be_skipped,
    wrong_mfa_codes_count_towards_lockout,
    viewer_may_opt_into_mfa,
    concurrent_use_of_one_code_succeeds_once,
    oidc_exchange_gives_a_session_linked_by_subject,
);

// ---- OIDC ----------------------------------------------------------------------

const ISSUER: &str = "https://idp.example.com";
const CLIENT: &str = "lexecon-client";

struct TestKeys {
    rsa: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    ed: ed25519_dalek::SigningKey,
    other_ed: ed25519_dalek::SigningKey,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKeys {
    fn get() -> &'static TestKeys {
        static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = rand::rngs::OsRng;
            TestKeys {
                rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
                p256: p256::ecdsa::SigningKey::random(&mut rng),
                ed: ed25519_dalek::SigningKey::generate(&mut rng),
                other_ed: ed25519_dalek::SigningKey::generate(&mut rng),
            }
        })
    }

    fn jwks(&self) -> serde_json::Value {
        use rsa::traits::PublicKeyParts;
        let rsa_pub = self.rsa.to_public_key();
        let point = self.p256.verifying_key().to_encoded_point(false);
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256",
             "n": b64(&rsa_pub.n().to_bytes_be()), "e": b64(&rsa_pub.e().to_bytes_be())},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(self.ed.verifying_key().as_bytes())},
            {"kty": "OKP", "kid": "enc", "crv": "X25519", "use": "enc", "x": b64(&[1; 32])},
        ]})
    }

    fn token(
        header: serde_json::Value,
        claims: &serde_json::Value,
        sign: impl Fn(&[u8]) -> Vec<u8>,
    ) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    fn sign_rsa(&self, kid: &str, claims: &serde_json::Value) -> String {
        use rsa::signature::{SignatureEncoding, Signer};
        let key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.rsa.clone());
        Self::token(
            json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
            claims,
            |m| key.sign(m).to_vec(),
        )
    }

    fn sign_p256(&self, kid: &str, claims: &serde_json::Value) -> String {
        use p256::ecdsa::signature::Signer;
        Self::token(json!({"alg": "ES256", "kid": kid}), claims, |m| {
            let sig: p256::ecdsa::Signature = self.p256.sign(m);
            sig.to_bytes().to_vec()
        })
    }

    fn sign_ed25519(&self, kid: &str, claims: &serde_json::Value) -> String {
        Self::sign_ed_with(&self.ed, kid, claims)
    }

    fn sign_ed_with(
        key: &ed25519_dalek::SigningKey,
        kid: &str,
        claims: &serde_json::Value,
    ) -> String {
        use ed25519_dalek::Signer;
        Self::token(json!({"alg": "EdDSA", "kid": kid}), claims, |m| {
            key.sign(m).to_bytes().to_vec()
        })
    }
}

fn good_claims(now: i64) -> serde_json::Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "user-123", "email": "alice@example.com",
        "email_verified": true, "iat": now, "nbf": now - 5, "exp": now + 300, "nonce": "n-0S6",
    })
}

fn oidc_config() -> OidcProviderConfig {
    let mut config = OidcProviderConfig::new("test", ISSUER, CLIENT);
    config.role_claim = Some("groups".into());
    config.role_map = [
        ("lexecon-auditors".to_owned(), Role::Auditor),
        ("lexecon-admins".to_owned(), Role::Admin),
    ]
    .into_iter()
    .collect();
    config
}

fn oidc_provider(jwks: &str) -> OidcProvider {
    OidcProvider::new(oidc_config(), Arc::new(StaticJwksSource(jwks.to_owned())))
}

async fn validate(token: &str, nonce: Option<&str>, now: i64) -> Result<OidcIdentity, OidcError> {
    oidc_provider(&TestKeys::get().jwks().to_string())
        .validate(token, nonce, Timestamp::from_unix_secs(now))
        .await
}

#[tokio::test]
async fn oidc_accepts_rs256_es256_and_eddsa() {
    let keys = TestKeys::get();
    let claims = good_claims(START);
    for token in [
        keys.sign_rsa("rsa", &claims),
        keys.sign_p256("ec", &claims),
        keys.sign_ed25519("ed", &claims),
    ] {
        let id = validate(&token, Some("n-0S6"), START).await.unwrap();
        assert_eq!(
            id,
            OidcIdentity {
                provider: "test".into(),
                subject: "user-123".into(),
                email: Some("alice@example.com".into()),
                role: Role::Viewer,
                mfa: false,
            }
        );
    }
}

#[tokio::test]
async fn oidc_rejects_each_bad_token_with_its_own_error() {
    let keys = TestKeys::get();
    let now = START;
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good_claims(now);
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good_claims(now);
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let good = keys.sign_ed25519("ed", &good_claims(now));
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(with("sub", json!("admin")).to_string().as_bytes());
        parts.join(".")
    };
    let cases: Vec<(&str, String, Option<&str>, i64, OidcError)> = vec![
        (
            "wrong issuer",
            keys.sign_ed25519("ed", &with("iss", json!("https://evil.example.com"))),
            None,
            now,
            OidcError::WrongIssuer,
        ),
        (
            "issuer prefix",
            keys.sign_ed25519("ed", &with("iss", json!("https://idp.example.com/x"))),
            None,
            now,
            OidcError::WrongIssuer,
        ),
        (
            "no issuer",
            keys.sign_ed25519("ed", &without("iss")),
            None,
            now,
            OidcError::WrongIssuer,
        ),
        (
            "wrong audience",
            keys.sign_ed25519("ed", &with("aud", json!("someone-else"))),
            None,
            now,
            OidcError::WrongAudience,
        ),
        (
            "audience list without us",
            keys.sign_ed25519("ed", &with("aud", json!(["a", "b"]))),
            None,
            now,
            OidcError::WrongAudience,
        ),
        (
            "azp of another client",
            keys.sign_ed25519("ed", &with("azp", json!("other"))),
            None,
            now,
            OidcError::WrongAudience,
        ),
        (
            "signature by another key",
            TestKeys::sign_ed_with(&keys.other_ed, "ed", &good_claims(now)),
            None,
            now,
            OidcError::BadSignature,
        ),
        (
            "payload changed after signing",
            tampered,
            None,
            now,
            OidcError::BadSignature,
        ),
        (
            "rsa signature",
            keys.sign_rsa("rsa", &with("sub", json!("x")))
                .rsplit_once('.')
                .map(|(a, _)| format!("{a}.{}", b64(&[0; 256])))
                .unwrap(),
            None,
            now,
            OidcError::BadSignature,
        ),
        (
            "expired",
            keys.sign_ed25519("ed", &good_claims(now)),
            None,
            now + 300 + 60,
            OidcError::Expired,
        ),
        (
            "no exp",
            keys.sign_ed25519("ed", &without("exp")),
            None,
            now,
            OidcError::Malformed("exp is required"),
        ),
        (
            "not yet valid",
            keys.sign_ed25519("ed", &with("nbf", json!(now + 61))),
            None,
            now,
            OidcError::NotYetValid,
        ),
        (
            "email not verified",
            keys.sign_ed25519("ed", &with("email_verified", json!(false))),
            None,
            now,
            OidcError::EmailNotVerified,
        ),
        (
            "email_verified as string",
            keys.sign_ed25519("ed", &with("email_verified", json!("true"))),
            None,
            now,
            OidcError::EmailNotVerified,
        ),
        (
            "email_verified missing",
            keys.sign_ed25519("ed", &without("email_verified")),
            None,
            now,
            OidcError::EmailNotVerified,
        ),
        (
            "unknown kid",
            keys.sign_ed25519("rotated-away", &good_claims(now)),
            None,
            now,
            OidcError::UnknownKey,
        ),
        (
            "alg of another key type",
            keys.sign_ed25519("rsa", &good_claims(now)),
            None,
            now,
            OidcError::UnknownKey,
        ),
        (
            "encryption key",
            keys.sign_ed25519("enc", &good_claims(now)),
            None,
            now,
            OidcError::UnknownKey,
        ),
        (
            "nonce mismatch",
            good.clone(),
            Some("other-nonce"),
            now,
            OidcError::NonceMismatch,
        ),
        (
            "nonce missing",
            keys.sign_ed25519("ed", &without("nonce")),
            Some("n-0S6"),
            now,
            OidcError::NonceMismatch,
        ),
        (
            "alg none",
            TestKeys::token(
                json!({"alg": "none", "kid": "ed"}),
                &good_claims(now),
                |_| Vec::new(),
            ),
            None,
            now,
            OidcError::UnsupportedAlgorithm("none".into()),
        ),
        (
            "alg HS256",
            TestKeys::token(
                json!({"alg": "HS256", "kid": "ed"}),
                &good_claims(now),
                |_| vec![0; 32],
            ),
            None,
            now,
            OidcError::UnsupportedAlgorithm("HS256".into()),
        ),
        (
            "two parts",
            "a.b".to_owned(),
            None,
            now,
            OidcError::Malformed("expected three dot-separated parts"),
        ),
        (
            "not base64",
            "a.b.c!".to_owned(),
            None,
            now,
            OidcError::Malformed("not base64url"),
        ),
        (
            "no sub",
            keys.sign_ed25519("ed", &without("sub")),
            None,
            now,
            OidcError::Malformed("sub is required"),
        ),
    ];
    for (what, token, nonce, at, expect) in cases {
        let err = validate(&token, nonce, at).await.unwrap_err();
        assert_eq!(err, expect, "{what}");
        let auth: AuthError = err.into();
        assert!(auth.is_unauthenticated(), "{what}");
        assert_no_secret(&auth, &token);
    }
    // Within the skew: just expired and just not yet valid are still accepted.
    validate(&good, None, now + 300 + 59).await.unwrap();
    validate(
        &keys.sign_ed25519("ed", &with("nbf", json!(now + 60))),
        None,
        now,
    )
    .await
    .unwrap();
    // No nonce asked for: the claim is not checked.
    validate(&good, None, now).await.unwrap();
    validate(&good, Some(""), now).await.unwrap();
}

#[tokio::test]
async fn oidc_maps_roles_from_a_claim_and_never_grants_agent() {
    let keys = TestKeys::get();
    let check = |groups: serde_json::Value, expect: Role| async move {
        let mut c = good_claims(START);
        c["groups"] = groups;
        let id = validate(&keys.sign_ed25519("ed", &c), None, START)
            .await
            .unwrap();
        assert_eq!(id.role, expect);
    };
    check(json!(["lexecon-auditors"]), Role::Auditor).await;
    check(json!(["lexecon-auditors", "lexecon-admins"]), Role::Admin).await;
    check(json!("lexecon-admins"), Role::Admin).await;
    check(json!(["unrelated"]), Role::Viewer).await;
    check(json!(42), Role::Viewer).await;

    // Without a table, values are role names; agent is ignored.
    let mut config = oidc_config();
    config.role_map.clear();
    let provider = OidcProvider::new(config, Arc::new(StaticJwksSource(keys.jwks().to_string())));
    for (value, expect) in [
        ("compliance_officer", Role::ComplianceOfficer),
        ("agent", Role::Viewer),
    ] {
        let mut c = good_claims(START);
        c["groups"] = json!([value]);
        c["amr"] = json!(["pwd", "mfa"]);
        let id = provider
            .validate(
                &keys.sign_ed25519("ed", &c),
                None,
                Timestamp::from_unix_secs(START),
            )
            .await
            .unwrap();
        assert_eq!(id.role, expect, "{value}");
        assert!(id.mfa);
    }
}

#[tokio::test]
async fn oidc_jwks_from_a_file_is_cached_and_refetched_for_a_new_kid() {
    let keys = TestKeys::get();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let write = |p: &Path, jwks: serde_json::Value| std::fs::write(p, jwks.to_string()).unwrap();
    write(&path, keys.jwks());
    let provider = OidcProvider::new(oidc_config(), Arc::new(FileJwksSource::new(&path)));
    let at = |secs| Timestamp::from_unix_secs(START + secs);
    let claims = good_claims(START);
    provider
        .validate(&keys.sign_ed25519("ed", &claims), None, at(0))
        .await
        .unwrap();

    // The provider rotates in a new key.
    let mut jwks = keys.jwks();
    jwks["keys"].as_array_mut().unwrap().push(
        json!({"kty": "OKP", "kid": "new", "crv": "Ed25519", "x": b64(keys.other_ed.verifying_key().as_bytes())}),
    );
    write(&path, jwks);
    let rotated = TestKeys::sign_ed_with(&keys.other_ed, "new", &claims);
    // Within 30 s of the last fetch an unknown kid does not refetch...
    let e = provider.validate(&rotated, None, at(10)).await.unwrap_err();
    assert_eq!(e, OidcError::UnknownKey);
    // ...after that it does, once.
    provider.validate(&rotated, None, at(31)).await.unwrap();

    // A cached key set survives the file going away until the cache expires.
    std::fs::remove_file(&path).unwrap();
    provider.validate(&rotated, None, at(100)).await.unwrap();
    let e = provider
        .validate(&rotated, None, at(31 + 600))
        .await
        .unwrap_err();
    assert!(matches!(e, OidcError::Jwks(_)), "{e}");
    assert!(!e.to_string().contains(&rotated));
}
