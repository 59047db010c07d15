//! A real SQLite store, a harness (with a memory agent: nothing is started here) and
//! an inbox in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openloom_core::{
    EventBus, Harness, HarnessParts, MemoryAgent, Store, Task, TaskQuery, WorkspacePolicy, take_in,
};
use openloom_prompts::{MarkerChecker, ReferenceDialogue};
use openloom_sources::{Inbox, InboxConfig};
use openloom_store_sqlite::SqliteStore;
use tempfile::TempDir;
use tokio::sync::watch;

pub struct Fixture {
    pub inbox: PathBuf,
    /// The default workspace, inside the allowed root.
    pub work: PathBuf,
    pub store: Arc<dyn Store>,
    _dir: TempDir,
}

/// Settle time of the test inboxes: short, but several scans long.
pub const SETTLE: Duration = Duration::from_millis(400);

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = TempDir::new().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        let (inbox, work) = (root.join("inbox"), root.join("work"));
        std::fs::create_dir_all(&inbox).expect("mkdir inbox");
        std::fs::create_dir_all(&work).expect("mkdir work");
        let db = root.join("openloom.sqlite3");
        let store = Arc::new(SqliteStore::open(&db).await.expect("store"));
        Fixture { inbox, work, store, _dir: dir }
    }

    /// Starts an inbox intake on this fixture (a fresh `Inbox` and harness, as a new
    /// process would have); stops when the returned sender is dropped or sent `true`.
    pub fn start(&self) -> watch::Sender<bool> {
        let mut config = InboxConfig::new(&self.inbox);
        config.workspace = Some(self.work.to_string_lossy().into_owned());
        config.settle = SETTLE;
        config.poll = Duration::from_millis(50);
        let inbox = Arc::new(Inbox::open(config).expect("inbox"));
        let harness = Arc::new(Harness::new(HarnessParts {
            agent: Arc::new(MemoryAgent::replying(&[])),
            store: self.store.clone(),
            checker: Arc::new(MarkerChecker),
            dialogue: Arc::new(ReferenceDialogue),
            bus: EventBus::new(),
            workspaces: WorkspacePolicy::within([self.work.clone()]),
        }));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(take_in(inbox, harness, stopped));
        stop
    }

    pub fn drop_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.inbox.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    pub async fn tasks(&self) -> Vec<Task> {
        self.store.list_tasks(&TaskQuery::newest(100)).await.expect("list")
    }

    pub fn accepted(&self, name: &str) -> PathBuf {
        self.inbox.join("accepted").join(name)
    }

    pub fn rejected(&self, name: &str) -> PathBuf {
        self.inbox.join("rejected").join(name)
    }
}

/// Waits (up to 10 s) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
