-- OpenLoom store schema, version 1.
--
-- Timestamps are UTC RFC 3339 text with exactly nine fractional digits and a `Z`
-- (e.g. 2025-01-02T03:04:05.123456789Z): fixed width, so text order is time order,
-- and lossless for chrono's nanoseconds. Lists and sequences are JSON text.

-- Key/value metadata. `store_version` is bumped by every write, in the write's own
-- transaction.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('store_version', 0);

-- One row per task. `seq` is the creation order: the stable keyset cursor for
-- newest-first lists (an explicit INTEGER PRIMARY KEY survives VACUUM, unlike a
-- hidden rowid; AUTOINCREMENT never reuses a deleted task's position).
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    workspace TEXT NOT NULL,
    status TEXT NOT NULL,
    current_step INTEGER NOT NULL,
    completed_steps_json TEXT NOT NULL,
    idle_checks INTEGER NOT NULL,
    progress REAL NOT NULL,
    check_interval_seconds INTEGER NOT NULL,
    session_ids_json TEXT NOT NULL,
    active_session_id TEXT,
    last_check_at TEXT,
    next_check_at TEXT,
    last_summary TEXT,
    error TEXT,
    consecutive_errors INTEGER NOT NULL,
    verification_rounds INTEGER NOT NULL,
    last_verification_json TEXT,
    last_message_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
-- Status-filtered newest-first lists and counts per status.
CREATE INDEX tasks_by_status ON tasks (status, seq);
-- The harness's due query: active statuses, oldest next check first.
CREATE INDEX tasks_due ON tasks (status, next_check_at);

-- The check log, one row per entry. `seq` is global and never reused, so it is a
-- stable `after` cursor.
CREATE TABLE check_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence_json TEXT
) STRICT;
CREATE INDEX check_log_by_task ON check_log (task_id, seq);

-- Recently used workspaces. `rank` orders them (higher is more recent): several uses
-- can share a timestamp, so `used_at` alone cannot.
CREATE TABLE recent_workspaces (
    path TEXT PRIMARY KEY NOT NULL,
    used_at TEXT NOT NULL,
    rank INTEGER NOT NULL
) STRICT;
CREATE INDEX recent_workspaces_by_rank ON recent_workspaces (rank);
