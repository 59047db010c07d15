//! Schema versions: a database from a newer build is refused and left untouched.

use openloom_core::Store;
use openloom_store_sqlite::{Error, SqliteStore};

use openloom_core::TaskStatus;

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
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
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

/// The Python OpenLoom's schema (openloom/core/store.py), at the same default path.
const PYTHON_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tasks (\
    id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_json TEXT NOT NULL,\
    workspace TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',\
    current_step INTEGER NOT NULL DEFAULT 0, session_ids_json TEXT NOT NULL DEFAULT '[]',\
    active_session_id TEXT, check_interval_seconds INTEGER NOT NULL DEFAULT 300,\
    completed_steps_json TEXT NOT NULL DEFAULT '[]', idle_checks INTEGER NOT NULL DEFAULT 0,\
    progress REAL NOT NULL DEFAULT 0, check_log_json TEXT NOT NULL DEFAULT '[]',\
    last_summary TEXT, error TEXT, last_check_at REAL, next_check_at REAL,\
    created_at REAL NOT NULL, updated_at REAL NOT NULL);\
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\
    INSERT OR IGNORE INTO meta(key, value) VALUES ('store_version', '0');";

#[tokio::test]
async fn another_programs_database_is_refused_byte_for_byte_untouched() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("openloom.sqlite3");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("create");
    sqlx::raw_sql(PYTHON_SCHEMA).execute(&mut conn).await.expect("the Python schema");
    conn.close().await.expect("close");
    let before = std::fs::read(&path).expect("read");

    let err = SqliteStore::open(&path).await.expect_err("refused");
    match &err {
        Error::ForeignSchema { tables, .. } => assert_eq!(tables, &["meta", "tasks"]),
        other => panic!("expected ForeignSchema, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("Python"), "{text}");
    assert_eq!(std::fs::read(&path).expect("read back"), before, "the file was changed");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["openloom.sqlite3"], "no WAL or journal files left behind");
}

#[tokio::test]
async fn an_empty_file_becomes_a_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("openloom.sqlite3");
    std::fs::write(&path, b"").expect("touch");
    let store = common::open(&path).await;
    store.create_task(&common::task("task_a", chrono::Utc::now())).await.expect("writable");
}

#[tokio::test]
async fn a_version_1_database_gains_claims_and_guarded_writes_and_keeps_its_tasks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let now = chrono::Utc::now();
    {
        // What OpenLoom before claims left behind: schema 1, a task and its log.
        let store = common::open(&path).await;
        store.create_task(&common::task("task_old", now)).await.expect("create");
        let entry = openloom_core::CheckLogEntry::new(now, TaskStatus::Running, "busy", "");
        let id = openloom_core::TaskId::from("task_old");
        store.append_check_log(&id, &[entry]).await.expect("log");
        for undo in [
            "DROP INDEX tasks_due_order",
            "ALTER TABLE tasks DROP COLUMN opencode",
            "DROP TABLE workers",
            "DROP TABLE origins",
            "DROP TABLE webhook_deliveries",
            "DROP TABLE webhook_hooks",
            "DROP TABLE task_epochs",
            "DROP TABLE task_claims",
            "ALTER TABLE tasks DROP COLUMN revision",
            "ALTER TABLE tasks DROP COLUMN pending_requests_json",
            "ALTER TABLE tasks DROP COLUMN liveness_json",
            "ALTER TABLE check_log DROP COLUMN repeats",
            "ALTER TABLE check_log DROP COLUMN last_at",
            "DELETE FROM _sqlx_migrations WHERE version >= 2",
        ] {
            sqlx::query(undo).execute(store.pool()).await.expect(undo);
        }
        store.close().await;
    }
    let store = common::open(&path).await;
    let id = openloom_core::TaskId::from("task_old");
    let task = store.get_task(&id).await.expect("read").expect("the task survived");
    assert_eq!(task.revision, 0);
    assert_eq!(task.liveness, openloom_core::Liveness::default(), "no progress known yet");
    let later = now + chrono::Duration::seconds(60);
    let lease = store.claim_task(&id, "harness", now, later).await.expect("claims work");
    assert_eq!(lease.map(|l| l.epoch), Some(1));
    let guard = openloom_core::Guard::at_revision(0);
    let written = store
        .write_task(&id, &openloom_core::TaskUpdate::default(), None, &guard)
        .await
        .expect("guarded writes work");
    assert!(matches!(written, openloom_core::WriteOutcome::Written { revision: 1, .. }));
    let log = store.check_log(&id, &openloom_core::LogQuery::default()).await.expect("log");
    assert_eq!((log.len(), log[0].repeats), (1, 1), "old entries count once");
}
