//! Behaviour parity with core's `MemoryStore`: the same scenario, run against both,
//! must produce the same transcript (results, versions and errors).

use chrono::{DateTime, Duration, TimeZone, Utc};
use openloom_core::{
    CheckLogEntry, Guard, Lease, LogQuery, MemoryStore, Store, TaskId, TaskQuery, TaskStatus,
    TaskUpdate,
};
use serde_json::{Value, json};

use crate::common;

/// What a call returned, as JSON; `updated_at` is dropped because an update stamps
/// it with the wall clock, which differs between the two runs.
fn record<T: serde::Serialize>(
    out: &mut Vec<Value>,
    label: &str,
    result: openloom_core::Result<T>,
) {
    let value = match result {
        Ok(value) => {
            let mut value = serde_json::to_value(value).expect("results serialize");
            strip_updated_at(&mut value);
            value
        }
        Err(err) => json!({ "error": error_kind(&err) }),
    };
    out.push(json!({ "call": label, "result": value }));
}

fn strip_updated_at(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("updated_at");
            map.values_mut().for_each(strip_updated_at);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_updated_at),
        _ => {}
    }
}

fn error_kind(err: &openloom_core::Error) -> String {
    match err {
        openloom_core::Error::NotFound { what, id } => format!("not found: {what} {id}"),
        openloom_core::Error::Conflict(_) => "conflict".into(),
        openloom_core::Error::Invalid(_) => "invalid".into(),
        other => format!("unexpected: {other}"),
    }
}

/// A guarded write of a small update, its outcome as text.
async fn guarded_write(
    store: &dyn Store,
    id: &TaskId,
    guard: Guard,
    entry: &CheckLogEntry,
) -> openloom_core::Result<String> {
    let update = TaskUpdate { current_step: Some(1), ..TaskUpdate::default() };
    store.write_task(id, &update, Some(entry), &guard).await.map(|outcome| format!("{outcome:?}"))
}

/// An error's kind, for recording a borrowed result.
fn clone_kind(err: &openloom_core::Error) -> openloom_core::Error {
    openloom_core::Error::Invalid(error_kind(err))
}

fn ids(
    tasks: openloom_core::Result<Vec<openloom_core::Task>>,
) -> openloom_core::Result<Vec<String>> {
    tasks.map(|ts| ts.into_iter().map(|t| t.id.to_string()).collect())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().expect("valid date")
        + Duration::nanoseconds(123_456_789)
}

/// Every operation of the trait, with every query option, in one scenario.
async fn scenario(store: &dyn Store) -> Vec<Value> {
    let mut out = Vec::new();
    let now = t0();
    let statuses = TaskStatus::ALL;
    for i in 0..30_i64 {
        let mut task = common::task(&format!("task_{i:03}"), now - Duration::seconds(i));
        task.status = statuses[usize::try_from(i).expect("small") % statuses.len()];
        task.next_check_at = match i % 4 {
            0 => None,
            1 => Some(now - Duration::seconds(100 - i)),
            2 => Some(now + Duration::seconds(i)),
            _ => Some(now - Duration::seconds(5)),
        };
        task.check_interval_seconds = if i % 5 == 0 { 0 } else { 300 };
        task.completed_steps = vec![1, 2];
        task.session_ids = vec![format!("ses_{i}")];
        task.error = (i % 3 == 0).then(|| "boom".to_owned());
        record(&mut out, "create", store.create_task(&task).await);
    }
    for id in ["other_1", "Task_upper"] {
        record(&mut out, "create", store.create_task(&common::task(id, now)).await);
    }
    record(&mut out, "create duplicate", store.create_task(&common::task("task_005", now)).await);

    let queries = [
        TaskQuery::newest(5),
        TaskQuery::newest(0),
        TaskQuery::newest(100),
        TaskQuery { before: Some(TaskId::from("task_010")), ..TaskQuery::newest(4) },
        TaskQuery { before: Some(TaskId::from("task_000")), ..TaskQuery::newest(4) },
        TaskQuery { statuses: vec![TaskStatus::Running], ..TaskQuery::newest(50) },
        TaskQuery {
            statuses: vec![TaskStatus::Waiting, TaskStatus::Pending, TaskStatus::Waiting],
            ..TaskQuery::newest(6)
        },
        TaskQuery {
            before: Some(TaskId::from("task_020")),
            statuses: vec![TaskStatus::Completed],
            ..TaskQuery::newest(2)
        },
        TaskQuery { before: Some(TaskId::from("task_missing")), ..TaskQuery::newest(4) },
    ];
    for query in &queries {
        record(&mut out, &format!("list {query:?}"), ids(store.list_tasks(query).await));
    }
    record(&mut out, "list full", store.list_tasks(&TaskQuery::newest(3)).await);

    for (prefix, limit) in
        [("task_01", 50), ("", 4), ("nope", 5), ("TASK", 5), ("task_", 3), ("Task", 5)]
    {
        record(
            &mut out,
            &format!("prefix {prefix:?}"),
            ids(store.find_by_prefix(prefix, limit).await),
        );
    }

    for (at, limit) in
        [(now, 100), (now, 3), (now - Duration::hours(1), 100), (now + Duration::hours(1), 100)]
    {
        record(&mut out, &format!("due {at} {limit}"), ids(store.list_due_tasks(at, limit).await));
    }

    let a = TaskId::from("task_001");
    let entry = |summary: &str| {
        let mut e = CheckLogEntry::new(now, TaskStatus::Running, summary, "detail");
        e.evidence = Some(json!({ "passed": summary.len() % 2 == 0 }));
        e
    };
    let update = TaskUpdate {
        status: Some(TaskStatus::Running),
        error: Some(None),
        next_check_at: Some(Some(now + Duration::seconds(300))),
        current_step: Some(2),
        completed_steps: Some(vec![1, 2, 3]),
        progress: Some(0.5),
        active_session_id: Some(Some("ses_x".into())),
        consecutive_errors: Some(3),
        ..TaskUpdate::default()
    };
    record(
        &mut out,
        "update with log",
        store.update_task(&a, &update, Some(&entry("first"))).await,
    );
    record(
        &mut out,
        "update without log",
        store.update_task(&a, &TaskUpdate::default(), None).await,
    );
    record(
        &mut out,
        "update missing",
        store.update_task(&TaskId::from("task_x"), &update, None).await,
    );
    record(&mut out, "get updated", store.get_task(&a).await);
    record(&mut out, "get missing", store.get_task(&TaskId::from("task_x")).await);

    // Guarded writes: the revision and the lease are checked inside the write. A
    // lease is valid by the wall clock when written, so these claims last an hour
    // from now, whatever the scenario's fixed time.
    let c = TaskId::from("task_003");
    let wall = Utc::now();
    let hour = wall + Duration::hours(1);
    let first = store.claim_task(&c, "h1", wall, hour).await;
    record(&mut out, "claim c", first.as_ref().map(Clone::clone).map_err(clone_kind));
    let lease = first.ok().flatten().expect("a free task is claimed");
    record(&mut out, "claim c elsewhere", store.claim_task(&c, "h2", wall, hour).await);
    record(&mut out, "renew claim c", store.claim_task(&c, "h1", wall, hour).await);
    let guarded = Guard::at_revision(0).holding(lease.clone());
    let guarded_entry = entry("guarded");
    let write = |guard: Guard| guarded_write(store, &c, guard, &guarded_entry);
    record(&mut out, "guarded write", write(guarded.clone()).await);
    record(&mut out, "stale revision", write(guarded).await);
    let forged = Lease { owner: "h1".into(), epoch: 7 };
    record(&mut out, "forged lease", write(Guard::at_revision(1).holding(forged)).await);
    let expired = hour + Duration::seconds(1);
    record(
        &mut out,
        "take expired",
        store.claim_task(&c, "h2", expired, expired + Duration::hours(1)).await,
    );
    record(&mut out, "lost lease", write(Guard::at_revision(1).holding(lease)).await);
    record(&mut out, "release h2", store.release_claims("h2").await);
    record(&mut out, "claim after release", store.claim_task(&c, "h1", wall, hour).await);
    record(&mut out, "unguarded", write(Guard::none()).await);
    record(&mut out, "get guarded", store.get_task(&c).await);

    // Exact repeats in a row are one log entry with a count.
    let d = TaskId::from("task_004");
    let busy = CheckLogEntry::new(now, TaskStatus::Running, "Agent is busy", "busy");
    let busy_later = CheckLogEntry { at: now + Duration::seconds(60), ..busy.clone() };
    record(
        &mut out,
        "append repeats",
        store.append_check_log(&d, &[busy.clone(), busy.clone()]).await,
    );
    record(
        &mut out,
        "update repeat",
        store.update_task(&d, &TaskUpdate::default(), Some(&busy_later)).await,
    );
    record(&mut out, "append different", store.append_check_log(&d, &[entry("other"), busy]).await);
    record(&mut out, "log d", store.check_log(&d, &LogQuery::default()).await);

    let b = TaskId::from("task_002");
    let batch: Vec<CheckLogEntry> = (0..5).map(|n| entry(&format!("check {n}"))).collect();
    record(&mut out, "append to b", store.append_check_log(&b, &batch).await);
    record(&mut out, "append to a", store.append_check_log(&a, &batch[..2]).await);
    record(&mut out, "append empty", store.append_check_log(&a, &[]).await);
    record(
        &mut out,
        "append missing",
        store.append_check_log(&TaskId::from("task_x"), &batch).await,
    );
    record(&mut out, "get b", store.get_task(&b).await);

    let log_queries = [
        LogQuery::default(),
        LogQuery { after: None, limit: 2 },
        LogQuery { after: Some(3), limit: 2 },
        LogQuery { after: Some(1_000), limit: 10 },
        LogQuery { after: Some(0), limit: 0 },
    ];
    for query in &log_queries {
        record(&mut out, &format!("log a {query:?}"), store.check_log(&a, query).await);
        record(&mut out, &format!("log b {query:?}"), store.check_log(&b, query).await);
    }
    record(
        &mut out,
        "log missing",
        store.check_log(&TaskId::from("task_x"), &LogQuery::default()).await,
    );

    let mut counts: Vec<(String, u64)> = store
        .count_by_status()
        .await
        .expect("counts")
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    counts.sort();
    out.push(json!({ "call": "counts", "result": counts }));

    record(&mut out, "delete a", store.delete_task(&a).await);
    record(&mut out, "delete a again", store.delete_task(&a).await);
    record(&mut out, "get deleted", store.get_task(&a).await);
    record(&mut out, "log of deleted", store.check_log(&a, &LogQuery::default()).await);
    record(&mut out, "list after delete", ids(store.list_tasks(&TaskQuery::newest(100)).await));
    // A new entry after a delete gets a fresh sequence number in both stores.
    record(&mut out, "append after delete", store.append_check_log(&b, &batch[..1]).await);
    record(
        &mut out,
        "log b after delete",
        store.check_log(&b, &LogQuery { after: Some(5), limit: 10 }).await,
    );
    record(&mut out, "version", store.store_version().await);
    out
}

#[tokio::test]
async fn the_sqlite_store_behaves_like_the_memory_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = common::open(&common::db_path(dir.path())).await;
    let memory = MemoryStore::new();
    let expected = scenario(&memory).await;
    let actual = scenario(&sqlite).await;
    assert_eq!(expected.len(), actual.len());
    for (want, got) in expected.iter().zip(&actual) {
        assert_eq!(want, got, "\nmemory: {want:#}\nsqlite: {got:#}");
    }
    // The scenario exercised real errors, not only successes.
    let text = serde_json::to_string(&actual).expect("serializes");
    assert!(text.contains("not found: task task_x") && text.contains("conflict"));
    // ... and guards that refused, and repeats that were counted.
    for shown in ["Rejected(Changed", "Rejected(LeaseLost", "\"repeats\":3", "\"epoch\":3"] {
        assert!(text.contains(shown), "{shown} missing from the transcript");
    }
}

#[tokio::test]
async fn every_write_bumps_the_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let now = Utc::now();
    let v1 = store.create_task(&common::task("task_a", now)).await.expect("create");
    let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "");
    let id = TaskId::from("task_a");
    let v2 = store.update_task(&id, &TaskUpdate::default(), Some(&entry)).await.expect("update");
    let v3 = store.append_check_log(&id, &[entry]).await.expect("append");
    let v4 = store.delete_task(&id).await.expect("delete");
    assert!(v1 < v2 && v2 < v3 && v3 < v4, "{v1} {v2} {v3} {v4}");
    assert_eq!(store.store_version().await.expect("version"), v4);
}
