-- OpenLoom store schema, version 3: the outbox of webhook deliveries. A task write
-- queues the deliveries it causes (for the hooks registered here) in its own
-- transaction, so a crash never loses a notification; senders claim due rows by
-- moving next_attempt_at (FOR UPDATE SKIP LOCKED: workers never wait on each other).
-- The delivery itself is JSON (core's `Delivery`); the columns beside it are what the
-- queries filter and sort on. Timestamps are fixed-width text, as in `tasks`.
CREATE TABLE webhook_hooks (
    id TEXT PRIMARY KEY,
    hook_json TEXT NOT NULL,
    registered_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE webhook_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hook_id TEXT NOT NULL,
    status TEXT NOT NULL,
    next_attempt_at TEXT COLLATE "C" NOT NULL,
    queued_at TEXT COLLATE "C" NOT NULL,
    delivery_json TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, seq);
