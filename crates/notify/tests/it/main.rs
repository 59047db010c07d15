//! Integration tests of the webhook sender: a real SQLite outbox, a real HTTP
//! receiver on loopback that verifies every request as the docs say, and the
//! harness driving a task while a receiver is dead.

mod sender;
