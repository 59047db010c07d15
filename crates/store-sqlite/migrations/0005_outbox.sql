-- OpenLoom store schema, version 5: the outbox of webhook deliveries. A task write
-- queues the deliveries it causes (for the hooks registered here) in its own
-- transaction, so a crash never loses a notification; senders claim due rows by
-- moving next_attempt_at. The delivery itself is JSON (core's `Delivery`); the
-- columns beside it are what the queries filter and sort on.
CREATE TABLE webhook_hooks (
    id TEXT PRIMARY KEY NOT NULL,
    hook_json TEXT NOT NULL,
    registered_at TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    hook_id TEXT NOT NULL,
    status TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    delivery_json TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, seq);
