//! Connecting: errors name the database and the fix, never the password; a schema
//! newer than this build, or another program's tables, is refused untouched.

use openloom_store_postgres::{Error, PostgresStore};

use crate::common::{self, database};

const SECRET: &str = "hunter2-Sekr1t";

/// `url` with the password [`SECRET`] and database `name` in it.
fn with_secret(url: &str, name: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = authority.split_once('@').unwrap_or(("openloom", authority));
    let user = user.split(':').next().unwrap_or(user);
    format!("postgres://{user}:{SECRET}@{host}/{name}")
}

/// The error and its whole source chain, as a log would show it.
fn chain(err: &Error) -> String {
    let mut text = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" / {s}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn nothing_listening_is_named_with_the_fix_and_without_the_password() {
    // A port nobody listens on: bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://loom:{SECRET}@127.0.0.1:{port}/openloom");
    let err = PostgresStore::connect(&url).await.expect_err("nothing listens there");
    let text = chain(&err);
    assert!(matches!(err, Error::Connect { .. }), "{text}");
    assert!(text.contains(&format!("loom@127.0.0.1:{port}/openloom")), "{text}");
    assert!(text.contains("is PostgreSQL running"), "{text}");
    assert!(!text.contains(SECRET), "the password leaked: {text}");
    let probe = PostgresStore::probe(&url, std::time::Duration::from_secs(5)).await;
    let text = chain(&probe.expect_err("nothing listens there"));
    assert!(!text.contains(SECRET) && text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn a_missing_database_says_to_create_it() {
    let db = database!();
    let url = with_secret(&db.url, "openloom_no_such_database");
    let err = PostgresStore::connect(&url).await.expect_err("no such database");
    let text = chain(&err);
    assert!(text.contains("openloom_no_such_database") && text.contains("createdb"), "{text}");
    assert!(!text.contains(SECRET), "the password leaked: {text}");
    db.drop_database().await;
}

#[tokio::test]
async fn reconnecting_migrates_nothing_and_a_newer_schema_is_refused_untouched() {
    let db = database!();
    let store = common::open(&db).await;
    assert_eq!(store.schema_version().await.expect("version"), 7);
    store.close().await;
    let store = common::open(&db).await;
    assert_eq!(store.schema_version().await.expect("version"), 7, "reopening is a no-op");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .expect("pretend a newer build migrated");
    store.close().await;
    let err = PostgresStore::connect(&db.url).await.expect_err("newer schema");
    assert!(matches!(err, Error::NewerSchema { found: 9999, known: 7, .. }), "{err}");
    assert!(err.to_string().contains("upgrade OpenLoom"), "{err}");
    db.drop_database().await;
}

#[tokio::test]
async fn another_programs_tables_are_refused_untouched() {
    let db = database!();
    let admin = sqlx::postgres::PgPoolOptions::new().connect(&db.url).await.expect("connect");
    sqlx::query("CREATE TABLE invoices (id INT)").execute(&admin).await.expect("create");
    let err = PostgresStore::connect(&db.url).await.expect_err("foreign tables");
    assert!(
        matches!(&err, Error::ForeignSchema { tables, .. } if tables == &["invoices"]),
        "{err}"
    );
    let migrated: Option<String> = sqlx::query_scalar("SELECT to_regclass('tasks')::text")
        .fetch_one(&admin)
        .await
        .expect("look");
    assert_eq!(migrated, None, "nothing was created");
    admin.close().await;
    db.drop_database().await;
}
