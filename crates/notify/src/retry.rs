//! When to try a failed delivery again, or give up (pure).

use std::time::Duration;

use chrono::{DateTime, Utc};
use openloom_core::Attempt;

/// Exponential backoff with jitter, up to a maximum age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// How long after it was queued a delivery is still tried; past that it is dead.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s, ... at most 10 min apart, for 24 h: a receiver down for a
    /// night gets everything in the morning, and one gone for good is given up on
    /// after about 150 attempts.
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// What to record after attempt number `attempts` (1 for the first) of a
    /// delivery queued at `queued_at` failed with `error` at `now`. `jitter` in
    /// `[0, 1)` picks the wait within [half, all] of the exponential delay, so
    /// receivers coming back are not hit by every sender at the same instant.
    pub fn after_failure(
        &self,
        attempts: u32,
        queued_at: DateTime<Utc>,
        now: DateTime<Utc>,
        error: String,
        jitter: f64,
    ) -> Attempt {
        let exponent = attempts.saturating_sub(1).min(30);
        let full = self.first_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        let wait = full.mul_f64(0.5 + 0.5 * jitter);
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let max_age = chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        let at = now + wait;
        if at - queued_at > max_age {
            Attempt::Dead {
                error: format!(
                    "{error} (gave up after {attempts} attempts: older than the {:?} maximum age)",
                    self.max_age
                ),
            }
        } else {
            Attempt::Retry { at, error }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_cap_then_the_delivery_dies() {
        let policy = RetryPolicy::default();
        let queued = Utc::now();
        let wait = |attempts, jitter| match policy.after_failure(
            attempts,
            queued,
            queued,
            "503".into(),
            jitter,
        ) {
            Attempt::Retry { at, .. } => (at - queued).num_milliseconds(),
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(1, 0.0), 500);
        assert_eq!(wait(1, 0.999_999), 999);
        assert_eq!(wait(2, 0.0), 1_000);
        assert_eq!(wait(4, 0.0), 4_000);
        assert_eq!(wait(20, 0.0), 300_000, "capped at max_delay");
        assert_eq!(wait(u32::MAX, 2.0), 600_000, "jitter is clamped, no overflow");

        let old = queued + chrono::Duration::hours(24);
        match policy.after_failure(150, queued, old, "503".into(), 0.5) {
            Attempt::Dead { error } => {
                assert!(error.starts_with("503 (gave up after 150 attempts"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
}
