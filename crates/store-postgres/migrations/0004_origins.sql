-- OpenLoom's PostgreSQL schema, version 4: where tasks came from (the SQLite store's
-- schema 6). A source (an inbox file, a GitHub delivery) is recorded here in the same
-- transaction that creates its task, so the same thing offered again (after a crash,
-- a redelivery, by another worker at the same moment) is never a second task. No
-- foreign key: an origin outlives its task. (Version 3 is the webhook outbox.)
CREATE TABLE origins (
    origin TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
-- A task's origin, for its detail page.
CREATE INDEX origins_by_task ON origins (task_id);
