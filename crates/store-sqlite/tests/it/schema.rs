//! Schema versions: a database from a newer build is refused and left untouched.

use openloom_core::Store;
use openloom_store_sqlite::{Error, SqliteStore};

use crate::common;

const FUTURE: i64 = 99_990_101_000_000;

#[tokio::test]
async fn a_newer_schema_is_refused_without_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store = common::open(&path).await;
    store.create_task(&common::task("task_a", chrono::Utc::now())).await.expect("create");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?, 'from the future', 1, x'00', 0)",
    )
    .bind(FUTURE)
    .execute(store.pool())
    .await
    .expect("record a future migration");
    store.close().await;
    let before = snapshot(&path).await;

    let err = SqliteStore::open(&path).await.expect_err("refused");
    match &err {
        Error::NewerSchema { found, known, .. } => {
            assert_eq!(*found, FUTURE);
            assert!(*known < FUTURE);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("newer"), "{text}");
    assert_eq!(snapshot(&path).await, before, "the database was changed");
}

/// The schema, the recorded migrations and the store version, read through a
/// read-only connection (the file's bytes may differ after a WAL checkpoint without
/// any change to its content).
async fn snapshot(path: &std::path::Path) -> Vec<String> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn =
        sqlx::SqliteConnection::connect_with(&options).await.expect("read-only connection");
    let mut rows: Vec<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("schema");
    let migrations: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("migrations");
    rows.extend(migrations.into_iter().map(|(v, d)| format!("migration {v} {d}")));
    let version: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_version'")
        .fetch_one(&mut conn)
        .await
        .expect("version");
    rows.push(format!("store_version {version}"));
    conn.close().await.expect("close");
    rows
}

#[tokio::test]
async fn reopening_a_current_database_applies_nothing_new() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    common::open(&path).await.close().await;
    let store = common::open(&path).await;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .expect("migrations");
    assert_eq!(applied, vec![1]);
    let pragmas: (String, i64, i64) = sqlx::query_as(
        "SELECT (SELECT journal_mode FROM pragma_journal_mode), \
                (SELECT foreign_keys FROM pragma_foreign_keys), \
                (SELECT synchronous FROM pragma_synchronous)",
    )
    .fetch_one(store.pool())
    .await
    .expect("pragmas");
    assert_eq!(pragmas, ("wal".to_owned(), 1, 2), "WAL, foreign keys on, synchronous=FULL");
}
