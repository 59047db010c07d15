//! Recent workspaces: move to front, keep twenty, remove, seed.

use chrono::{Duration, Utc};
use openloom_core::store::RECENT_WORKSPACES_KEPT;
use openloom_core::{MemoryStore, RecentWorkspaces, Store};

use crate::common;

fn paths(list: &[openloom_core::RecentWorkspace]) -> Vec<&str> {
    list.iter().map(|w| w.path.as_str()).collect()
}

#[tokio::test]
async fn recent_workspaces_match_the_memory_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = common::open(&common::db_path(dir.path())).await;
    let memory = MemoryStore::new();
    let now = Utc::now();
    for store in [&sqlite as &dyn RecentWorkspaces, &memory] {
        // Same timestamp for all: order must come from recency of use, not the clock.
        for i in 0..25 {
            store.record_workspace(&format!("/w{i}"), now).await.expect("record");
        }
        store.record_workspace("/w10", now).await.expect("record");
        store.record_workspace("/w3", now + Duration::seconds(1)).await.expect("record");
    }
    let expected = memory.recent_workspaces().await.expect("list");
    let actual = sqlite.recent_workspaces().await.expect("list");
    assert_eq!(actual, expected);
    assert_eq!(actual.len(), RECENT_WORKSPACES_KEPT);
    assert_eq!(paths(&actual)[..3], ["/w3", "/w10", "/w24"]);
    // /w3 had been dropped (one of the five oldest) and came back at the front.
    assert!(!paths(&actual).contains(&"/w4"));
    assert!(sqlite.remove_workspace("/w10").await.expect("remove"));
    assert!(!sqlite.remove_workspace("/w10").await.expect("remove"));
    assert_eq!(sqlite.recent_workspaces().await.expect("list").len(), RECENT_WORKSPACES_KEPT - 1);
}

#[tokio::test]
async fn workspace_writes_bump_the_version_and_persist() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store = common::open(&path).await;
    let v0 = store.store_version().await.expect("version");
    store.record_workspace("/a", Utc::now()).await.expect("record");
    let v1 = store.store_version().await.expect("version");
    assert!(!store.remove_workspace("/nope").await.expect("remove"));
    assert_eq!(store.store_version().await.expect("version"), v1, "no change, no version");
    assert!(store.remove_workspace("/a").await.expect("remove"));
    let v2 = store.store_version().await.expect("version");
    assert!(v0 < v1 && v1 < v2);
    let at = Utc::now();
    store.record_workspace("/b", at).await.expect("record");
    store.close().await;
    let reopened = common::open(&path).await;
    let list = reopened.recent_workspaces().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].path.as_str(), list[0].used_at), ("/b", at));
}

#[tokio::test]
async fn seeding_adds_only_unknown_workspaces_behind_the_known_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let now = Utc::now();
    store.record_workspace("/old", now).await.expect("record");
    store.record_workspace("/new", now).await.expect("record");
    let seeds: Vec<String> = ["/s1", "/old", "", "/s2", "/s1"].map(String::from).to_vec();
    let added = store.seed_workspaces(&seeds, now).await.expect("seed");
    assert_eq!(added, 2);
    let list = store.recent_workspaces().await.expect("list");
    assert_eq!(paths(&list), ["/new", "/old", "/s1", "/s2"]);
    let version = store.store_version().await.expect("version");
    assert_eq!(store.seed_workspaces(&seeds, now).await.expect("seed again"), 0);
    assert_eq!(store.store_version().await.expect("version"), version);

    // A full list keeps its twenty; seeds behind them are not kept.
    for i in 0..RECENT_WORKSPACES_KEPT {
        store.record_workspace(&format!("/w{i}"), now).await.expect("record");
    }
    let full = store.recent_workspaces().await.expect("list");
    assert_eq!(store.seed_workspaces(&["/late".to_owned()], now).await.expect("seed"), 0);
    assert_eq!(store.recent_workspaces().await.expect("list"), full);
}
