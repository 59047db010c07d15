-- OpenLoom store schema, version 2: task claims.
--
-- A harness checks only the tasks it holds a claim on, so two harnesses sharing this
-- database (`openloom serve` and `openloom watch`, say) never drive one task at once.
-- A claim lasts until `until` (same timestamp format as the tasks table) unless its
-- owner renews it; an expired claim may be taken by another owner. Claims are
-- bookkeeping: writing them bumps no store version.
CREATE TABLE task_claims (
    task_id TEXT PRIMARY KEY NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    until TEXT NOT NULL
) STRICT;
CREATE INDEX task_claims_by_owner ON task_claims (owner);
