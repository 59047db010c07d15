use std::sync::Mutex as StdMutex;

use super::*;
use crate::conformance;
use crate::{MemoryAgent, MemoryStore, Store, TaskQuery};

#[test]
fn origins_are_checked_words_and_keys() {
    assert_eq!(Origin::new("inbox", "a.yaml@12ab").expect("valid").as_str(), "inbox:a.yaml@12ab");
    assert!(Origin::new("Inbox", "x").is_err());
    assert!(Origin::new("", "x").is_err());
    assert!(Origin::new("github", " ").is_err());
    assert!(Origin::new("github", "a\nb").is_err());
    let long = "x".repeat(MAX_ORIGIN_LEN);
    let err = Origin::new("github", &long).expect_err("too long");
    assert!(err.to_string().contains("at most 512"), "{err}");
}

#[tokio::test]
async fn the_memory_store_records_origins_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    conformance::origins_are_recorded_once(store.clone(), store).await;
}

/// A feed whose settlements are remembered.
struct Recorded {
    feed: Feed,
    settled: StdMutex<Vec<(String, std::result::Result<Admitted, String>)>>,
}

#[async_trait]
impl Source for Recorded {
    fn name(&self) -> &str {
        self.feed.name()
    }
    async fn next(&self) -> Result<Option<Arrival>> {
        self.feed.next().await
    }
    async fn settle(&self, arrival: &Arrival, outcome: &Result<Admitted>) {
        let outcome = match outcome {
            Ok(admitted) => Ok(admitted.clone()),
            Err(error) => Err(error.to_string()),
        };
        self.settled.lock().expect("lock").push((arrival.origin.to_string(), outcome));
    }
}

fn arrival(origin: &str, workspace: &str) -> Arrival {
    let (kind, key) = origin.split_once(':').expect("kind:key");
    Arrival {
        origin: Origin::new(kind, key).expect("origin"),
        spec: TaskSpec::new("from a feed", workspace, "do it"),
    }
}

#[tokio::test]
async fn take_in_creates_one_task_per_origin_and_settles_each_arrival() {
    let dir = std::env::temp_dir();
    let workspace = dir.to_string_lossy().into_owned();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let harness = conformance::harness(store.clone(), Arc::new(MemoryAgent::replying(&[])));
    let mut events = harness.bus().receiver();
    let (feeder, feed) = super::feed("test", 8);
    let source = Arc::new(Recorded { feed, settled: StdMutex::new(Vec::new()) });
    let (_stop, stop_signal) = watch::channel(false);

    feeder.offer(arrival("github:d1", &workspace)).expect("queued");
    feeder.offer(arrival("github:d1", &workspace)).expect("queued");
    feeder.offer(arrival("github:d2", "/no/such/dir/anywhere")).expect("queued");
    drop(feeder);
    // The feed ends when its last feeder is gone, and so does the intake.
    take_in(source.clone(), harness, stop_signal).await;

    let settled = source.settled.lock().expect("lock").clone();
    assert_eq!(settled.len(), 3, "{settled:?}");
    let Ok(Admitted::New(id)) = &settled[0].1 else { panic!("{settled:?}") };
    assert_eq!(settled[1].1, Ok(Admitted::AlreadyHad(id.clone())));
    assert!(settled[2].1.as_ref().is_err_and(|e| e.contains("/no/such/dir")), "{settled:?}");
    let tasks = store.list_tasks(&TaskQuery::newest(10)).await.expect("list");
    assert_eq!(tasks.iter().map(|t| &t.id).collect::<Vec<_>>(), vec![id]);
    let created = events.try_recv().expect("one created event");
    assert_eq!(&created.task_id, id);
    assert!(events.try_recv().is_err(), "a repeat announces nothing");
}

#[tokio::test]
async fn take_in_stops_when_told_while_waiting() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let harness = conformance::harness(store, Arc::new(MemoryAgent::replying(&[])));
    let (feeder, feed) = super::feed("idle", 1);
    let (stop, stop_signal) = watch::channel(false);
    let running = tokio::spawn(take_in(Arc::new(feed), harness, stop_signal));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!running.is_finished(), "the intake waits for work");
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("stopped").expect("joined");
    assert_eq!(feeder.offer(arrival("github:late", "/tmp")), Err(Refused::Closed));
}

#[test]
fn a_full_feed_refuses_instead_of_queueing_without_bound() {
    let (feeder, _feed) = super::feed("small", 1);
    feeder.offer(arrival("github:1", "/tmp")).expect("first fits");
    assert_eq!(feeder.offer(arrival("github:2", "/tmp")), Err(Refused::Full));
}
