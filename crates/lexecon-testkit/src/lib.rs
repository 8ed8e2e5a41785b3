//! Test support for store tests against this machine's real PostgreSQL and Redis.
//!
//! Used only as a dev-dependency. Each call makes a fresh PostgreSQL database (dropped
//! again when the guard goes) or a fresh Redis key prefix, so concurrent test runs never
//! see each other's data. The servers are named by `LEXECON_TEST_DATABASE_URL` and
//! `LEXECON_TEST_REDIS_URL` (`.ci/run` sets both). When a URL is unset the test is
//! skipped with a message, except under CI (`CI` set), where a missing service must
//! fail the run rather than pass silently.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: failing loudly is the point"
)]

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};

/// Reads a service URL from `var`; `None` (with a note on stderr) when unset outside CI.
///
/// # Panics
/// When `var` is unset and `CI` is set: in CI every store test must run.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set; CI must run the store tests (see .ci/run)")
        }
        _ => {
            eprintln!("skipping: {var} is not set (bash .ci/run sets it)");
            None
        }
    }
}

/// A unique lowercase suffix for names of test databases and key prefixes.
pub fn unique_suffix() -> String {
    let n: u64 = rand::thread_rng().r#gen();
    format!("{}_{n:016x}", std::process::id())
}

/// A PostgreSQL database created for one test and dropped when this goes.
#[derive(Debug)]
pub struct PgDatabase {
    /// A URL that connects to the fresh database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates a fresh database on the server of `LEXECON_TEST_DATABASE_URL`, or `None`
    /// when that is unset outside CI.
    pub async fn create() -> Option<PgDatabase> {
        let admin_url = service_url("LEXECON_TEST_DATABASE_URL")?;
        let name = format!("lexecon_test_{}", unique_suffix());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to LEXECON_TEST_DATABASE_URL: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let url = replace_database(&admin_url, &name);
        Some(PgDatabase {
            url,
            admin_url,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// `url` with its database path replaced by `/name` (query string kept).
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The Redis URL and a fresh key prefix (`lexecon_test:<unique>:`), or `None` when
/// `LEXECON_TEST_REDIS_URL` is unset outside CI.
pub fn redis_url_and_prefix() -> Option<(String, String)> {
    let url = service_url("LEXECON_TEST_REDIS_URL")?;
    Some((url, format!("lexecon_test:{}:", unique_suffix())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_urls() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://h:1/test?sslmode=disable", "x"),
            "postgres://h:1/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "x"), "postgres://h:1/x");
    }

    #[test]
    fn suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
    }

    #[tokio::test]
    async fn creates_and_drops_a_database() {
        let Some(db) = PgDatabase::create().await else {
            return;
        };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let one: (i32,) = sqlx::query_as("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one.0, 1);
    }
}
