//! What the agent waits on: the task's policy answers what it decides, the
//! fallback answers what nobody answered for `human_timeout`, and the rest is left
//! to a person. Every answer given here is audited in the check log.

use chrono::{DateTime, Utc};

use crate::agent::SessionRef;
use crate::answer::{Answer, AnsweredBy, Delivery, audit_entry};
use crate::harness::Harness;
use crate::policy::{Decision, decide};
use crate::request::{PendingRequest, RequestKind};
use crate::task::{CheckLogEntry, Task};

/// What the harness does about one pending request, decided without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// Answer it now, so decided by `by`.
    Answer(Answer, AnsweredBy),
    /// Leave it to a person.
    Hold,
}

/// The message the fallback gives an agent whose permission nobody answered.
fn unanswered_message(after_seconds: u64) -> String {
    format!(
        "Nobody answered this request within {after_seconds} s, so it is refused. Carry on \
         without it: find another way, or say in your reply what you need and why."
    )
}

/// The prompt after a question was dismissed (by the policy or the fallback): the
/// agent's turn stopped, and it should go on choosing for itself.
pub(crate) const DISMISSED_PROMPT: &str = "Nobody can answer your question for this task \
     right now, so it was dismissed. Carry on: make the most reasonable choice yourself, \
     say which one you made and why, and continue with the task.";

/// Decides a request: the policy first, then the fallback once it has waited
/// `human_timeout` (0: never).
pub(crate) fn settle(
    task: &Task,
    request: &PendingRequest,
    home: Option<&str>,
    now: DateTime<Utc>,
) -> Settlement {
    let unattended = &task.spec.unattended;
    if let Decision::Answer { answer, rule } =
        decide(unattended.rules(), unattended.questions(), request, home)
    {
        return Settlement::Answer(answer, AnsweredBy::Policy { rule });
    }
    let timeout = unattended.human_timeout();
    let waited = request.asked_at.map_or(0, |at| (now - at).num_seconds().max(0) as u64);
    if timeout == 0 || waited < timeout {
        return Settlement::Hold;
    }
    let answer = match request.kind {
        RequestKind::Permission { .. } => {
            Answer::Deny { message: Some(unanswered_message(timeout)) }
        }
        RequestKind::Question { .. } => Answer::Dismiss,
    };
    Settlement::Answer(answer, AnsweredBy::Fallback { after_seconds: waited })
}

/// `fresh` with each request's first-seen time: kept from the task's record for a
/// request seen before, `now` for a new one.
pub(crate) fn stamp(
    task: &Task,
    fresh: Vec<PendingRequest>,
    now: DateTime<Utc>,
) -> Vec<PendingRequest> {
    fresh
        .into_iter()
        .map(|mut request| {
            let seen = task.pending_requests.iter().find(|known| known.id == request.id);
            request.asked_at = seen.and_then(|known| known.asked_at).or(Some(now));
            request
        })
        .collect()
}

impl Harness {
    /// Answers what the policy or the fallback decides and returns the requests left
    /// for a person. A delivery that fails keeps its request pending (the next check
    /// tries again); every answer delivered is audited.
    pub(super) async fn settle_requests(
        &self,
        task: &Task,
        session: &SessionRef,
        pending: Vec<PendingRequest>,
        now: DateTime<Utc>,
    ) -> Vec<PendingRequest> {
        let mut held = Vec::new();
        let mut audit: Vec<CheckLogEntry> = Vec::new();
        let mut dismissed = false;
        for request in stamp(task, pending, now) {
            let Settlement::Answer(answer, by) =
                settle(task, &request, self.config.home.as_deref(), now)
            else {
                held.push(request);
                continue;
            };
            match self.agent.answer_request(&session.directory, &request, &answer).await {
                Ok(Delivery::Delivered) => {
                    tracing::info!(task_id = %task.id, request = %request.id, %answer, %by, "answered");
                    dismissed |= answer == Answer::Dismiss;
                    audit.push(audit_entry(&request, &answer, &by, task.status, now));
                }
                Ok(Delivery::NotPending) => {
                    tracing::debug!(request = %request.id, "request answered elsewhere meanwhile");
                }
                Err(error) => {
                    tracing::warn!(task_id = %task.id, request = %request.id, %error,
                        "could not deliver the policy's answer; trying again at the next check");
                    held.push(request);
                }
            }
        }
        if !audit.is_empty()
            && let Err(error) = self.store.append_check_log(&task.id, &audit).await
        {
            tracing::warn!(task_id = %task.id, %error, "could not record the policy's answers");
        }
        if dismissed
            && held.is_empty()
            && let Err(error) =
                self.agent.send_prompt(session, DISMISSED_PROMPT, task.spec.agent_override()).await
        {
            // The next check nudges the idle session anyway.
            tracing::debug!(task_id = %task.id, %error, "could not prompt after a dismissal");
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, PermissionRule, QuestionPolicy};
    use crate::spec::TaskSpec;
    use crate::task::TaskId;

    fn task(rules: Option<Vec<PermissionRule>>) -> Task {
        let mut spec = TaskSpec::new("t", "/w", "g");
        spec.unattended.permissions = rules;
        Task::new(TaskId::from("t1".to_owned()), spec, Utc::now())
    }

    fn bash(command: &str, asked_at: Option<DateTime<Utc>>) -> PendingRequest {
        PendingRequest {
            id: "per_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Permission {
                permission: "bash".into(),
                patterns: vec![command.into()],
            },
            asked_at,
        }
    }

    #[test]
    fn the_policy_answers_first_and_a_person_gets_the_rest() {
        let now = Utc::now();
        let task = task(Some(vec![
            PermissionRule::new("bash", "*", Action::Ask),
            PermissionRule::new("bash", "cargo *", Action::Allow),
            PermissionRule::new("bash", "rm *", Action::Deny),
        ]));
        let allowed = settle(&task, &bash("cargo test", Some(now)), None, now);
        assert_eq!(
            allowed,
            Settlement::Answer(
                Answer::Allow { always: false },
                AnsweredBy::Policy { rule: r#"bash "cargo *": allow"#.into() }
            )
        );
        let denied = settle(&task, &bash("rm -rf /", Some(now)), None, now);
        assert!(matches!(denied, Settlement::Answer(Answer::Deny { message: Some(_) }, _)));
        assert_eq!(settle(&task, &bash("echo hi", Some(now)), None, now), Settlement::Hold);
    }

    #[test]
    fn after_human_timeout_the_fallback_answers() {
        let now = Utc::now();
        let mut task = task(None);
        let asked = now - chrono::Duration::seconds(3_600);
        let Settlement::Answer(Answer::Deny { message: Some(message) }, by) =
            settle(&task, &bash("echo hi", Some(asked)), None, now)
        else {
            panic!("denied by the fallback");
        };
        assert_eq!(by, AnsweredBy::Fallback { after_seconds: 3_600 });
        assert!(message.contains("Carry on without it"), "{message}");
        let recent = now - chrono::Duration::seconds(3_599);
        assert_eq!(settle(&task, &bash("echo hi", Some(recent)), None, now), Settlement::Hold);
        task.spec.unattended.human_timeout_seconds = Some(0);
        assert_eq!(settle(&task, &bash("echo", Some(asked)), None, now), Settlement::Hold, "off");
        let question = PendingRequest {
            kind: RequestKind::Question { questions: vec![] },
            ..bash("", Some(now - chrono::Duration::days(1)))
        };
        task.spec.unattended.human_timeout_seconds = None;
        assert!(matches!(
            settle(&task, &question, None, now),
            Settlement::Answer(Answer::Dismiss, AnsweredBy::Fallback { .. })
        ));
        task.spec.unattended.questions = Some(QuestionPolicy::Deny);
        assert!(matches!(
            settle(&task, &question, None, now),
            Settlement::Answer(Answer::Dismiss, AnsweredBy::Policy { .. })
        ));
    }

    #[test]
    fn a_request_keeps_the_time_it_was_first_seen() {
        let now = Utc::now();
        let earlier = now - chrono::Duration::seconds(60);
        let mut task = task(None);
        task.pending_requests = vec![bash("ls", Some(earlier))];
        let fresh =
            vec![bash("ls", None), PendingRequest { id: "per_2".into(), ..bash("x", None) }];
        let stamped = stamp(&task, fresh, now);
        assert_eq!(stamped[0].asked_at, Some(earlier));
        assert_eq!(stamped[1].asked_at, Some(now));
    }
}
