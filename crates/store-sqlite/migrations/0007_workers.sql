-- OpenLoom store schema, version 7: workers.
--
-- Every harness sharing this database (`openloom serve`, `openloom watch`) records a
-- heartbeat under its worker name, the same name its task claims carry, so the live
-- workers can be listed and a task's claim says who drives it. Bookkeeping, like the
-- claims: writing it bumps no store version. (Versions 5 and 6 are the outbox and the
-- task origins.)
CREATE TABLE workers (
    name TEXT PRIMARY KEY NOT NULL,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
) STRICT;
