//! Recognising a PostgreSQL URL, connecting, and migrating.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{Error, Result, SqlxResultExt, Target};

/// The migrations embedded in this build, from `crates/store-postgres/migrations/`.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Whether `value` (of `OPENLOOM_DATABASE` or `--database`) names a PostgreSQL
/// database (`postgres://` or `postgresql://`, any case) rather than a SQLite path.
pub fn is_postgres_url(value: &str) -> bool {
    let value = value.trim_start();
    let lower = value.get(..13).unwrap_or(value).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` as messages may show it: `postgres://user@host:port/database`, without the
/// password (or a placeholder when it does not parse).
pub fn redacted_url(url: &str) -> String {
    match Location::parse(url) {
        Ok(location) => location.target.to_string(),
        Err(_) => "postgres://(a URL that does not parse)".to_owned(),
    }
}

/// Options for [`crate::PostgresStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long connecting (and waiting for a free pooled connection) may take.
    pub connect_timeout: Duration,
    /// How long a statement waits for a row lock another worker holds before it
    /// fails as busy (PostgreSQL's `lock_timeout`), like SQLite's busy timeout.
    pub lock_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// A parsed connection string: the options sqlx connects with, the [`Target`] that
/// errors show, and the secrets no message may contain.
#[derive(Clone)]
pub(crate) struct Location {
    pub options: PgConnectOptions,
    pub target: Target,
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the options: they hold the password.
        f.debug_struct("Location").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Location {
    /// Parses `url`. The password (from the URL or `PGPASSWORD`) goes into the
    /// connect options and the secrets, never into the target.
    pub(crate) fn parse(url: &str) -> Result<Location> {
        let secrets = secrets_of(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
            message: crate::error::scrub(&e.to_string(), &secrets),
        })?;
        let target = Target {
            user: options.get_username().to_owned(),
            host: options.get_host().to_owned(),
            port: options.get_port(),
            database: options.get_database().unwrap_or(options.get_username()).to_owned(),
        };
        Ok(Location { options, target, secrets })
    }
}

/// The password in `url` (raw and percent-decoded) and in `PGPASSWORD`, which sqlx
/// also reads: whatever an error message must not repeat.
fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            secrets.push(password.to_owned());
            if let Ok(decoded) = percent_decode(password) {
                secrets.push(decoded);
            }
        }
        for (key, value) in parsed.query_pairs() {
            if key == "password" {
                secrets.push(value.into_owned());
            }
        }
    }
    if let Ok(password) = std::env::var("PGPASSWORD") {
        secrets.push(password);
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

fn percent_decode(text: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// Connects a pool to `location` and brings its schema up to date.
pub(crate) async fn open_pool(location: &Location, options: &StoreOptions) -> Result<PgPool> {
    // One plain connection first: the pool retries a refused connection until its
    // timeout and then reports only "timed out", which hides the reason and the fix.
    probe(location, options.connect_timeout).await?;
    let lock_timeout = format!("{}ms", options.lock_timeout.as_millis());
    let connect = location
        .options
        .clone()
        .options([("lock_timeout", lock_timeout.as_str())])
        .application_name("openloom")
        // Statements are logged by our own spans; sqlx's per-statement INFO lines
        // would drown a worker's log.
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| Error::connect(&location.target, &e, &location.secrets))?;
    refuse_unknown_schema(&pool, &location.target).await?;
    MIGRATOR.run(&pool).await.map_err(|source| match source {
        sqlx::migrate::MigrateError::Execute(e) => Error::classify(&location.target, e),
        source => {
            Error::Migrate { target: Box::new(location.target.clone()), source: Box::new(source) }
        }
    })?;
    Ok(pool)
}

/// Fails, before anything is written, with [`Error::NewerSchema`] if the database
/// records a migration this build does not embed, and with [`Error::ForeignSchema`]
/// if the schema OpenLoom uses has tables but no migration history (another
/// program's database). Several workers starting at once are safe: sqlx's migrator
/// holds an advisory lock while it migrates.
async fn refuse_unknown_schema(pool: &PgPool, target: &Target) -> Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .at(target)?;
    if tables.iter().any(|t| t == "_sqlx_migrations") {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(pool)
            .await
            .at(target)?;
        let known: BTreeSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        if let Some(found) = applied.iter().copied().filter(|v| !known.contains(v)).max() {
            return Err(Error::NewerSchema {
                target: Box::new(target.clone()),
                found,
                known: known.last().copied().unwrap_or(0),
            });
        }
        Ok(())
    } else if tables.is_empty() {
        Ok(())
    } else {
        Err(Error::ForeignSchema { target: Box::new(target.clone()), tables })
    }
}

/// What [`crate::PostgresStore::probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probe {
    /// The server's version (`SHOW server_version`).
    pub server_version: String,
    /// The newest OpenLoom migration applied, `None` when OpenLoom never ran there.
    pub schema_version: Option<i64>,
}

/// Connects once, without a pool or migrations: whether the database is reachable,
/// and at which schema, without changing it (for `openloom doctor`, and before a
/// pool is built so that a refused connection is reported with its reason).
pub(crate) async fn probe(location: &Location, timeout: Duration) -> Result<Probe> {
    let connect = location.options.clone().disable_statement_logging();
    let attempt = async {
        let mut conn = connect.connect().await?;
        let server_version: String =
            sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await?;
        let migrated: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&mut conn)
                .await?;
        let schema_version = match migrated {
            Some(_) => {
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(&mut conn)
                    .await?
            }
            None => None,
        };
        let _ = sqlx::Connection::close(conn).await;
        Ok::<_, sqlx::Error>(Probe { server_version, schema_version })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.map_err(|e| Error::connect(&location.target, &e, &location.secrets)),
        Err(_) => Err(Error::connect(&location.target, &sqlx::Error::PoolTimedOut, &[])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_recognised_and_paths_are_not() {
        for url in
            ["postgres://h/db", "postgresql://u:p@h:5432/db", "POSTGRES://h", " postgres://h"]
        {
            assert!(is_postgres_url(url), "{url}");
        }
        for path in ["", "/var/lib/ol.sqlite3", "postgres.sqlite3", "x/postgres://y", "pg://h"] {
            assert!(!is_postgres_url(path), "{path}");
        }
    }

    #[test]
    fn the_target_keeps_everything_but_the_password() {
        let location =
            Location::parse("postgres://loom:s%40cret@db.example:5433/openloom").expect("parses");
        let shown = location.target.to_string();
        assert_eq!(shown, "postgres://loom@db.example:5433/openloom");
        assert!(location.secrets.contains(&"s@cret".to_owned()), "{:?}", location.secrets);
        assert!(location.secrets.contains(&"s%40cret".to_owned()));
        assert!(!format!("{location:?}").contains("cret"));
        assert_eq!(
            redacted_url("postgresql://loom:hunter2@db:5433/ol?sslmode=require"),
            "postgres://loom@db:5433/ol"
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let err =
            Location::parse("postgres://loom:hunter2@db.example:notaport/x").expect_err("bad port");
        let text = err.to_string();
        assert!(text.contains("not a valid PostgreSQL URL") && !text.contains("hunter2"), "{text}");
    }
}
