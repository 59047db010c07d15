//! Finding, opening and migrating the database file.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{Error, Result, SqlxResultExt};

/// The migrations embedded in this build, from `crates/store-sqlite/migrations/`.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The environment variable that overrides the database path.
pub const DATABASE_ENV: &str = "OPENLOOM_DATABASE";

/// The database path when nothing overrides it: `.openloom/openloom.sqlite3` under `cwd`.
pub fn default_database_path(cwd: &Path) -> PathBuf {
    cwd.join(".openloom").join("openloom.sqlite3")
}

/// The database path given the value of [`DATABASE_ENV`] (`None` when unset).
///
/// An empty value counts as unset; a relative value is taken relative to `cwd`. The
/// binary passes `std::env::var_os(DATABASE_ENV)`; taking the value as a parameter
/// keeps this testable without touching the process environment.
pub fn database_path(env_value: Option<&OsStr>, cwd: &Path) -> PathBuf {
    match env_value {
        Some(value) if !value.is_empty() => cwd.join(value),
        _ => default_database_path(cwd),
    }
}

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at every commit, so an acknowledged
    /// write survives a process crash *and* a power loss or OS crash. The default:
    /// the harness writes a few times per second at most, and an acknowledged
    /// version that later vanishes would confuse every client that saw its event.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. Still durable
    /// against a process crash (the write is in the OS page cache), and the database
    /// stays consistent, but the last commits can roll back on power loss. Several
    /// times faster for many small writes.
    Normal,
}

/// Options for [`crate::SqliteStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How durable a commit is.
    pub durability: Durability,
    /// How long a write waits for another process's write lock before failing.
    pub busy_timeout: Duration,
    /// Connections for concurrent reads (writes are serialised anyway).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            max_connections: 4,
        }
    }
}

/// Page cache per connection, in KiB.
const CACHE_KIB: u32 = 1024;

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
pub(crate) async fn open_pool(path: &Path, options: &StoreOptions) -> Result<SqlitePool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::CreateDir { path: path.to_path_buf(), source })?;
    }
    let synchronous = match options.durability {
        Durability::Full => SqliteSynchronous::Full,
        Durability::Normal => SqliteSynchronous::Normal,
    };
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        // Each connection's page cache is what a burst of large tasks leaves behind
        // (SQLite's default is 2 MiB a connection): 1 MiB holds the rows and indexes
        // the frequent queries read for thousands of tasks (docs/benchmarks.md).
        .pragma("cache_size", format!("-{CACHE_KIB}"));
    refuse_unknown_schema(path).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .connect_with(connect)
        .await
        .at(path)?;
    migrate(&pool, path).await?;
    Ok(pool)
}

/// Fails, before anything is written to an existing file (not even the switch to
/// WAL mode), with [`Error::NewerSchema`] if the database records a migration this
/// build does not embed, and with [`Error::ForeignSchema`] if it has tables but no
/// migration history: another program's database, such as the Python OpenLoom's,
/// which uses the same default path. Migrating that would fail half-way with "table
/// already exists" after creating the history table.
async fn refuse_unknown_schema(path: &Path) -> Result<()> {
    use sqlx::Connection;
    if !path.is_file() {
        return Ok(());
    }
    let probe = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&probe).await.at(path)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .at(path)?;
    let verdict = if tables.iter().any(|t| t == "_sqlx_migrations") {
        refuse_newer_schema(&mut conn, path).await
    } else if tables.is_empty() {
        Ok(())
    } else {
        Err(Error::ForeignSchema { path: path.to_path_buf(), tables })
    };
    // A failure to close a read-only connection changes nothing worth reporting.
    let _ = conn.close().await;
    verdict
}

/// Fails with [`Error::NewerSchema`] if the database records a migration this build
/// does not embed.
async fn refuse_newer_schema(conn: &mut sqlx::SqliteConnection, path: &Path) -> Result<()> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
        .at(path)?;
    let known: BTreeSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let unknown = applied.iter().copied().filter(|v| !known.contains(v)).max();
    match unknown {
        Some(found) => Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: known.last().copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}

/// Applies pending migrations. Two processes opening a fresh file at once can race
/// (the loser's `CREATE TABLE` finds the table made); the loser retries, finds the
/// migration recorded, and has nothing left to do.
async fn migrate(pool: &SqlitePool, path: &Path) -> Result<()> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(source) if attempts >= 3 => {
                return Err(match source {
                    sqlx::migrate::MigrateError::Execute(e) => Error::classify(path, e),
                    source => Error::Migrate { path: path.to_path_buf(), source },
                });
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "migration raced, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_under_dot_openloom() {
        assert_eq!(
            default_database_path(Path::new("/repo")),
            PathBuf::from("/repo/.openloom/openloom.sqlite3")
        );
    }

    #[test]
    fn env_value_overrides_and_resolves_against_cwd() {
        let cwd = Path::new("/repo");
        assert_eq!(database_path(None, cwd), default_database_path(cwd));
        assert_eq!(database_path(Some(OsStr::new("")), cwd), default_database_path(cwd));
        assert_eq!(
            database_path(Some(OsStr::new("/var/lib/ol.db")), cwd),
            PathBuf::from("/var/lib/ol.db")
        );
        assert_eq!(database_path(Some(OsStr::new("x/ol.db")), cwd), PathBuf::from("/repo/x/ol.db"));
    }
}
