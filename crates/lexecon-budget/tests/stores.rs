//! One behaviour suite run against every `BudgetStore`: memory, SQLite (temp file),
//! PostgreSQL and Redis (this machine's services, through `lexecon-testkit`), plus two
//! independent processes sharing one Redis or one PostgreSQL. The key scope
//! (`authorize_for`) is checked here too, since it is reserved by every store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly"
)]

use std::sync::Arc;
use std::time::Duration;

use lexecon_budget::{
    Authorization, BudgetConfig, BudgetError, BudgetManager, BudgetStore, DenialReason,
    MemoryBudgetStore, RedisBudgetStore, Scope, SqlBudgetStore,
};
use lexecon_core::{Clock, LlmUsage, ManualClock, SystemClock, Timestamp};

/// A store and whatever must live as long as it.
struct Env {
    store: Arc<dyn BudgetStore>,
    _db: Option<lexecon_testkit::PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

async fn memory() -> Option<Env> {
    Some(Env {
        store: Arc::new(MemoryBudgetStore::new()),
        _db: None,
        _dir: None,
    })
}

async fn sqlite() -> Option<Env> {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("lexecon.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let store = SqlBudgetStore::sqlite(pool);
    store.migrate().await.unwrap();
    // Migrating twice is harmless.
    store.migrate().await.unwrap();
    Some(Env {
        store: Arc::new(store),
        _db: None,
        _dir: Some(dir),
    })
}

async fn pg_store(url: &str) -> SqlBudgetStore {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .unwrap();
    SqlBudgetStore::postgres(pool)
}

async fn postgres() -> Option<Env> {
    let db = lexecon_testkit::PgDatabase::create().await?;
    let store = pg_store(&db.url).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    Some(Env {
        store: Arc::new(store),
        _db: Some(db),
        _dir: None,
    })
}

fn redis_store(url: &str, prefix: &str) -> RedisBudgetStore {
    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    RedisBudgetStore::new(pool, prefix)
}

async fn redis() -> Option<Env> {
    let (url, prefix) = lexecon_testkit::redis_url_and_prefix()?;
    Some(Env {
        store: Arc::new(redis_store(&url, &prefix)),
        _db: None,
        _dir: None,
    })
}

fn call(user: &str, input: u64, output: u64) -> LlmUsage {
    LlmUsage {
        model: "gpt-4o-mini".to_owned(),
        user_id: Some(user.to_owned()),
        roles: vec!["team".to_owned()],
        estimated_input_tokens: input,
        max_output_tokens: output,
    }
}

fn manager(store: &Arc<dyn BudgetStore>, toml: &str, clock: Arc<dyn Clock>) -> Arc<BudgetManager> {
    let config = BudgetConfig::from_toml(toml).unwrap();
    Arc::new(BudgetManager::new(config, Arc::clone(store), clock).unwrap())
}

/// Runs `n` authorizations at once; returns the admissions and the denial reasons.
async fn burst(
    m: &Arc<BudgetManager>,
    n: usize,
    usage: LlmUsage,
) -> (Vec<Authorization>, Vec<DenialReason>) {
    let (ok, denied) = burst_by_key(m, n, None, |_| usage.clone()).await;
    (ok, denied.into_iter().map(|(reason, _)| reason).collect())
}

/// Runs `n` authorizations at once, the `i`th of `make(i)` with the API key `key`;
/// returns the admissions and the denials' reasons and limit ids.
async fn burst_by_key(
    m: &Arc<BudgetManager>,
    n: usize,
    key: Option<&str>,
    make: impl Fn(usize) -> LlmUsage,
) -> (Vec<Authorization>, Vec<(DenialReason, String)>) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let m = Arc::clone(m);
            let u = make(i);
            let key = key.map(str::to_owned);
            tokio::spawn(async move { m.authorize_for(&u, key.as_deref()).await })
        })
        .collect();
    let mut ok = Vec::new();
    let mut denied = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => ok.push(a),
            Err(BudgetError::Denied(d)) => denied.push((d.reason, d.limit_id)),
            Err(e) => panic!("store failure: {e}"),
        }
    }
    (ok, denied)
}

/// A call of `user` with a user id of its own for each `i` (what a caller inventing
/// user ids sends).
fn invented(user: &str, input: u64, output: u64) -> impl Fn(usize) -> LlmUsage {
    let base = call(user, input, output);
    move |i| LlmUsage {
        user_id: Some(format!("{user}-{i}")),
        ..base.clone()
    }
}

/// 200 concurrent calls against a budget that fits exactly K admit exactly K; settling
/// below the reservation refunds exactly; each reservation settles once.
async fn exactly_k_of_200(env: Env) {
    const K: u64 = 37;
    // gpt-4o-mini, 1000 in + 1000 out: 150 + 600 = 750 micro-dollars at worst.
    let toml = format!(
        "[global]\nmonthly_budget = \"{}\"\n[roles.team]\nmonthly_budget = 1000",
        lexecon_budget::format_micros(K * 750)
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_795_507_200)));
    let m = manager(&env.store, &toml, clock);
    let (ok, denied) = burst(&m, 200, call("alice", 1000, 1000)).await;
    assert_eq!(ok.len() as u64, K);
    assert!(denied.iter().all(|r| *r == DenialReason::MonthlyBudget));
    let global = m.usage(&Scope::Global).await.unwrap();
    assert_eq!((global.spent_micros, global.reserved_micros), (0, K * 750));

    // Settle every admission twice at once, at 1000 in + 200 out = 150 + 120 = 270.
    let tasks: Vec<_> = ok
        .iter()
        .flat_map(|a| [a.reservation_id, a.reservation_id])
        .map(|id| {
            let m = Arc::clone(&m);
            tokio::spawn(async move { (id, m.settle(id, 1000, 200).await.unwrap()) })
        })
        .collect();
    let mut newly = std::collections::HashMap::new();
    for t in tasks {
        let (id, s) = t.await.unwrap();
        assert_eq!((s.charged_micros, s.released_micros), (270, 480));
        *newly.entry(id).or_insert(0) += u32::from(s.newly_settled);
    }
    assert!(
        newly.values().all(|n| *n == 1),
        "each settles exactly once: {newly:?}"
    );
    for scope in [
        Scope::Global,
        Scope::User("alice".into()),
        Scope::Role("team".into()),
    ] {
        let u = m.usage(&scope).await.unwrap();
        assert_eq!((u.spent_micros, u.reserved_micros), (K * 270, 0), "{scope}");
    }
    // The refund is usable: (K*750 - K*270) / 750 more calls fit, exactly.
    let (more, _) = burst(&m, 200, call("bob", 1000, 1000)).await;
    assert_eq!(more.len() as u64, (K * 750 - K * 270) / 750);
}

/// The key scope binds exactly like the user scope: 200 concurrent calls of one key,
/// each naming a new user, admit exactly K against the per-user budget and exactly the
/// RPM limit against the per-user RPM; settlement charges the key once per call.
async fn key_scope_binds_exactly(env: Env) {
    const K: u64 = 23;
    let toml = format!(
        "monthly_budget = \"{}\"",
        lexecon_budget::format_micros(K * 750)
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_secs(1_795_507_200)));
    let m = manager(&env.store, &toml, clock);
    let (ok, denied) = burst_by_key(&m, 200, Some("fleet"), invented("claimed", 1000, 1000)).await;
    assert_eq!(ok.len() as u64, K);
    assert!(
        denied
            .iter()
            .all(|(reason, id)| *reason == DenialReason::MonthlyBudget
                && id == "budget.key:fleet.monthly_budget"),
        "{denied:?}"
    );
    let key = Scope::Key("fleet".into());
    let u = m.usage(&key).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (0, K * 750));
    let tasks: Vec<_> = ok
        .iter()
        .flat_map(|a| [a.reservation_id, a.reservation_id])
        .map(|id| {
            let m = Arc::clone(&m);
            tokio::spawn(async move { m.settle(id, 1000, 200).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let u = m.usage(&key).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (K * 270, 0));
    // Another key has its own budget.
    let (other, _) = burst_by_key(&m, 50, Some("other"), invented("more", 1000, 1000)).await;
    assert_eq!(other.len() as u64, K);

    let m = manager(&env.store, "rpm_limit = 7", Arc::new(SystemClock));
    let (ok, denied) = burst_by_key(&m, 60, Some("rated"), invented("claimed", 1, 0)).await;
    assert_eq!(ok.len(), 7);
    assert!(
        denied
            .iter()
            .all(|(reason, id)| *reason == DenialReason::Rpm && id == "budget.key:rated.rpm"),
        "{denied:?}"
    );
    let u = m.usage(&Scope::Key("rated".into())).await.unwrap();
    assert_eq!(u.requests_last_minute, 7);
}

/// A key inventing user ids is stopped by its key scope; keys count apart; without a key
/// nothing changes; settle and release move the key scope's spend like the others.
async fn key_scope_lifecycle(env: Env) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(1_795_507_200));
    let m = manager(
        &env.store,
        "rpm_limit = 2
monthly_budget = 0.01",
        Arc::new(clock.clone()),
    );
    let frontend = invented("u", 10, 10);
    m.authorize_for(&frontend(1), Some("frontend"))
        .await
        .unwrap();
    m.authorize_for(&frontend(2), Some("frontend"))
        .await
        .unwrap();
    let Err(BudgetError::Denied(d)) = m.authorize_for(&frontend(3), Some("frontend")).await else {
        panic!("the key made two calls of two")
    };
    assert_eq!(
        (d.reason, d.scope.as_str(), d.limit_id.as_str()),
        (DenialReason::Rpm, "key:frontend", "budget.key:frontend.rpm")
    );
    m.authorize_for(&frontend(4), Some("batch")).await.unwrap();
    m.authorize_for(&frontend(5), Some("batch")).await.unwrap();
    let Err(BudgetError::Denied(d)) = m.authorize_for(&frontend(6), Some("batch")).await else {
        panic!("the other key made two calls of two")
    };
    assert_eq!(d.limit_id, "budget.key:batch.rpm");
    for i in 7..12 {
        m.authorize(&frontend(i)).await.unwrap();
    }
    for key in ["frontend", "batch"] {
        let u = m.usage(&Scope::Key(key.into())).await.unwrap();
        assert_eq!(u.requests_last_minute, 2, "{key}");
    }

    // 1000 in + 1000 out of gpt-4o-mini: 750 reserved in the user and key scopes alike.
    clock.advance_secs(61);
    let key = Scope::Key("spender".into());
    let big = invented("s", 1000, 1000);
    let a = m.authorize_for(&big(1), Some("spender")).await.unwrap();
    let b = m.authorize_for(&big(2), Some("spender")).await.unwrap();
    assert!(
        a.limit_ids
            .contains(&"budget.key:spender.monthly_budget".to_owned())
    );
    let u = m.usage(&key).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (0, 1500));
    // 1000 in + 200 out: 270 charged, 480 given back.
    let s = m.settle(a.reservation_id, 1000, 200).await.unwrap();
    assert_eq!((s.charged_micros, s.released_micros), (270, 480));
    let u = m.usage(&key).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (270, 750));
    assert!(m.release(b.reservation_id).await.unwrap());
    let u = m.usage(&key).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (270, 0));
    for user in ["s-1", "s-2"] {
        let u = m.usage(&Scope::User(user.into())).await.unwrap();
        assert_eq!(u.reserved_micros, 0, "{user}");
    }
    // Global still holds the nine small calls (10 in + 10 out: 8 each) left open.
    let u = m.usage(&Scope::Global).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (270, 9 * 8));
}

/// With a real clock, a burst never gets more than the RPM or TPM limit.
async fn windows_hold_in_real_time(env: Env) {
    let m = manager(&env.store, "rpm_limit = 7", Arc::new(SystemClock));
    let (ok, denied) = burst(&m, 60, call("requests", 1, 0)).await;
    assert_eq!(ok.len(), 7);
    assert!(denied.iter().all(|r| *r == DenialReason::Rpm));
    let u = m.usage(&Scope::User("requests".into())).await.unwrap();
    assert_eq!(u.requests_last_minute, 7);
    // 100 tokens each: exactly 10 fit in 1000.
    let m = manager(
        &env.store,
        "[users.tokens]\ntpm_limit = 1000\n",
        Arc::new(SystemClock),
    );
    let (ok, denied) = burst(&m, 60, call("tokens", 60, 40)).await;
    assert_eq!(ok.len(), 10);
    assert!(denied.iter().all(|r| *r == DenialReason::Tpm));
    let u = m.usage(&Scope::User("tokens".into())).await.unwrap();
    assert_eq!(u.tokens_last_minute, 1000);
}

/// Release, settlement, expiry through the sweeper, late settlement, soft-limit dedup
/// across replicas.
async fn lifecycle(env: Env) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(1_795_507_200));
    let toml = "monthly_budget = 0.003\nsoft_limit_pct = 0.5\nreservation_ttl_secs = 30\n";
    let m = manager(&env.store, toml, Arc::new(clock.clone()));
    let a = m.authorize(&call("u", 1000, 1000)).await.unwrap();
    assert!(a.warnings.is_empty());
    let b = m.authorize(&call("u", 1000, 1000)).await.unwrap();
    assert_eq!(
        b.warnings.len(),
        1,
        "1500 of 3000 reaches the 50% soft limit"
    );
    // A second manager (another replica) sees the event as already raised.
    let replica = manager(&env.store, toml, Arc::new(clock.clone()));
    let c = replica.authorize(&call("u", 1000, 1000)).await.unwrap();
    assert!(c.warnings.is_empty());
    let d = replica.authorize(&call("u", 1000, 1000)).await.unwrap();
    assert!(d.warnings.is_empty());
    let Err(BudgetError::Denied(denial)) = m.authorize(&call("u", 1, 1)).await else {
        panic!("the budget is full")
    };
    assert_eq!(denial.limit_id, "budget.user:u.monthly_budget");
    assert_eq!((denial.current, denial.limit), (3000, 3000));

    assert!(m.release(a.reservation_id).await.unwrap());
    assert!(!replica.release(a.reservation_id).await.unwrap());
    let s = m.settle(d.reservation_id, 1000, 1000).await.unwrap();
    assert_eq!(
        (s.charged_micros, s.released_micros, s.newly_settled),
        (750, 0, true)
    );
    clock.advance_secs(31);
    assert_eq!(m.sweep().await.unwrap(), 2, "b and c expire");
    assert_eq!(m.sweep().await.unwrap(), 0);
    let u = m.usage(&Scope::User("u".into())).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (750, 0));
    // A late settlement of an expired reservation is still charged, once.
    let late = m.settle(b.reservation_id, 1000, 0).await.unwrap();
    assert_eq!(
        (
            late.charged_micros,
            late.released_micros,
            late.newly_settled
        ),
        (150, 0, true)
    );
    let again = replica.settle(b.reservation_id, 9999, 9999).await.unwrap();
    assert_eq!((again.charged_micros, again.newly_settled), (150, false));
    let u = m.usage(&Scope::User("u".into())).await.unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (900, 0));
    assert!(matches!(
        m.settle(lexecon_core::ReservationId::new(clock.now(), 7), 1, 1)
            .await,
        Err(BudgetError::UnknownReservation(_))
    ));
}

/// Slow (65 s, with `RUN_SLOW_TESTS=1`): calls every 250 ms against an RPM of 10 with the
/// real clock; no 60-second window ending at an admission holds more than 10, and the
/// window slides (calls are admitted again after a minute).
async fn rpm_slides_in_real_time(env: Env) {
    if std::env::var("RUN_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping the 65 s sliding-window test: set RUN_SLOW_TESTS=1");
        return;
    }
    let m = manager(
        &env.store,
        "rpm_limit = 10\nreservation_ttl_secs = 600",
        Arc::new(SystemClock),
    );
    let mut admitted: Vec<i64> = Vec::new();
    let deadline = SystemClock.now().add_secs(65);
    while SystemClock.now() < deadline {
        let (ok, denied) = burst(&m, 3, call("slider", 1, 0)).await;
        assert!(denied.iter().all(|r| *r == DenialReason::Rpm));
        // The instant each call was admitted at is its expiry minus the TTL.
        admitted.extend(ok.iter().map(|a| a.expires_at.add_secs(-600).unix_micros()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for end in &admitted {
        let in_window = admitted
            .iter()
            .filter(|t| **t > end - 60_000_000 && **t <= *end)
            .count();
        assert!(
            in_window <= 10,
            "{in_window} calls in the minute ending at {end}"
        );
    }
    assert!(
        admitted.len() >= 20,
        "the window slid: {} admitted",
        admitted.len()
    );
}

macro_rules! suite {
    ($store:ident) => {
        mod $store {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn exactly_k_of_200() {
                let Some(env) = super::$store().await else {
                    return;
                };
                super::exactly_k_of_200(env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn windows_hold_in_real_time() {
                let Some(env) = super::$store().await else {
                    return;
                };
                super::windows_hold_in_real_time(env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn key_scope_binds_exactly() {
                let Some(env) = super::$store().await else {
                    return;
                };
                super::key_scope_binds_exactly(env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn key_scope_lifecycle() {
                let Some(env) = super::$store().await else {
                    return;
                };
                super::key_scope_lifecycle(env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn lifecycle() {
                let Some(env) = super::$store().await else {
                    return;
                };
                super::lifecycle(env).await;
            }
        }
    };
}

suite!(memory);
suite!(sqlite);
suite!(postgres);
suite!(redis);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_rpm_slides_in_real_time() {
    let Some(env) = postgres().await else { return };
    rpm_slides_in_real_time(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_rpm_slides_in_real_time() {
    let Some(env) = redis().await else { return };
    rpm_slides_in_real_time(env).await;
}

/// The workload each of two processes runs against the shared store: 100 calls against a
/// budget of 37, 100 against an RPM of 23, and 100 of one key, each naming a new user,
/// against the key's RPM of 11, all at once.
const SHARED_CONFIG: &str = "[users.spender]\nmonthly_budget = 0.02775\n[users.caller]\nrpm_limit = 23\n[keys.fleet]\nrpm_limit = 11\n";

async fn shared_workload(store: Arc<dyn BudgetStore>, start_at: i64) -> (usize, usize, usize) {
    let m = manager(&store, SHARED_CONFIG, Arc::new(SystemClock));
    // Start together with the other process, so that the calls really interleave.
    let wait = start_at - SystemClock.now().unix_micros();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
    }
    // Each process invents its own user ids: only the key scope is shared.
    let claimed = format!("claimed-{}", std::process::id());
    let spend = burst(&m, 100, call("spender", 1000, 1000));
    let rate = burst(&m, 100, call("caller", 1, 0));
    let keyed = burst_by_key(&m, 100, Some("fleet"), invented(&claimed, 1, 0));
    let ((spent, _), (called, _), (fleet, _)) = tokio::join!(spend, rate, keyed);
    (spent.len(), called.len(), fleet.len())
}

const CHILD_ENV: &str = "LEXECON_BUDGET_TEST_CHILD";

/// Runs this same test in a child process (selected by `CHILD_ENV`) and the workload
/// here; returns both processes' counts.
fn two_processes<F, Fut>(test_name: &str, target: &str, open: F) -> [(usize, usize, usize); 2]
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn BudgetStore>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (start, target) = spec.split_once('|').unwrap();
        let store = rt.block_on(open(target.to_owned()));
        let counts = rt.block_on(shared_workload(store, start.parse().unwrap()));
        println!("CHILD_COUNTS {} {} {}", counts.0, counts.1, counts.2);
        return [counts, (0, 0, 0)];
    }
    let start_at = SystemClock.now().unix_micros() + 2_000_000;
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{start_at}|{target}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store = rt.block_on(open(target.to_owned()));
    let mine = rt.block_on(shared_workload(store, start_at));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD_COUNTS ").map(|(_, counts)| counts))
        .unwrap_or_else(|| panic!("no counts from the child: {stdout}"));
    let counts: Vec<usize> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    [mine, (counts[0], counts[1], counts[2])]
}

#[test]
fn two_processes_share_one_redis() {
    let target = match std::env::var(CHILD_ENV) {
        Ok(_) => String::new(),
        Err(_) => match lexecon_testkit::redis_url_and_prefix() {
            Some((url, prefix)) => format!("{url} {prefix}"),
            None => return,
        },
    };
    let counts = two_processes("two_processes_share_one_redis", &target, |t| async move {
        let (url, prefix) = t.split_once(' ').unwrap();
        Arc::new(redis_store(url, prefix)) as Arc<dyn BudgetStore>
    });
    if std::env::var(CHILD_ENV).is_err() {
        assert_eq!(counts[0].0 + counts[1].0, 37, "{counts:?}");
        assert_eq!(counts[0].1 + counts[1].1, 23, "{counts:?}");
        assert_eq!(counts[0].2 + counts[1].2, 11, "{counts:?}");
    }
}

#[test]
fn two_processes_share_one_postgres() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = match std::env::var(CHILD_ENV) {
        Ok(_) => None,
        Err(_) => match rt.block_on(lexecon_testkit::PgDatabase::create()) {
            Some(db) => Some(db),
            None => return,
        },
    };
    if let Some(db) = &db {
        rt.block_on(async { pg_store(&db.url).await.migrate().await.unwrap() });
    }
    let url = db.as_ref().map(|d| d.url.clone()).unwrap_or_default();
    let counts = two_processes("two_processes_share_one_postgres", &url, |url| async move {
        Arc::new(pg_store(&url).await) as Arc<dyn BudgetStore>
    });
    if db.is_some() {
        assert_eq!(counts[0].0 + counts[1].0, 37, "{counts:?}");
        assert_eq!(counts[0].1 + counts[1].1, 23, "{counts:?}");
        assert_eq!(counts[0].2 + counts[1].2, 11, "{counts:?}");
    }
}

/// An unreachable or unmigrated store refuses with a store error, never an admission.
#[tokio::test]
async fn a_failing_store_is_an_error_never_an_admission() {
    let unreachable: Arc<dyn BudgetStore> = Arc::new(redis_store("redis://127.0.0.1:1/", "x:"));
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("empty.db"))
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePool::connect_with(options)
        .await
        .unwrap();
    let unmigrated: Arc<dyn BudgetStore> = Arc::new(SqlBudgetStore::sqlite(pool));
    for store in [unreachable, unmigrated] {
        let m = manager(&store, "", Arc::new(SystemClock));
        let r = m.authorize(&call("u", 1, 1)).await;
        assert!(matches!(r, Err(BudgetError::Store(_))), "{r:?}");
        let id = lexecon_core::ReservationId::new(SystemClock.now(), 1);
        assert!(matches!(
            m.settle(id, 1, 1).await,
            Err(BudgetError::Store(_))
        ));
        assert!(m.sweep().await.is_err());
    }
}
