-- OpenLoom store schema, version 5: workers (as in the SQLite store's version 7).
--
-- Every worker records a heartbeat under its name, the owner name of its task claims,
-- so `GET /api/state` lists the live workers and a task's claim says who drives it.
-- Bookkeeping, like the claims: it bumps no store version. (Versions 3 and 4 are the
-- outbox and the task origins.)
CREATE TABLE workers (
    name TEXT PRIMARY KEY NOT NULL,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
