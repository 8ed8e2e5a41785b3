//! Benchmarks of the auth work done per call and per login.
//!
//! - `check_access`: the permission-table lookup every RPC pays (target: well under
//!   1 µs, so auth stays a rounding error next to the ~19 µs of gRPC per call).
//! - `authenticate_api_key_sqlite`: the bearer-token check an agent's every `Decide`
//!   pays, with the key and its compiled actor binding in the in-memory cache (SHA-256
//!   and a map lookup, no glob compiled); the `_uncached` variant does the indexed
//!   SQLite lookup and compiles the binding every time (the sqlx hand-off dominates).
//!   Serves the `Decide` throughput targets: auth must not cost a
//!   database round trip per call.
//! - `totp_verify`: checking a 6-digit code against the ±1-step window.
//! - `oidc_validate_eddsa`: ID-token validation with a cached JWKS.
//! - `argon2id_production_params`: one password hash at the production parameters
//!   (m = 19 MiB, t = 2, p = 1): the cost of a login, by design tens of milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark")]

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use lexecon_auth::*;
use lexecon_core::{ManualClock, Timestamp};

fn bench(c: &mut Criterion) {
    let admin = Principal {
        kind: PrincipalKind::ApiKey,
        id: "key_1".into(),
        name: "bench".into(),
        role: Role::Agent,
        mfa_verified: false,
        actors: None,
        llm_roles: Arc::default(),
        created_by: None,
    };
    let mfa_roles = [Role::Admin, Role::ComplianceOfficer];
    c.bench_function("check_access", |b| {
        b.iter(|| {
            check_access(
                black_box(&admin),
                black_box("/lexecon.v1.RiskService/Assess"),
                &mfa_roles,
            )
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (service, uncached) = rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(tmp.path().join("bench.db"))
            .create_if_missing(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(opts)
            .await
            .unwrap();
        SqliteAuthStore::migrate(&pool).await.unwrap();
        let clock = ManualClock::new(Timestamp::from_unix_secs(1_790_000_000));
        let config = AuthConfig {
            password: PasswordParams::INSECURE_FOR_TESTS,
            ..AuthConfig::default()
        };
        let store: Arc<dyn AuthStore> = Arc::new(SqliteAuthStore::new(pool, bench_keys()));
        let uncached = AuthService::new(
            Arc::clone(&store),
            Arc::new(clock.clone()),
            AuthConfig {
                api_key_cache_secs: 0,
                ..config.clone()
            },
        );
        (AuthService::new(store, Arc::new(clock), config), uncached)
    });
    let key = rt
        .block_on(service.create_api_key(NewApiKey {
            actors: vec!["ai_agent:bench_*".into()],
            ..NewApiKey::new("bench", Role::Agent)
        }))
        .unwrap();
    c.bench_function("authenticate_api_key_sqlite", |b| {
        b.iter(|| {
            rt.block_on(service.authenticate(black_box(key.api_key.expose())))
                .unwrap()
        })
    });

    c.bench_function("authenticate_api_key_sqlite_uncached", |b| {
        b.iter(|| {
            rt.block_on(uncached.authenticate(black_box(key.api_key.expose())))
                .unwrap()
        })
    });

    let seed = [7u8; 20];
    let step = totp::step_at(1_790_000_000);
    let code = totp::code_at_step(&seed, step, 6);
    c.bench_function("totp_verify", |b| {
        b.iter(|| totp::matching_step(black_box(&seed), black_box(&code), step))
    });

    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
        "x": b64(signing.verifying_key().as_bytes())}]});
    let now = 1_790_000_000i64;
    let claims = serde_json::json!({"iss": "https://idp", "aud": "c", "sub": "s",
        "email_verified": true, "exp": now + 300});
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"EdDSA","kid":"k"}"#),
        b64(claims.to_string().as_bytes())
    );
    let sig = ed25519_dalek::Signer::sign(&signing, input.as_bytes());
    let token = format!("{input}.{}", b64(&sig.to_bytes()));
    let provider = OidcProvider::new(
        OidcProviderConfig::new("p", "https://idp", "c"),
        Arc::new(StaticJwksSource(jwks.to_string())),
    );
    let at = Timestamp::from_unix_secs(now);
    rt.block_on(provider.validate(&token, None, at)).unwrap();
    c.bench_function("oidc_validate_eddsa", |b| {
        b.iter(|| {
            rt.block_on(provider.validate(black_box(&token), None, at))
                .unwrap()
        })
    });

    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    let prod = AuthService::new(
        Arc::new(rt.block_on(async {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(tmp.path().join("bench2.db"))
                .create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(opts)
                .await
                .unwrap();
            SqliteAuthStore::migrate(&pool).await.unwrap();
            SqliteAuthStore::new(pool, bench_keys())
        })),
        Arc::new(ManualClock::new(Timestamp::from_unix_secs(now))),
        AuthConfig::default(),
    );
    rt.block_on(prod.create_user("bench", "a long enough password", Role::Viewer))
        .unwrap();
    group.bench_function("argon2id_production_params_login", |b| {
        b.iter(|| {
            rt.block_on(prod.login("bench", black_box("a long enough password")))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// The master key TOTP seeds are sealed with in the benchmarks.
fn bench_keys() -> Arc<lexecon_auth::SecretKeys> {
    Arc::new(lexecon_auth::SecretKeys::new(
        lexecon_auth::MasterKey::from_bytes(&[42u8; 32], "bench key").unwrap(),
        vec![],
    ))
}
