-- OpenLoom store schema, version 3: guarded writes, collapsed check-log repeats, and
-- the requests a task's agent waits on a person for.
--
-- `tasks.revision` is bumped by every write of a task; a write computed from an older
-- revision is refused inside its transaction (a user's pause that landed while a check
-- ran is never overwritten). `task_claims.epoch` grows each time a task's claim is
-- taken anew, and `task_epochs` remembers the greatest epoch of a task whose claim was
-- released, so a released-and-retaken claim never repeats an epoch: a write guarded
-- by an old lease is refused. A check-log entry written again exactly as the one
-- before it is counted on that row (`repeats`, `last_at`) instead of added.
ALTER TABLE tasks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_claims ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1;
CREATE TABLE task_epochs (
    task_id TEXT PRIMARY KEY NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL
) STRICT;
ALTER TABLE check_log ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
ALTER TABLE check_log ADD COLUMN last_at TEXT;
-- The permissions and questions the agent waits on a person for, as JSON (a list).
ALTER TABLE tasks ADD COLUMN pending_requests_json TEXT NOT NULL DEFAULT '[]';
