//! Files the store cannot use: a clear error naming the path, no panic, and the file
//! left as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use openloom_core::{Store, TaskId, TaskQuery};
use openloom_store_sqlite::{Error, SqliteStore};

use crate::child;
use crate::common;

async fn open_err(path: &Path) -> Error {
    SqliteStore::open(path).await.expect_err("the store must refuse this path")
}

fn assert_names(err: &Error, path: &Path) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text:?} does not name {path:?}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("openloom.sqlite3");
    let garbage: Vec<u8> =
        (0..8192_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &garbage).expect("write garbage");
    let err = open_err(&path).await;
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read back"), garbage, "the file was modified");
    // And through the core error, as the server sees it.
    let core: openloom_core::Error = err.into();
    assert!(matches!(core, openloom_core::Error::Store { .. }));
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    // The database's directory would have to live under a regular file.
    let path = file.join("state").join("openloom.sqlite3");
    let err = open_err(&path).await;
    assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
    assert_names(&err, &path);
    // A directory where the file should be.
    let err = open_err(dir.path()).await;
    assert!(matches!(err, Error::CannotOpen { .. }), "{err:?}");
    assert_names(&err, dir.path());
}

#[tokio::test]
async fn a_read_only_directory_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let read_only = dir.path().join("ro");
    std::fs::create_dir(&read_only).expect("mkdir");
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root (as in CI) ignores permission bits. Then use a directory that is read-only
    // for everyone, root included: procfs does not let anyone create files.
    let privileged = std::fs::write(read_only.join("probe"), b"x").is_ok();
    let path = if privileged {
        Path::new("/proc/self/openloom.sqlite3").to_path_buf()
    } else {
        read_only.join("openloom.sqlite3")
    };
    let err = open_err(&path).await;
    eprintln!("privileged: {privileged}; {err}");
    assert!(matches!(err, Error::CannotOpen { .. } | Error::ReadOnly { .. }), "{err:?}");
    assert_names(&err, &path);
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755))
        .expect("chmod back");
}

#[tokio::test]
async fn a_full_disk_fails_the_write_cleanly_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    common::open(&path).await.close().await;
    // `ulimit -f` caps the size of any file the child writes (in 512-byte blocks);
    // SIGXFSZ is ignored so the write fails with EFBIG instead of killing the child.
    let output =
        child::command_after_shell_setup("trap '' XFSZ; ulimit -f 256", "fill", &path, "f")
            .output()
            .expect("run the filling child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child must not panic:\n{stdout}\n{stderr}");
    let error_line = stdout
        .lines()
        .find_map(|l| l.find("ERR ").map(|start| &l[start..]))
        .unwrap_or_else(|| panic!("the writes never failed:\n{stdout}"));
    eprintln!("after {} writes: {error_line}", child::parse_acks(&stdout).len());
    assert!(error_line.starts_with("ERR disk-full "), "{error_line}");
    assert!(error_line.contains(&path.display().to_string()), "{error_line}");
    let acks = child::parse_acks(&stdout);
    assert!(!acks.is_empty(), "some writes fit before the limit:\n{stdout}");

    let store = common::open(&path).await;
    store.integrity_check().await.expect("integrity_check is ok");
    for ack in &acks {
        let task = store.get_task(&TaskId::from(ack.id.as_str())).await.expect("get");
        assert!(task.is_some(), "acknowledged {} is missing", ack.id);
    }
    let tasks = store.list_tasks(&TaskQuery::newest(100_000)).await.expect("list");
    assert_eq!(tasks.len(), acks.len(), "the failed write left nothing behind");
    store
        .create_task(&common::task("task_after", chrono::Utc::now()))
        .await
        .expect("writable again");
}
