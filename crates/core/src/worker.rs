//! Workers: the harness processes that share one store, by name.
//!
//! Several `openloom serve` workers (and a `watch` beside them) may drive the tasks of
//! one database. Each has a name, which is also the owner of its task claims, so the
//! claim a task is under says which worker drives it ("driven by"); and each records a
//! heartbeat, so the live workers can be listed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a harness's claim on a task lasts without renewal, by default
/// ([`crate::HarnessConfig::claim_ttl`]); the heartbeat comes every third of it.
pub const DEFAULT_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A worker is listed as live when its last heartbeat is this recent: one default
/// claim time, so a worker listed live may still hold claims and one killed drops
/// out of the list when its claims run out.
pub const LIVE_WITHIN: chrono::TimeDelta =
    chrono::TimeDelta::seconds(DEFAULT_CLAIM_TTL.as_secs() as i64);

/// A worker as its heartbeat row records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// Its name (`--worker-name`; by default `host:pid`).
    pub name: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
}

/// Why a worker name cannot be used, or `None`. A name owns claims, so it must be
/// short, printable and unambiguous in logs.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.chars().count() > 100 {
        Some("is longer than 100 characters")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name != name.trim() {
        Some("starts or ends with spaces")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_short_printable_and_trimmed() {
        assert_eq!(name_problem("web-1"), None);
        assert_eq!(name_problem("host.example:4242"), None);
        assert_eq!(name_problem(""), Some("is empty"));
        assert_eq!(name_problem("  "), Some("is empty"));
        assert_eq!(name_problem(" web"), Some("starts or ends with spaces"));
        assert_eq!(name_problem("a\u{1b}[2J"), Some("contains a control character"));
        assert!(name_problem(&"w".repeat(101)).is_some());
    }
}
