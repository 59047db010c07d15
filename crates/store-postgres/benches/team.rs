//! Team-mode benchmark (issue #14): 1,000 active tasks driven by harnesses against a
//! simulated OpenCode, on PostgreSQL (one and two workers) and on SQLite (one worker)
//! side by side. Four figures:
//!
//! 1. `claim_due_tasks` (the due query plus the claim, batch 100) latency with one
//!    worker, then two at once (each its own store and pool, distinct owners); before
//!    each timed call the worker's claims are released, so every call claims anew.
//! 2. Check throughput: rounds in which all 1,000 tasks are due, each worker calling
//!    `Harness::tick` until nothing is left; checks per second, and per round how many
//!    tasks were checked by more than one worker (a counting checker records them).
//! 3. Idle → prompt: one `Harness::run` over 1,000 running tasks whose simulated
//!    sessions go idle at random (turns of 1–20 s, three each); the time from the idle
//!    event the fake agent puts on its stream to the harness's next prompt to that
//!    session, measured in-process (no HTTP, no SSE parsing).
//! 4. This process's resident memory (`/proc/self/status`) during figure 3.
//!
//! Figure 2 runs twice: with the simulated OpenCode answering at once (CPU-bound: the
//! workers, PostgreSQL and the simulation share this machine's cores) and with every
//! request answered after [`REMOTE_RTT`] (latency-bound, as with OpenCode across a
//! network: a worker's checks wait, at most `max_concurrent_checks` at once).
//!
//! Run with `OPENLOOM_TEST_POSTGRES=postgres://… cargo bench -p openloom-store-postgres
//! --bench team` (`cargo xtask bench` starts a throwaway server); without the variable
//! it measures SQLite only. Prints Markdown tables.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::BoxStream;
use openloom_core::{
    AgentEvent, AgentMessage, AgentServer, CheckContext, CheckOutcome, CheckResult, Checker,
    Dialogue, DueQuery, EventBus, Harness, HarnessConfig, HarnessParts, Health, MessagePart, Role,
    Session, SessionActivity, SessionRef, Store, Task, TaskId, TaskSpec, TaskStatus, TaskUpdate,
    WorkspacePolicy,
};
use openloom_store_postgres::PostgresStore;
use openloom_store_postgres::testing::TEST_DATABASE_ENV;
use openloom_store_sqlite::SqliteStore;
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const TASKS: usize = 1000;
const BATCH: usize = 100;
const CLAIM_RUNS: usize = 300;
/// Throughput rounds per configuration; the first is a warm-up, not timed in.
const ROUNDS: usize = 4;
/// Idle turns per session in the idle → prompt run, each 1–20 s long.
const TURNS: usize = 3;
const TURN_MS: (u64, u64) = (1_000, 20_000);

/// The round trip of the latency-bound throughput figure: an OpenCode server on
/// another machine of the team's network, answering at once.
const REMOTE_RTT: Duration = Duration::from_millis(20);

/// How long a throughput round may go without a check before it is given up.
const STALLED: Duration = Duration::from_secs(10);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The load average over the last minute (other work on the machine skews figures).
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p99 of `samples` (sorted here).
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (median, p99)
}

/// A small deterministic generator (xorshift64): reproducible runs, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------
// The simulated OpenCode.

/// An agent server in memory that scales to 1,000 sessions (maps, short transcripts)
/// and timestamps what the latency figures need. In `instant` mode every prompt is
/// answered at once and the session stays idle; otherwise a prompt makes the session
/// busy until the driver ends its turn ([`Sim::finish_turn`]).
struct Sim {
    instant: bool,
    /// The round trip every request waits before it is answered, in microseconds:
    /// an OpenCode across a network, for the latency-bound throughput figure.
    rtt_micros: std::sync::atomic::AtomicU64,
    state: Mutex<SimState>,
    events: mpsc::UnboundedSender<AgentEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<AgentEvent>>>,
    /// Told the session of every prompt, for the driver to schedule its next turn.
    prompted: Option<mpsc::UnboundedSender<String>>,
}

#[derive(Default)]
struct SimState {
    next_id: u64,
    sessions: HashMap<String, Session>,
    messages: HashMap<String, Vec<AgentMessage>>,
    activity: HashMap<String, SessionActivity>,
    /// Sessions announced idle and not prompted since, with when.
    idle_since: HashMap<String, Instant>,
    /// Idle event → next prompt, per prompt that followed an idle event.
    latencies: Vec<Duration>,
}

/// Messages a simulated session keeps (the harness reads the newest few).
const KEPT_MESSAGES: usize = 6;

impl Sim {
    fn new(instant: bool, prompted: Option<mpsc::UnboundedSender<String>>) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        Sim {
            instant,
            rtt_micros: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(SimState::default()),
            events,
            receiver: Mutex::new(Some(receiver)),
            prompted,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    /// Makes every request from now on wait `rtt` before it is answered.
    fn set_rtt(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        self.rtt_micros.store(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits the round trip, if one is set.
    async fn round_trip(&self) {
        let micros = self.rtt_micros.load(std::sync::atomic::Ordering::Relaxed);
        if micros > 0 {
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
    }

    /// Ends a session's turn as OpenCode would: the reply, idle, and an idle event.
    fn finish_turn(&self, session_id: &str) {
        {
            let mut state = self.lock();
            push_message(&mut state, session_id, Role::Assistant, "Step done. Shall I continue?");
            state.activity.insert(session_id.to_owned(), SessionActivity::Idle);
            state.idle_since.insert(session_id.to_owned(), Instant::now());
        }
        let _ = self.events.send(AgentEvent::SessionIdle { session_id: session_id.to_owned() });
    }

    fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut self.lock().latencies)
    }

    fn still_idle(&self) -> usize {
        self.lock().idle_since.len()
    }
}

fn push_message(state: &mut SimState, session_id: &str, role: Role, text: &str) {
    state.next_id += 1;
    let now = Utc::now();
    let message = AgentMessage {
        id: format!("msg_{:08}", state.next_id),
        role,
        created_at: Some(now),
        completed_at: Some(now),
        error: None,
        parts: vec![MessagePart::Text { text: text.to_owned() }],
        tokens: None,
        cost: None,
        model: None,
    };
    let messages = state.messages.entry(session_id.to_owned()).or_default();
    messages.push(message);
    if messages.len() > KEPT_MESSAGES {
        messages.remove(0);
    }
}

#[async_trait]
impl AgentServer for Sim {
    async fn health(&self) -> Health {
        Health::Reachable { version: Some("sim".into()) }
    }

    async fn create_session(&self, directory: &str, title: &str) -> openloom_core::Result<Session> {
        self.round_trip().await;
        let mut state = self.lock();
        state.next_id += 1;
        let session = Session {
            id: format!("ses_{:08}", state.next_id),
            directory: directory.to_owned(),
            title: title.to_owned(),
            parent_id: None,
            created_at: Some(Utc::now()),
            updated_at: None,
            archived_at: None,
        };
        state.sessions.insert(session.id.clone(), session.clone());
        push_message(&mut state, &session.id, Role::User, "start");
        push_message(&mut state, &session.id, Role::Assistant, "working on it");
        let activity = if self.instant { SessionActivity::Idle } else { SessionActivity::Busy };
        state.activity.insert(session.id.clone(), activity);
        Ok(session)
    }

    async fn find_session(&self, session_id: &str) -> openloom_core::Result<Option<Session>> {
        Ok(self.lock().sessions.get(session_id).cloned())
    }

    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        _agent: Option<&str>,
    ) -> openloom_core::Result<()> {
        self.round_trip().await;
        let now = Instant::now();
        {
            let mut state = self.lock();
            if let Some(idle) = state.idle_since.remove(&session.id) {
                state.latencies.push(now - idle);
            }
            push_message(&mut state, &session.id, Role::User, prompt);
            if self.instant {
                push_message(&mut state, &session.id, Role::Assistant, "Done. Shall I continue?");
            } else {
                state.activity.insert(session.id.clone(), SessionActivity::Busy);
            }
        }
        if let Some(prompted) = &self.prompted {
            let _ = prompted.send(session.id.clone());
        }
        Ok(())
    }

    async fn session_activity(
        &self,
        _directories: &[String],
    ) -> openloom_core::Result<HashMap<String, SessionActivity>> {
        self.round_trip().await;
        Ok(self.lock().activity.clone())
    }

    async fn messages(
        &self,
        session: &SessionRef,
        limit: usize,
    ) -> openloom_core::Result<Vec<AgentMessage>> {
        self.round_trip().await;
        let state = self.lock();
        let all = state.messages.get(&session.id).map(Vec::as_slice).unwrap_or_default();
        Ok(all[all.len().saturating_sub(limit)..].to_vec())
    }

    async fn abort(&self, session: &SessionRef) -> openloom_core::Result<()> {
        self.lock().activity.insert(session.id.clone(), SessionActivity::Idle);
        Ok(())
    }

    fn events(&self) -> Option<BoxStream<'static, AgentEvent>> {
        let mut receiver = lock(&self.receiver).take()?;
        Some(Box::pin(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))))
    }
}

/// Records which worker looked at which task; reports nothing done, so the
/// dialogue's go-ahead is what the harness sends.
struct Counting {
    worker: usize,
    seen: Arc<Mutex<Vec<(TaskId, usize)>>>,
}

#[async_trait]
impl Checker for Counting {
    async fn check(&self, context: CheckContext<'_>) -> openloom_core::Result<CheckResult> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((context.task.id.clone(), self.worker));
        Ok(CheckResult::default())
    }
}

/// Words for the harness: every transcript asks "shall I continue?", so a check of
/// an idle session answers with a go-ahead whatever woke it.
struct GoAhead;

impl Dialogue for GoAhead {
    fn bootstrap(&self, spec: &TaskSpec, _: usize) -> String {
        spec.goal.clone()
    }
    fn periodic_check(&self, _: &TaskSpec, _: usize, _: &CheckResult, _: &[u32]) -> String {
        "Are you done?".into()
    }
    fn next_step(&self, _: &TaskSpec, step: usize) -> String {
        format!("Go on with step {}", step + 1)
    }
    fn auto_continue(&self, _: &TaskSpec, _: usize) -> String {
        "Yes, continue.".into()
    }
    fn verification_failed(&self, _: &TaskSpec, _: Option<u32>, _: &[CheckOutcome]) -> String {
        "Fix it.".into()
    }
    fn needs_continue_reply(&self, _: &[AgentMessage]) -> bool {
        true
    }
    fn is_busy(&self, _: &[AgentMessage]) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------
// Setup.

/// Seeds `TASKS` running tasks, each with a session of `sim`; `next_check(i)` is
/// task `i`'s next check.
async fn seed(
    store: &dyn Store,
    sim: &Sim,
    workspace: &str,
    next_check: impl Fn(usize) -> chrono::DateTime<Utc>,
) -> Result<Vec<TaskId>> {
    let now = Utc::now();
    let mut ids = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let mut spec = TaskSpec::new(format!("task {i}"), workspace, "make the tests pass");
        spec.acceptance = vec!["cargo test passes".into(), "no warnings".into()];
        // The bench's checker never reports progress: keep the tasks running.
        spec.unattended.max_checks_without_progress = Some(0);
        let session = sim.create_session(workspace, &spec.name).await?;
        let mut task = Task::new(TaskId::from(format!("task_{i:012x}")), spec, now);
        task.status = TaskStatus::Running;
        task.session_ids = vec![session.id.clone()];
        task.active_session_id = Some(session.id);
        task.next_check_at = Some(next_check(i));
        store.create_task(&task).await?;
        ids.push(task.id);
    }
    Ok(ids)
}

/// Makes every task due again (one write each; not timed).
async fn make_due(store: &dyn Store, ids: &[TaskId]) -> Result<()> {
    let past = Utc::now() - chrono::Duration::seconds(10);
    for (i, id) in ids.iter().enumerate() {
        let update = TaskUpdate {
            next_check_at: Some(Some(past + chrono::Duration::milliseconds(i as i64))),
            ..TaskUpdate::default()
        };
        store.update_task(id, &update, None).await?;
    }
    Ok(())
}

fn harness(
    agent: Arc<dyn AgentServer>,
    store: Arc<dyn Store>,
    worker: usize,
    seen: &Arc<Mutex<Vec<(TaskId, usize)>>>,
) -> Arc<Harness> {
    let parts = HarnessParts {
        agent,
        store,
        checker: Arc::new(Counting { worker, seen: Arc::clone(seen) }),
        dialogue: Arc::new(GoAhead),
        bus: EventBus::new(),
        workspaces: WorkspacePolicy::any(),
    };
    let config = HarnessConfig {
        due_batch: BATCH,
        worker_name: Some(owner(worker)),
        ..HarnessConfig::default()
    };
    Arc::new(Harness::with_config(parts, config))
}

fn owner(worker: usize) -> String {
    format!("bench worker {worker}")
}

// ---------------------------------------------------------------------------------
// The measurements.

/// Figure 1: `claim_due_tasks` latency, each worker `CLAIM_RUNS` times at once, with
/// every task due.
async fn claim_latency(
    stores: &[Arc<dyn Store>],
    ids: &[TaskId],
) -> Result<(Duration, Duration, usize)> {
    make_due(stores[0].as_ref(), ids).await?;
    let runs = stores.iter().enumerate().map(|(worker, store)| {
        let store = Arc::clone(store);
        async move {
            let mut samples = Vec::with_capacity(CLAIM_RUNS);
            let mut claimed = 0;
            for _ in 0..CLAIM_RUNS {
                store.release_claims(&owner(worker)).await?;
                let now = Utc::now();
                let until = now + chrono::Duration::seconds(30);
                let start = Instant::now();
                let got = store
                    .claim_due_tasks(&owner(worker), &DueQuery::new(now, BATCH), until)
                    .await?;
                samples.push(start.elapsed());
                claimed += got.len();
            }
            store.release_claims(&owner(worker)).await?;
            Ok::<_, BoxError>((samples, claimed))
        }
    });
    let mut all = Vec::new();
    let mut claimed = 0;
    for result in futures::future::join_all(runs).await {
        let (samples, n) = result?;
        all.extend(samples);
        claimed += n;
    }
    let (median, p99) = percentiles(&mut all);
    Ok((median, p99, claimed / all.len().max(1)))
}

/// One `claim_task` (a single statement) renewed `CLAIM_RUNS` times: the cost of a
/// round trip with a write, to read figure 1 against.
async fn single_claim(store: &dyn Store, id: &TaskId) -> Result<(Duration, Duration)> {
    let mut samples = Vec::with_capacity(CLAIM_RUNS);
    for _ in 0..CLAIM_RUNS {
        let now = Utc::now();
        let start = Instant::now();
        store.claim_task(id, &owner(0), now, now + chrono::Duration::seconds(30)).await?;
        samples.push(start.elapsed());
    }
    store.release_claims(&owner(0)).await?;
    Ok(percentiles(&mut samples))
}

struct Throughput {
    checks_per_second: f64,
    /// Per timed round: checks, tasks checked by more than one worker, tasks not checked.
    rounds: Vec<(usize, usize, usize)>,
    /// Share of the checks each worker did, over the timed rounds.
    shares: Vec<usize>,
}

/// Figure 2: rounds of "every task due", the workers ticking at once until no task is
/// left for them.
async fn throughput(
    stores: &[Arc<dyn Store>],
    agent: Arc<dyn AgentServer>,
    ids: &[TaskId],
) -> Result<Throughput> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let harnesses: Vec<Arc<Harness>> = stores
        .iter()
        .enumerate()
        .map(|(worker, store)| harness(Arc::clone(&agent), Arc::clone(store), worker, &seen))
        .collect();
    let mut elapsed = Duration::ZERO;
    let mut checks = 0;
    let mut rounds = Vec::new();
    let mut shares = vec![0; stores.len()];
    for round in 0..ROUNDS {
        make_due(stores[0].as_ref(), ids).await?;
        lock(&seen).clear();
        let start = Instant::now();
        // A worker whose tick finds nothing may only have met the other's claims in
        // flight: it looks again (as `Harness::run` does every second, here sooner)
        // until every task was checked or nothing moved for a while.
        let ticks = harnesses.iter().map(|harness| {
            let seen = &seen;
            async move {
                let mut moved = Instant::now();
                loop {
                    if harness.tick().await? > 0 {
                        moved = Instant::now();
                    } else if lock(seen).len() >= ids.len() || moved.elapsed() > STALLED {
                        return Ok::<_, openloom_core::Error>(());
                    } else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
        for result in futures::future::join_all(ticks).await {
            result?;
        }
        let took = start.elapsed();
        let seen = std::mem::take(&mut *lock(&seen));
        let mut by_task: HashMap<&TaskId, HashSet<usize>> = HashMap::new();
        for (id, worker) in &seen {
            by_task.entry(id).or_default().insert(*worker);
        }
        let shared = by_task.values().filter(|workers| workers.len() > 1).count();
        let missed = ids.len() - by_task.len();
        if round > 0 {
            elapsed += took;
            checks += seen.len();
            rounds.push((seen.len(), shared, missed));
            for (_, worker) in &seen {
                shares[*worker] += 1;
            }
        } else if shared > 0 || missed > 0 {
            rounds.push((seen.len(), shared, missed));
        }
    }
    for (worker, store) in stores.iter().enumerate() {
        store.release_claims(&owner(worker)).await?;
    }
    Ok(Throughput { checks_per_second: checks as f64 / elapsed.as_secs_f64(), rounds, shares })
}

struct IdleFigures {
    samples: usize,
    median: Duration,
    p99: Duration,
    max: Duration,
    unanswered: usize,
    rss_before: f64,
    rss_max: f64,
    hwm: f64,
}

/// Figures 3 and 4: one harness running over `TASKS` busy sessions that go idle at
/// random, `TURNS` times each.
async fn idle_to_prompt(store: Arc<dyn Store>, workspace: &str) -> Result<IdleFigures> {
    let (prompted, mut prompts) = mpsc::unbounded_channel();
    let sim = Arc::new(Sim::new(false, Some(prompted)));
    let now = Utc::now();
    // Scheduled checks spread over the default five minutes, as in a running server.
    seed(store.as_ref(), &sim, workspace, |i| {
        now + chrono::Duration::milliseconds((i as i64 * 300_000) / TASKS as i64)
    })
    .await?;
    let sessions: Vec<String> = {
        let state = sim.lock();
        let mut sessions: Vec<String> = state.sessions.keys().cloned().collect();
        sessions.sort();
        sessions
    };
    let (rss_before, _) = memory();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let harness = harness(sim.clone(), store, 0, &seen);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&harness).run(stopped));
    // Let the run loop learn the sessions before the first idle event.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = tokio::time::Instant::now();
    let mut due = BinaryHeap::new();
    let mut turns_left: HashMap<String, usize> = HashMap::new();
    for session in sessions {
        let at = start + Duration::from_millis(rng.between(TURN_MS.0, TURN_MS.1));
        due.push(Reverse((at, session.clone())));
        turns_left.insert(session, TURNS - 1);
    }
    let mut rss_max = rss_before;
    let mut sample_memory = tokio::time::interval(Duration::from_millis(250));
    let mut last_idle = start;
    loop {
        let next = due.peek().map(|Reverse((at, _))| *at);
        if next.is_none() && tokio::time::Instant::now() > last_idle + Duration::from_secs(5) {
            break;
        }
        let wake = next.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(100));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {
                if let Some(Reverse((_, session))) = due.pop() {
                    sim.finish_turn(&session);
                    last_idle = tokio::time::Instant::now();
                }
            }
            Some(session) = prompts.recv() => {
                if let Some(left) = turns_left.get_mut(&session).filter(|left| **left > 0) {
                    *left -= 1;
                    let at = tokio::time::Instant::now()
                        + Duration::from_millis(rng.between(TURN_MS.0, TURN_MS.1));
                    due.push(Reverse((at, session)));
                }
            }
            _ = sample_memory.tick() => rss_max = rss_max.max(memory().0),
        }
    }
    let unanswered = sim.still_idle();
    let _ = stop.send(true);
    running.await?;
    let (_, hwm) = memory();
    let mut latencies = sim.take_latencies();
    let max = latencies.iter().copied().max().unwrap_or_default();
    let (median, p99) = percentiles(&mut latencies);
    Ok(IdleFigures {
        samples: latencies.len(),
        median,
        p99,
        max,
        unanswered,
        rss_before,
        rss_max,
        hwm,
    })
}

// ---------------------------------------------------------------------------------
// The stores and the report.

/// Opens a store (a worker's own connections) on the database being measured.
type Opener<'a> =
    &'a (dyn Fn() -> futures::future::BoxFuture<'static, Result<Arc<dyn Store>>> + Sync);

/// A store for each of `workers` workers on one database.
async fn workers(open: Opener<'_>, workers: usize) -> Result<Vec<Arc<dyn Store>>> {
    let mut stores = Vec::with_capacity(workers);
    for _ in 0..workers {
        stores.push(open().await?);
    }
    Ok(stores)
}

#[derive(Default)]
struct Report {
    claims: Vec<String>,
    throughput: Vec<String>,
    remote: Vec<String>,
    idle: Vec<String>,
    notes: Vec<String>,
}

/// Figures 3 and 4 on a fresh database `open` opens.
async fn measure_idle(
    label: &str,
    workspace: &str,
    open: Opener<'_>,
    report: &mut Report,
) -> Result<()> {
    eprintln!("team bench: {label}: idle → prompt with {TASKS} running tasks");
    report.notes.push(format!("{label}, idle → prompt: load average {} at the start", load()));
    let idle = idle_to_prompt(open().await?, workspace).await?;
    report.idle.push(format!(
        "| {label} | {} | {:.1} / {:.1} / {:.1} | {} | {:.1} | {:.1} | {:.1} |",
        idle.samples,
        ms(idle.median),
        ms(idle.p99),
        ms(idle.max),
        idle.unanswered,
        idle.rss_before,
        idle.rss_max,
        idle.hwm
    ));
    Ok(())
}

/// Figures 1 and 2 with one worker, then up to `max_workers`, on the database `open`
/// opens.
async fn measure_team(
    label: &str,
    workspace: &str,
    open: Opener<'_>,
    max_workers: usize,
    report: &mut Report,
    postgres_url: Option<&str>,
) -> Result<()> {
    let stores = workers(open, max_workers).await?;
    let sim = Arc::new(Sim::new(true, None));
    let long_ago = Utc::now() - chrono::Duration::seconds(60);
    let ids = seed(stores[0].as_ref(), &sim, workspace, |i| {
        long_ago + chrono::Duration::milliseconds(i as i64)
    })
    .await?;
    if let Some(url) = postgres_url {
        // What autovacuum does within a minute of 1,000 new rows in a live database:
        // without statistics the planner may sort every due task instead of reading
        // `tasks_due_order`, which a freshly seeded benchmark would measure instead.
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    report.notes.push(format!("{label}, claims and checks: load average {} at the start", load()));
    let (median, p99) = single_claim(stores[0].as_ref(), &ids[0]).await?;
    report.claims.push(format!(
        "| {label} | 1 | {CLAIM_RUNS} | 1 (`claim_task` alone) | {:.2} / {:.2} |",
        ms(median),
        ms(p99)
    ));
    let mut single = 0.0;
    for count in 1..=max_workers {
        eprintln!("team bench: {label}: claims and checks, {count} worker(s)");
        let (median, p99, per_call) = claim_latency(&stores[..count], &ids).await?;
        report.claims.push(format!(
            "| {label} | {count} | {CLAIM_RUNS} × {count} | {per_call} | {:.2} / {:.2} |",
            ms(median),
            ms(p99)
        ));
        let figures = throughput(&stores[..count], sim.clone(), &ids).await?;
        if count == 1 {
            single = figures.checks_per_second;
        }
        let ratio = figures.checks_per_second / single;
        let rounds: Vec<String> = figures
            .rounds
            .iter()
            .map(|(checks, shared, missed)| format!("{checks}/{shared}/{missed}"))
            .collect();
        let shares: Vec<String> = figures.shares.iter().map(ToString::to_string).collect();
        report.throughput.push(format!(
            "| {label} | {count} | {:.0} | {ratio:.2} | {} | {} |",
            figures.checks_per_second,
            rounds.join(", "),
            shares.join(" + ")
        ));
    }
    // The same rounds with OpenCode a network round trip away: a worker's checks
    // then mostly wait (at most `max_concurrent_checks` at once), and a second
    // worker adds check slots, not only CPU.
    sim.set_rtt(REMOTE_RTT);
    for count in 1..=max_workers {
        eprintln!(
            "team bench: {label}: checks with a {REMOTE_RTT:?} round trip, {count} worker(s)"
        );
        let figures = throughput(&stores[..count], sim.clone(), &ids).await?;
        if count == 1 {
            single = figures.checks_per_second;
        }
        let ratio = figures.checks_per_second / single;
        let (shared, missed) = figures
            .rounds
            .iter()
            .fold((0, 0), |(shared, missed), (_, s, m)| (shared + s, missed + m));
        report.remote.push(format!(
            "| {label} | {count} | {:.0} | {ratio:.2} | {shared} / {missed} |",
            figures.checks_per_second
        ));
    }
    sim.set_rtt(Duration::ZERO);
    Ok(())
}

fn print(report: &Report) {
    println!("\n### Due query + claim (`claim_due_tasks`, batch {BATCH}, {TASKS} due tasks)\n");
    println!("| store | workers | calls | tasks per call | median / p99 ms |");
    println!("| --- | --- | --- | --- | --- |");
    report.claims.iter().for_each(|row| println!("{row}"));
    println!(
        "\n### Check throughput ({TASKS} due tasks, {} timed rounds after a warm-up)\n",
        ROUNDS - 1
    );
    println!(
        "| store | workers | checks/s | ratio to 1 worker | per round: checks/checked by >1 worker/not checked | checks per worker |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    report.throughput.iter().for_each(|row| println!("{row}"));
    println!(
        "\n### Check throughput, every OpenCode request answered after {} ms ({TASKS} due tasks, {} timed rounds)\n",
        REMOTE_RTT.as_millis(),
        ROUNDS - 1
    );
    println!(
        "| store | workers | checks/s | ratio to 1 worker | checked by >1 worker / not checked, all rounds |"
    );
    println!("| --- | --- | --- | --- | --- |");
    report.remote.iter().for_each(|row| println!("{row}"));
    println!(
        "\n### Idle event → next prompt (one worker, {TASKS} running tasks, {TURNS} turns each of {}–{} s)\n",
        TURN_MS.0 / 1000,
        TURN_MS.1 / 1000
    );
    println!(
        "| store | samples | median / p99 / max ms | idle, never prompted | RSS before MiB | RSS max during MiB | VmHWM MiB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    report.idle.iter().for_each(|row| println!("{row}"));
    println!();
    report.notes.iter().for_each(|note| println!("- {note}"));
    println!("- load average {} at the end", load());
}

/// A store opener for PostgreSQL at `url`.
fn postgres(
    url: String,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<Arc<dyn Store>>> + Sync {
    move || {
        let url = url.clone();
        Box::pin(async move { Ok(Arc::new(PostgresStore::connect(&url).await?) as Arc<dyn Store>) })
    }
}

/// A store opener for the SQLite file `path`.
fn sqlite(
    path: std::path::PathBuf,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<Arc<dyn Store>>> + Sync {
    move || {
        let path = path.clone();
        Box::pin(async move { Ok(Arc::new(SqliteStore::open(&path).await?) as Arc<dyn Store>) })
    }
}

async fn run() -> Result<()> {
    // As `openloom serve` does, so resident memory is comparable.
    openloom_malloc::tune();
    let dir = tempfile::tempdir()?;
    let workspace = dir.path().join("repo");
    std::fs::create_dir(&workspace)?;
    let workspace = workspace.canonicalize()?.to_string_lossy().into_owned();
    let mut report = Report::default();

    let mut databases = Vec::new();
    if std::env::var(TEST_DATABASE_ENV).is_ok_and(|url| !url.is_empty()) {
        for _ in 0..2 {
            let database = openloom_store_postgres::testing::fresh_database()
                .await
                .ok_or("no PostgreSQL test database")?;
            databases.push(database);
        }
    } else {
        eprintln!(
            "team bench: {TEST_DATABASE_ENV} is unset: measuring SQLite only \
             (`export {TEST_DATABASE_ENV}=$(cargo xtask pg-setup)` adds PostgreSQL)"
        );
    }
    let pg: Vec<String> = databases.iter().map(|d| d.url.clone()).collect();

    // The idle runs first, while the process is fresh, for the memory figures.
    if let Some(url) = pg.get(1) {
        measure_idle("PostgreSQL", &workspace, &postgres(url.clone()), &mut report).await?;
    }
    measure_idle("SQLite", &workspace, &sqlite(dir.path().join("idle.sqlite3")), &mut report)
        .await?;
    if let Some(url) = pg.first() {
        let open = postgres(url.clone());
        measure_team("PostgreSQL", &workspace, &open, 2, &mut report, Some(url)).await?;
    }
    let open = sqlite(dir.path().join("team.sqlite3"));
    measure_team("SQLite", &workspace, &open, 1, &mut report, None).await?;

    print(&report);
    for database in databases {
        database.drop_database().await;
    }
    Ok(())
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}
