-- OpenLoom store schema, version 4: what the harness knows of a session's progress
-- (its output as last seen, stalls recovered, checks without progress), as JSON, so a
-- stall is noticed and counted across restarts and workers.
ALTER TABLE tasks ADD COLUMN liveness_json TEXT NOT NULL DEFAULT '{}';
