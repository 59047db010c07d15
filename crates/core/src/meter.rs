//! [`Meter`]: what the harness and an agent client count, for an embedder's metrics.
//!
//! Core stays free of any metrics library: the harness and the OpenCode client call
//! this observer at the moments worth counting, and the embedder decides what to do
//! with them (`openloom serve` turns them into Prometheus series at `GET /metrics`).
//! Every method has an empty default, so [`NoMeter`] (the default) costs one virtual
//! call per event and an embedder implements only what it shows.
//!
//! Figures a store already knows (tasks by status, webhook deliveries by status) are
//! not counted here: they are read from the store when asked for, so they cannot
//! drift from it and survive a restart.

use std::time::Duration;

use crate::store::Lease;

/// How one harness check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckRun {
    /// The check decided (or found nothing to do) and wrote its outcome.
    Done,
    /// The check hit an error, recorded in the task's check log (a transient one makes
    /// the task wait and retry, a permanent one fails it).
    Error,
}

impl CheckRun {
    /// Both outcomes, for embedders that show a zero for each.
    pub const ALL: [CheckRun; 2] = [CheckRun::Done, CheckRun::Error];

    /// The outcome's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckRun::Done => "done",
            CheckRun::Error => "error",
        }
    }
}

/// One request an agent client made, as it reports it to [`Meter::agent_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCall<'a> {
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The endpoint with ids replaced by `{id}` (e.g. `/session/{id}/message`), so
    /// a metric labelled with it has a bounded number of series.
    pub endpoint: &'a str,
    /// From sending the request to having read the answer (or the failure).
    pub elapsed: Duration,
    /// `None` for a 2xx answer; otherwise the kind of failure (the client's error
    /// kind, e.g. `unreachable`, `timeout`, `upstream`).
    pub error: Option<&'a str>,
}

/// Observer of what the harness and an agent client do. Implementations must be
/// cheap and must not block: they are called on the harness's and the client's paths.
pub trait Meter: Send + Sync {
    /// A harness check ended.
    fn check_ran(&self, outcome: CheckRun) {
        let _ = outcome;
    }

    /// The harness took a task's claim over from another holder (see
    /// [`is_takeover`]).
    fn lease_taken_over(&self) {}

    /// An agent client's request ended.
    fn agent_request(&self, call: &AgentCall<'_>) {
        let _ = call;
    }
}

/// The meter that counts nothing: the default of the harness and the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMeter;

impl Meter for NoMeter {}

/// Whether a claim just granted took the task over from another holder, given the
/// epoch of the claim this harness last held on it (`None`: none since it started).
///
/// A claim keeps its epoch while its holder renews it and gets the next one when it is
/// taken anew (see [`Lease`]). So the claim came from someone else exactly when it is
/// not the first (epoch above 1) and neither this harness's own claim (same epoch) nor
/// the one that follows its own lapsed claim (the next epoch). Epoch 0 is a store that
/// keeps no claims: nothing is ever taken over there.
pub fn is_takeover(last_held: Option<u64>, granted: &Lease) -> bool {
    let epoch = granted.epoch;
    if epoch <= 1 {
        return false;
    }
    match last_held {
        None => true,
        Some(held) => held != epoch && held.saturating_add(1) != epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(epoch: u64) -> Lease {
        Lease { owner: "me".into(), epoch }
    }

    #[test]
    fn a_takeover_is_a_claim_someone_else_held_before() {
        let cases = [
            // (last held here, granted epoch, takeover?)
            (None, 0, false), // a store without claims
            (None, 1, false), // the task's first claim
            (None, 2, true),  // another holder had epoch 1
            (None, 7, true),
            (Some(1), 1, false), // a renewal
            (Some(1), 2, false), // our own lapsed claim, taken again
            (Some(1), 3, true),  // someone held epoch 2 in between
            (Some(4), 9, true),
            (Some(u64::MAX), u64::MAX, false),
        ];
        for (held, epoch, expected) in cases {
            assert_eq!(
                is_takeover(held, &lease(epoch)),
                expected,
                "held {held:?}, granted {epoch}"
            );
        }
    }

    #[test]
    fn outcomes_have_distinct_names() {
        let names: Vec<&str> = CheckRun::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["done", "error"]);
    }
}
