//! The one database every component shares: SQLite by default, PostgreSQL when
//! `database.url` says so. The engine opens it, runs every crate's migrations, and hands
//! the pool to each store.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Opening failed.
    #[error(
        "cannot open database {url}: {source}; check database.url and that the server is running"
    )]
    Open {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate database ({component}): {source}")]
    Migrate {
        /// Which crate's migrations.
        component: &'static str,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database error: {0}{hint}", hint = query_hint(.0))]
    Query(#[from] sqlx::Error),
    /// Another store's setup failed.
    #[error("database error: {0}")]
    Other(String),
}

/// What an operator should do about a failed query, when the cause says it.
fn query_hint(err: &sqlx::Error) -> &'static str {
    match err {
        // SQLITE_FULL: the volume holding the database has no space left.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("13") => {
            "; the disk holding the database is full: free space on it, then retry"
        }
        _ => "",
    }
}

/// An open pool on one of the supported databases.
#[derive(Debug, Clone)]
pub enum Database {
    /// An SQLite file (WAL, synchronous=FULL).
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

/// `url` with the password, if any, replaced by `***` (for messages and logs).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Creates an empty database file readable only by its owner, unless `path` exists or
/// names an in-memory database. The ledger, users, key hashes and sessions live in it,
/// and SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let name = path.to_string_lossy();
    if name.starts_with(":memory:") || name.starts_with("file:") || path.exists() {
        return Ok(());
    }
    match crate::init::write_secret_file(path, b"") {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

impl Database {
    /// Opens (creating an SQLite file, mode 0600, if needed) the database at `url`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Database, DbError> {
        let open_err = |source| DbError::Open {
            url: redact_url(url),
            source,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(open_err)?;
            create_private(options.get_filename()).map_err(|e| open_err(sqlx::Error::Io(e)))?;
            // The settings the ledger's durability relies on, shared with the ledger's own
            // connections to this file.
            let options = lexecon_ledger::sqlite_options(options).create_if_missing(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(if max_connections == 0 {
                    8
                } else {
                    max_connections
                })
                .connect_with(options)
                .await
                .map_err(open_err)?;
            Ok(Database::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(if max_connections == 0 {
                    16
                } else {
                    max_connections
                })
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(open_err)?;
            Ok(Database::Postgres(pool))
        }
    }

    /// Runs the engine's own migrations.
    pub async fn migrate_engine(&self) -> Result<(), DbError> {
        let err = |source| DbError::Migrate {
            component: "engine",
            source,
        };
        match self {
            Database::Sqlite(pool) => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.set_ignore_missing(true);
                m.run(pool).await.map_err(err)
            }
            Database::Postgres(pool) => {
                let mut m = sqlx::migrate!("./migrations/postgres");
                m.set_ignore_missing(true);
                m.run(pool).await.map_err(err)
            }
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
