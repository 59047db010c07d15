//! Is the session still getting somewhere? Pure judgements over what a check saw:
//! a busy session whose output has not changed for `stall_timeout` is stalled, and
//! what to do about a stall depends on how often it happened.
//!
//! Progress is new output: a new message, a new or longer part, a tool changing
//! state — anything that changes [`output_mark`]. A long tool that prints nothing
//! looks like a stall unless OpenCode reports it, which is why `stall_timeout` is a
//! spec key (docs/unattended.md says how to set it for such tasks).

use chrono::{DateTime, Utc};

use crate::agent::{AgentMessage, MessagePart};
use crate::task::{Liveness, Task};

/// A fingerprint of the session's newest output: the newest message's id, its part
/// count, the length of its text and the state of each tool call. `None` for a
/// session without messages.
pub(crate) fn output_mark(messages: &[AgentMessage]) -> Option<String> {
    let newest = messages.last()?;
    let mut text = 0usize;
    let mut tools = String::new();
    for part in &newest.parts {
        match part {
            MessagePart::Text { text: t } | MessagePart::Reasoning { text: t } => text += t.len(),
            MessagePart::Tool { state, .. } => {
                tools.push(match state {
                    crate::agent::ToolState::Pending => 'p',
                    crate::agent::ToolState::Running => 'r',
                    crate::agent::ToolState::Completed => 'c',
                    crate::agent::ToolState::Error => 'e',
                    crate::agent::ToolState::Other(_) => 'o',
                });
            }
            MessagePart::Other { .. } => {}
        }
    }
    let done = if newest.completed_at.is_some() { "done" } else { "open" };
    Some(format!("{}/{}/{text}/{tools}/{done}", newest.id, newest.parts.len()))
}

/// What a busy check concludes about progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pulse {
    /// Still moving (or first seen): record this liveness.
    Alive(Liveness),
    /// No new output for `after_seconds`, at least `stall_timeout`.
    Stalled {
        /// Seconds without output.
        after_seconds: u64,
    },
}

/// Judges a busy session's progress at `now`.
pub(crate) fn pulse(task: &Task, messages: &[AgentMessage], now: DateTime<Utc>) -> Pulse {
    let mark = output_mark(messages);
    let known = &task.liveness;
    let since = match known.progress_at {
        Some(at) if known.mark == mark => at,
        // New output, or never looked: progress now.
        _ => return Pulse::Alive(Liveness { mark, progress_at: Some(now), ..known.clone() }),
    };
    let quiet = (now - since).num_seconds().max(0) as u64;
    let timeout = task.spec.unattended.stall_timeout();
    if timeout > 0 && quiet >= timeout {
        Pulse::Stalled { after_seconds: quiet }
    } else {
        Pulse::Alive(known.clone())
    }
}

/// The liveness after a check that saw the session not busy (judged, waiting on a
/// person): its output as seen now, and the clock restarted — time spent idle or
/// waiting for a person is not a stall.
pub(crate) fn refreshed(task: &Task, messages: &[AgentMessage], now: DateTime<Utc>) -> Liveness {
    Liveness { mark: output_mark(messages), progress_at: Some(now), ..task.liveness.clone() }
}

/// When a busy session is due to be looked at again for a stall: when it would
/// reach `stall_timeout` without output.
pub(crate) fn stall_deadline(task: &Task, liveness: &Liveness) -> Option<DateTime<Utc>> {
    let timeout = task.spec.unattended.stall_timeout();
    let since = liveness.progress_at?;
    (timeout > 0).then(|| super::after(since, timeout))
}

/// What to do about a stall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Abort the turn and prompt the same session to continue: recovery `n` of `of`.
    Reprompt {
        /// This recovery's number in the session, from 1.
        n: u32,
        /// The spec's `max_stall_recoveries`.
        of: u32,
    },
    /// Abort and start a fresh session: this one stalled too often.
    FreshSession,
    /// Give up: a fresh session stalled too often as well.
    Fail,
}

/// Sessions given up on before a stall fails the task: one fresh session is tried.
const STALLED_SESSIONS: u32 = 1;

/// Decides the recovery for a stall of `task`, and its liveness afterwards.
pub(crate) fn recovery(task: &Task, now: DateTime<Utc>) -> (Recovery, Liveness) {
    let known = &task.liveness;
    let of = task.spec.unattended.max_stall_recoveries();
    let mut after = Liveness {
        mark: None,
        progress_at: Some(now),
        stalls: known.stalls.saturating_add(1),
        ..known.clone()
    };
    let plan = if known.recoveries < of {
        after.recoveries = known.recoveries + 1;
        Recovery::Reprompt { n: after.recoveries, of }
    } else if known.stalled_sessions < STALLED_SESSIONS {
        after.recoveries = 0;
        after.stalled_sessions = known.stalled_sessions + 1;
        Recovery::FreshSession
    } else {
        Recovery::Fail
    };
    (plan, after)
}

/// True when the messages after `since` (the newest message the last judged check
/// saw) show the agent using a tool: work, even when no step is reported yet.
pub(crate) fn used_tools_since(messages: &[AgentMessage], since: Option<&str>) -> bool {
    let start =
        since.and_then(|id| messages.iter().position(|m| m.id == id)).map_or(0, |at| at + 1);
    messages[start..]
        .iter()
        .filter(|m| m.is_assistant())
        .any(|m| m.parts.iter().any(|p| matches!(p, MessagePart::Tool { .. })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Role, ToolState};
    use crate::spec::TaskSpec;
    use crate::task::TaskId;

    fn message(id: &str, parts: Vec<MessagePart>) -> AgentMessage {
        AgentMessage {
            id: id.into(),
            role: Role::Assistant,
            created_at: None,
            completed_at: None,
            error: None,
            parts,
            tokens: None,
            cost: None,
            model: None,
        }
    }

    fn text(t: &str) -> MessagePart {
        MessagePart::Text { text: t.into() }
    }

    fn task(stall_timeout: Option<u64>) -> Task {
        let mut spec = TaskSpec::new("t", "/w", "g");
        spec.unattended.stall_timeout_seconds = stall_timeout;
        Task::new(TaskId::from("t1"), spec, Utc::now())
    }

    #[test]
    fn any_new_output_changes_the_mark() {
        let a = [message("m1", vec![text("hel")])];
        let longer = [message("m1", vec![text("hello")])];
        let tool = |state| {
            [message("m1", vec![text("hel"), MessagePart::Tool { tool: "bash".into(), state }])]
        };
        let newer = [message("m1", vec![text("hel")]), message("m2", vec![])];
        let marks = [
            output_mark(&a),
            output_mark(&longer),
            output_mark(&tool(ToolState::Running)),
            output_mark(&tool(ToolState::Completed)),
            output_mark(&newer),
        ];
        for (i, x) in marks.iter().enumerate() {
            for y in &marks[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(output_mark(&a), output_mark(&[message("m1", vec![text("abc")])]), "same size");
        assert_eq!(output_mark(&[]), None);
    }

    #[test]
    fn a_busy_session_without_new_output_stalls_after_the_timeout() {
        let now = Utc::now();
        let messages = [message("m1", vec![])];
        let mut task = task(Some(600));
        // First look: progress now.
        let Pulse::Alive(first) = pulse(&task, &messages, now) else { panic!("alive") };
        assert_eq!(first.progress_at, Some(now));
        task.liveness = first;
        let later = now + chrono::Duration::seconds(599);
        assert!(matches!(pulse(&task, &messages, later), Pulse::Alive(_)));
        let later = now + chrono::Duration::seconds(600);
        assert_eq!(pulse(&task, &messages, later), Pulse::Stalled { after_seconds: 600 });
        // New output resets the clock.
        let moved = [message("m1", vec![text("x")])];
        let Pulse::Alive(reset) = pulse(&task, &moved, later) else { panic!("alive") };
        assert_eq!(reset.progress_at, Some(later));
        // `stall_timeout: off` never stalls.
        task.spec.unattended.stall_timeout_seconds = Some(0);
        let much_later = now + chrono::Duration::days(2);
        assert!(matches!(pulse(&task, &messages, much_later), Pulse::Alive(_)));
        assert_eq!(stall_deadline(&task, &task.liveness), None);
    }

    #[test]
    fn stalls_are_recovered_then_a_fresh_session_then_the_task_fails() {
        let now = Utc::now();
        let mut task = task(None);
        let mut plans = Vec::new();
        for _ in 0..6 {
            let (plan, after) = recovery(&task, now);
            plans.push(plan);
            task.liveness = after;
        }
        assert_eq!(
            plans,
            [
                Recovery::Reprompt { n: 1, of: 2 },
                Recovery::Reprompt { n: 2, of: 2 },
                Recovery::FreshSession,
                Recovery::Reprompt { n: 1, of: 2 },
                Recovery::Reprompt { n: 2, of: 2 },
                Recovery::Fail,
            ]
        );
        assert_eq!(task.liveness.stalls, 6);
        let mut none = self::task(None);
        none.spec.unattended.max_stall_recoveries = Some(0);
        assert_eq!(recovery(&none, now).0, Recovery::FreshSession);
    }

    #[test]
    fn tool_use_after_the_last_judged_message_is_work() {
        let tool = MessagePart::Tool { tool: "edit".into(), state: ToolState::Completed };
        let messages =
            [message("m1", vec![tool.clone()]), message("m2", vec![text("still working")])];
        assert!(used_tools_since(&messages, None));
        assert!(used_tools_since(&messages, Some("m0")), "an unknown id: all count");
        assert!(!used_tools_since(&messages, Some("m1")), "only what came after");
    }
}
