-- OpenLoom store schema, version 9: the active tasks in due order. The due queries
-- (`due_sql`, `claimable_sql`) take the oldest due tasks first; with `tasks_due` alone
-- SQLite read every due task into a temporary B-tree to sort them before taking the
-- batch. This partial index gives them in that order (NULL first, as SQLite sorts it,
-- then `seq`), so a batch costs about its own rows.
CREATE INDEX tasks_due_order ON tasks (next_check_at ASC, seq ASC)
    WHERE status IN ('pending', 'running', 'waiting');
