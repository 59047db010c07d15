-- OpenLoom's PostgreSQL schema, version 7: the active tasks in due order. The batch
-- claim (`claim_batch_sql`) takes the oldest due tasks first; with `tasks_due` alone
-- PostgreSQL read every due task and sorted them before taking the batch, so a claim
-- cost grew with the number of due tasks. This partial index gives them in the claim's
-- own order (NULL first, then `seq`): the claim reads about a batch of rows, skipping
-- those another worker holds. `next_check_at` keeps its column collation ("C").
CREATE INDEX tasks_due_order ON tasks (next_check_at ASC NULLS FIRST, seq ASC)
    WHERE status IN ('pending', 'running', 'waiting');
