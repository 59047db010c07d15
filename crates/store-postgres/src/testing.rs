//! Test support (feature `test-util`): a fresh database per test on the PostgreSQL
//! server named by [`TEST_DATABASE_ENV`], so tests run in parallel without seeing
//! each other's rows.
//!
//! The skip policy is the end-to-end tests': without the variable a test prints one
//! loud line saying how to get a server (`cargo xtask pg-setup`) and returns; with
//! `OPENLOOM_E2E=required` (CI) a missing server fails the test.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::Once;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// The environment variable holding the URL of a server on which tests may create
/// databases (a role with `CREATEDB`), e.g. `postgres://openloom@127.0.0.1:54329/postgres`.
pub const TEST_DATABASE_ENV: &str = "OPENLOOM_TEST_POSTGRES";

/// A database created for one test; dropped (best effort) with the value.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

/// Whether `OPENLOOM_E2E=required` is set.
fn required() -> bool {
    std::env::var("OPENLOOM_E2E").is_ok_and(|value| value.eq_ignore_ascii_case("required"))
}

/// A fresh, empty database, or `None` (after a notice on stderr) when no server is
/// configured and tests may skip.
///
/// # Panics
/// When no server is configured under `OPENLOOM_E2E=required`, or the server named
/// cannot create a database: a test that cannot run must fail, not pass.
pub async fn fresh_database() -> Option<TestDatabase> {
    let Some(url) = std::env::var(TEST_DATABASE_ENV).ok().filter(|u| !u.is_empty()) else {
        if required() {
            panic!(
                "OPENLOOM_E2E=required but {TEST_DATABASE_ENV} is unset: the PostgreSQL \
                 tests cannot run (`cargo xtask pg-setup` starts a server and prints the URL)"
            );
        }
        static NOTICE: Once = Once::new();
        NOTICE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! openloom: SKIPPING the PostgreSQL store tests: {TEST_DATABASE_ENV} is \
                 unset. Run `export {TEST_DATABASE_ENV}=$(cargo xtask pg-setup)` to run them. !!!\n"
            );
        });
        return None;
    };
    let admin = match PgConnectOptions::from_str(&url) {
        Ok(options) => options.disable_statement_logging(),
        Err(e) => panic!("{TEST_DATABASE_ENV} is not a PostgreSQL URL: {e}"),
    };
    let name = format!("openloom_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = match admin.connect().await {
        Ok(conn) => conn,
        Err(e) => panic!("cannot connect to the test server {TEST_DATABASE_ENV}: {e}"),
    };
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await {
        panic!("cannot create a test database on {TEST_DATABASE_ENV}: {e}");
    }
    let _ = sqlx::Connection::close(conn).await;
    let url = with_database(&url, &name);
    Some(TestDatabase { url, name, admin })
}

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The path starts at the first '/' after "scheme://authority".
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl TestDatabase {
    /// Drops the database (closing every other connection to it first).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = self.admin.connect().await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:1/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "t2"), "postgres://u@h:1/t2");
    }
}
