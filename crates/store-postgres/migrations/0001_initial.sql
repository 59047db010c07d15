-- OpenLoom's PostgreSQL schema, version 1: the SQLite store's schema 3 in one step.
--
-- Timestamps are UTC RFC 3339 text with exactly nine fractional digits and a `Z`, as
-- in the SQLite store, in the "C" collation: fixed width, so text order is time order
-- whatever the database's locale, and lossless for chrono's nanoseconds (PostgreSQL's
-- timestamptz keeps microseconds, so a task would not read back as it was written).
-- Lists and nested values are JSON text, decoded by the store.

-- Key/value metadata. `store_version` is bumped by every write, in the write's own
-- transaction and as its last statement: the row lock serialises writers at their
-- commits, so versions increase in commit order across every worker (a sequence
-- would hand out numbers in start order, and a reader could see version 7 before 6).
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('store_version', 0);

-- One row per task. `seq` is the creation order, the keyset cursor of newest-first
-- lists. `revision` is bumped by every write of the task (guarded writes).
CREATE TABLE tasks (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    workspace TEXT NOT NULL,
    status TEXT NOT NULL,
    current_step BIGINT NOT NULL,
    completed_steps_json TEXT NOT NULL,
    idle_checks BIGINT NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    check_interval_seconds BIGINT NOT NULL,
    session_ids_json TEXT NOT NULL,
    active_session_id TEXT,
    last_check_at TEXT COLLATE "C",
    next_check_at TEXT COLLATE "C",
    last_summary TEXT,
    error TEXT,
    consecutive_errors BIGINT NOT NULL,
    verification_rounds BIGINT NOT NULL,
    last_verification_json TEXT,
    last_message_id TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
    pending_requests_json TEXT NOT NULL DEFAULT '[]'
);
-- Status-filtered newest-first lists and counts per status.
CREATE INDEX tasks_by_status ON tasks (status, seq);
-- The harness's due query: active statuses, oldest next check first.
CREATE INDEX tasks_due ON tasks (status, next_check_at);

-- The check log. `seq` is global and never reused: a stable `after` cursor. Entries
-- of one task are written under that task's row lock, so within a task `seq` order is
-- commit order. An exact repeat of a task's last entry is counted on it.
CREATE TABLE check_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence_json TEXT,
    repeats BIGINT NOT NULL DEFAULT 1,
    last_at TEXT COLLATE "C"
);
CREATE INDEX check_log_by_task ON check_log (task_id, seq);

-- Claims (leases) on tasks: a worker checks only the tasks it holds. A claim lasts
-- until `until` unless renewed; `epoch` grows each time a claim is taken anew, and
-- `task_epochs` keeps the greatest epoch of a released claim, so an epoch is never
-- handed out twice for a task. Claims are bookkeeping: no store version is bumped.
CREATE TABLE task_claims (
    task_id TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    until TEXT COLLATE "C" NOT NULL,
    epoch BIGINT NOT NULL
);
CREATE INDEX task_claims_by_owner ON task_claims (owner);
CREATE TABLE task_epochs (
    task_id TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    epoch BIGINT NOT NULL
);

-- Recently used workspaces; `rank` orders them (higher is more recent), because
-- several uses can share a timestamp.
CREATE TABLE recent_workspaces (
    path TEXT PRIMARY KEY,
    used_at TEXT COLLATE "C" NOT NULL,
    rank BIGINT NOT NULL
);
CREATE INDEX recent_workspaces_by_rank ON recent_workspaces (rank);
