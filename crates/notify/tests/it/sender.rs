//! The sender against a real receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use openloom_core::{
    DeliveryQuery, DeliveryStatus, EventBus, Outbox, Store, Task, TaskId, TaskSpec, TaskStatus,
    TaskUpdate,
};
use openloom_notify::{HookConfig, RetryPolicy, Sender, SenderOptions, Webhook};
use openloom_store_sqlite::SqliteStore;
use openloom_testkit::receiver::{Answer, Receiver};

const SECRET: &str = "a-long-random-test-secret";

fn webhook(url: &str, timeout_seconds: u64) -> Webhook {
    let config = HookConfig { timeout_seconds: Some(timeout_seconds), ..HookConfig::for_url(url) };
    Webhook::from_config(&config, |_| Some(SECRET.to_owned())).expect("valid hook")
}

fn quick() -> SenderOptions {
    SenderOptions {
        concurrency: 4,
        poll: Duration::from_millis(100),
        retry: RetryPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_age: Duration::from_secs(60),
        },
    }
}

async fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir.path().join("o.sqlite3")).await.expect("open"))
}

fn task(id: &str) -> Task {
    Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "goal"), Utc::now())
}

/// Starts `sender` on `bus`; the returned sender stops it.
fn run(sender: Sender, bus: &EventBus) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(sender.run(bus.clone(), stopped));
    stop
}

#[tokio::test]
async fn a_receiver_that_fails_first_gets_the_same_delivery_id_again() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    receiver.answer_next(&[Answer::Status(503), Answer::Status(500)]);
    let sender =
        Sender::new(store.clone(), vec![webhook(&receiver.url(), 5)], quick()).expect("sender");
    sender.register().await.expect("register");
    let bus = EventBus::new();
    let _stop = run(sender, &bus);

    store.create_task(&task("task_retry")).await.expect("create");
    let got = receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|r| r.verified), "every attempt is signed: {got:?}");
    assert!(got.iter().all(|r| r.delivery_id == got[0].delivery_id), "one id on every retry");
    assert!(got.iter().all(|r| r.event == "task.created"));
    assert_eq!(got[2].body["task"]["id"], "task_retry");

    let delivery = store.get_delivery(&got[0].delivery_id).await.expect("get").expect("known");
    let delivery = wait_status(&*store, &delivery.id, DeliveryStatus::Delivered).await;
    assert_eq!(delivery.attempts, 3);
}

#[tokio::test]
async fn a_delivery_goes_out_within_a_second_of_its_event() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    // The safety-net poll is long: only the event can explain a quick delivery.
    let options = SenderOptions { poll: Duration::from_secs(30), ..quick() };
    let sender =
        Sender::new(store.clone(), vec![webhook(&receiver.url(), 5)], options).expect("sender");
    sender.register().await.expect("register");
    let bus = EventBus::new();
    let _stop = run(sender, &bus);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let version = store.create_task(&task("task_quick")).await.expect("create");
    bus.emit(openloom_core::Event::new(
        TaskId::from("task_quick"),
        version,
        openloom_core::EventPayload::Created { name: "task_quick".into(), workspace: "/w".into() },
    ));
    let got = receiver.wait_for(Duration::from_secs(5), |r| !r.is_empty()).await;
    let took = started.elapsed();
    assert_eq!(got.len(), 1);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_neither_the_writes_nor_the_other_hooks() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    let stuck = Receiver::start(SECRET).await.expect("receiver");
    stuck.answer_next(&[Answer::Hang; 64]);
    let live = Receiver::start(SECRET).await.expect("receiver");
    let hooks = vec![webhook(&stuck.url(), 30), webhook(&live.url(), 5)];
    let sender = Sender::new(store.clone(), hooks, quick()).expect("sender");
    sender.register().await.expect("register");
    let bus = EventBus::new();
    let _stop = run(sender, &bus);

    let started = Instant::now();
    for i in 0..50 {
        store.create_task(&task(&format!("task_{i:02}"))).await.expect("create");
    }
    let writes = started.elapsed();
    let got = live.wait_for(Duration::from_secs(10), |r| r.len() >= 50).await;
    assert_eq!(got.len(), 50, "the live hook got everything while the other hangs");
    assert!(writes < Duration::from_secs(10), "50 writes took {writes:?}");
    let in_flight = stuck.received().len();
    assert_eq!(in_flight, 4, "the hanging hook has its 4 slots in flight, no more");
}

#[tokio::test]
async fn an_old_failing_delivery_dies_and_redelivery_sends_it_under_its_id() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    receiver.answer_next(&[Answer::Status(500); 3]);
    let options = SenderOptions {
        retry: RetryPolicy { max_age: Duration::from_millis(300), ..quick().retry },
        ..quick()
    };
    let sender =
        Sender::new(store.clone(), vec![webhook(&receiver.url(), 5)], options).expect("sender");
    sender.register().await.expect("register");
    let bus = EventBus::new();
    let _stop = run(sender, &bus);

    store.create_task(&task("task_dead")).await.expect("create");
    let first = receiver.wait_for(Duration::from_secs(5), |r| !r.is_empty()).await;
    let id = first[0].delivery_id.clone();
    let dead = wait_status(&*store, &id, DeliveryStatus::Dead).await;
    assert!(dead.last_error.as_deref().is_some_and(|e| e.contains("HTTP 500")), "{dead:?}");
    assert!(dead.last_error.as_deref().is_some_and(|e| e.contains("gave up")), "{dead:?}");
    let attempts = receiver.received().len();

    // Redelivered, it goes out again with the same id and this time lands.
    receiver.clear_answers();
    store.redeliver(&id, Utc::now()).await.expect("redeliver");
    let all = receiver.wait_for(Duration::from_secs(5), |r| r.len() > attempts).await;
    let last = all.last().expect("one more");
    assert_eq!(last.delivery_id, id);
    wait_status(&*store, &id, DeliveryStatus::Delivered).await;
}

#[tokio::test]
async fn only_the_hooks_events_are_sent_and_a_bad_signature_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    // A receiver with another secret refuses with 401, as the docs' receiver does.
    let wrong = Receiver::start("not the secret").await.expect("receiver");
    let right = Receiver::start(SECRET).await.expect("receiver");
    let done_only = HookConfig {
        events: vec![openloom_core::NoticeEvent::Completed],
        ..HookConfig::for_url(right.url())
    };
    let hooks = vec![
        webhook(&wrong.url(), 5),
        Webhook::from_config(&done_only, |_| Some(SECRET.to_owned())).expect("valid"),
    ];
    let sender = Sender::new(store.clone(), hooks, quick()).expect("sender");
    sender.register().await.expect("register");
    let bus = EventBus::new();
    let _stop = run(sender, &bus);

    let id = TaskId::from("task_events");
    store.create_task(&task("task_events")).await.expect("create");
    let done = TaskUpdate { status: Some(TaskStatus::Completed), ..TaskUpdate::default() };
    store.update_task(&id, &done, None).await.expect("complete");
    let got = right.wait_for(Duration::from_secs(5), |r| !r.is_empty()).await;
    assert_eq!(got.iter().map(|r| r.event.as_str()).collect::<Vec<_>>(), ["task.completed"]);
    let refused = wrong.wait_for(Duration::from_secs(5), |r| r.len() >= 2).await;
    assert!(refused.iter().all(|r| !r.verified), "{refused:?}");
    let query = DeliveryQuery { limit: 10, status: Some(DeliveryStatus::Pending) };
    let pending = store.list_deliveries(&query).await.expect("list");
    assert!(
        pending.iter().any(|d| d.last_error.as_deref() == Some("the receiver answered HTTP 401 Unauthorized")),
        "{pending:?}"
    );
}

async fn wait_status(
    store: &dyn Outbox,
    id: &str,
    status: DeliveryStatus,
) -> openloom_core::WebhookDelivery {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delivery = store.get_delivery(id).await.expect("get").expect("known");
        if delivery.status == status || Instant::now() > deadline {
            assert_eq!(delivery.status, status, "{delivery:?}");
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hook_nobody_sends_to_any_more_ends_dead_not_pending_for_ever() {
    let dir = tempfile::tempdir().expect("dir");
    let store = store(&dir).await;
    // A hook registered by a process that is gone: its deliveries pile up unsent.
    store
        .register_hooks(&[openloom_core::Hook::new("http://127.0.0.1:9/gone", vec![])])
        .await
        .expect("register");
    store.create_task(&task("task_orphan")).await.expect("create");
    let options = SenderOptions {
        retry: RetryPolicy { max_age: Duration::from_millis(50), ..quick().retry },
        ..quick()
    };
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    let sender =
        Sender::new(store.clone(), vec![webhook(&receiver.url(), 5)], options).expect("sender");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sender.expire().await.expect("expire"), 1);
    let dead = DeliveryQuery { limit: 10, status: Some(DeliveryStatus::Dead) };
    let listed = store.list_deliveries(&dead).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].last_error.as_deref().is_some_and(|e| e.contains("maximum age")),
        "{listed:?}"
    );
    assert!(receiver.received().is_empty(), "another process's hook is never sent to");
}
