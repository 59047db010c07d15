-- OpenLoom store schema, version 6: where tasks came from. A source (an inbox file, a
-- GitHub delivery) is recorded here in the same transaction that creates its task, so
-- the same thing offered again (after a crash, a redelivery) is never a second task.
-- No foreign key: an origin outlives its task, so a deleted task's file or delivery
-- is not imported again. (Version 5 is the webhook outbox.)
CREATE TABLE origins (
    origin TEXT PRIMARY KEY NOT NULL,
    task_id TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
-- A task's origin, for its detail page.
CREATE INDEX origins_by_task ON origins (task_id);
