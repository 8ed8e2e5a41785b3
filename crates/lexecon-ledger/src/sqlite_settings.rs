//! The connection settings the ledger's durability and speed rely on, defined once for
//! every connection to a SQLite database: sqlx pools (the engine's, [`crate::open_sqlite`])
//! through [`sqlite_options`], and the ledger's own `rusqlite` writer and readers through
//! [`configure_direct`].

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;

/// How long a connection waits for a lock another connection holds (a commit and its
/// fsync, a WAL checkpoint, another process's migrations or appends) before failing with
/// `SQLITE_BUSY`. With WAL it is mostly writers that wait for each other, and a failed
/// ledger batch fails every caller in it, so this rides out a slow fsync or a checkpoint
/// on a loaded disk with a wide margin; it is still bounded, so a lock that is never
/// released surfaces as an error.
/// One value for every connection: a connection that gave up sooner than the others
/// would be the one to fail under contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Write-ahead logging: readers (verification, proofs, the engine's queries) never block
/// the writer, and a commit is one sequential append to the WAL. It is stored in the
/// database file, so setting it once persists; every connection still sets it so that
/// no connection runs on a file left in another mode.
const JOURNAL_MODE: &str = "WAL";

/// Per-connection pragmas, applied after [`JOURNAL_MODE`].
const PRAGMAS: [(&str, &str); 4] = [
    // Every commit syncs the WAL before it returns, so an acknowledged entry survives
    // power loss ("acknowledged means durable"); NORMAL would lose the last commits.
    ("synchronous", "FULL"),
    // No automatic checkpoint on whichever connection commits: one inside a commit costs
    // the callers of that batch 15-20 ms. The ledger writer checkpoints on a timer, off
    // the commit path (`LedgerStore::maintain`).
    ("wal_autocheckpoint", "0"),
    // Statement journals and sorts in memory, not in files under /var/tmp.
    ("temp_store", "MEMORY"),
    // Enforce the foreign keys of the tables that share the database (auth's); sqlx's
    // default, which the direct connections match (the ledger's tables have none).
    ("foreign_keys", "ON"),
];

/// How many rows sqlx's worker thread may run ahead of the reader (its default is 50):
/// verification and exports read millions of rows, and each stall is a context switch.
const ROW_BUFFER_SIZE: usize = 16_384;

/// `base` (the file, whether to create it) with the settings every connection to the
/// database needs: WAL, `synchronous=FULL`, no automatic WAL checkpoints, and the busy
/// timeout shared with the ledger's own connections.
pub fn sqlite_options(base: SqliteConnectOptions) -> SqliteConnectOptions {
    PRAGMAS
        .iter()
        .fold(
            base.pragma("journal_mode", JOURNAL_MODE),
            |options, (name, value)| options.pragma(*name, *value),
        )
        .busy_timeout(BUSY_TIMEOUT)
        .row_buffer_size(ROW_BUFFER_SIZE)
}

/// Applies the settings of [`sqlite_options`] to one of the ledger's own connections,
/// failing if the database is not in WAL mode (a read-only connection cannot switch it).
pub(crate) fn configure_direct(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.query_row(&format!("PRAGMA journal_mode = {JOURNAL_MODE}"), [], |r| {
            r.get(0)
        })?;
    if !mode.eq_ignore_ascii_case(JOURNAL_MODE) {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, not {JOURNAL_MODE}"
        )));
    }
    for (name, value) in PRAGMAS {
        conn.pragma_update(None, name, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings a connection reports.
    const SHOWN: [&str; 6] = [
        "journal_mode",
        "synchronous",
        "wal_autocheckpoint",
        "temp_store",
        "foreign_keys",
        "busy_timeout",
    ];

    fn direct_settings(conn: &rusqlite::Connection) -> Vec<String> {
        SHOWN
            .iter()
            .map(|p| {
                let v = conn
                    .query_row(&format!("PRAGMA {p}"), [], |r| {
                        r.get::<_, rusqlite::types::Value>(0)
                    })
                    .unwrap();
                match v {
                    rusqlite::types::Value::Integer(i) => format!("{p}={i}"),
                    rusqlite::types::Value::Text(t) => format!("{p}={t}"),
                    other => panic!("{p} is {other:?}"),
                }
            })
            .collect()
    }

    fn read_only(path: &std::path::Path) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// The sqlx pool and the direct writer and readers run with the same settings.
    #[tokio::test]
    async fn sqlx_and_direct_connections_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let pool = crate::open_sqlite(&path, true).await.unwrap();
        let mut via_sqlx = Vec::new();
        for p in SHOWN {
            let row = sqlx::query(&format!("PRAGMA {p}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            via_sqlx.push(match sqlx::Row::try_get::<i64, _>(&row, 0) {
                Ok(i) => format!("{p}={i}"),
                Err(_) => format!("{p}={}", sqlx::Row::get::<String, _>(&row, 0)),
            });
        }
        expect_test::expect![[r#"
            [
                "journal_mode=wal",
                "synchronous=2",
                "wal_autocheckpoint=0",
                "temp_store=2",
                "foreign_keys=1",
                "busy_timeout=30000",
            ]
        "#]]
        .assert_debug_eq(&via_sqlx);

        let writer = rusqlite::Connection::open(&path).unwrap();
        configure_direct(&writer).unwrap();
        assert_eq!(direct_settings(&writer), via_sqlx);
        let reader = read_only(&path);
        configure_direct(&reader).unwrap();
        assert_eq!(direct_settings(&reader), via_sqlx);
    }

    /// A read-only direct connection cannot put a database into WAL mode, and says so.
    #[test]
    fn a_database_not_in_wal_mode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let reader = read_only(&path);
        assert!(configure_direct(&reader).is_err());
    }
}
