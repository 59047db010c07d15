//! Answers to what an agent waits on: a permission allowed or denied, a question
//! answered or dismissed — by the task's policy, by its fallback after nobody
//! answered, or by a person. Every answer is audited in the task's check log, saying
//! who answered and how, so `openloom log` is the trail of every decision.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::request::{PendingRequest, RequestKind};
use crate::task::{CheckLogEntry, TaskStatus};

/// An answer to a [`PendingRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// Permission: let the tool run. With `always`, OpenCode also allows matching
    /// later requests (in every session of the project: its "always").
    Allow {
        /// Allow matching later requests too.
        #[serde(default)]
        always: bool,
    },
    /// Permission: refuse. With a message the agent is told why and carries on; without
    /// one its turn stops.
    Deny {
        /// What the agent is told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Question: the chosen option labels, one list per question, in order.
    Choose {
        /// One list of labels per question.
        answers: Vec<Vec<String>>,
    },
    /// Question: dismiss it; the agent's turn stops.
    Dismiss,
}

impl Answer {
    /// Why this answer cannot answer `request`, or `None` when it fits: allow and deny
    /// answer permissions, choose and dismiss answer questions, and a choice names an
    /// offered option for each question.
    pub fn misfit(&self, request: &PendingRequest) -> Option<String> {
        match (&self.kind_answered(), &request.kind) {
            (Kind::Permission, RequestKind::Permission { .. })
            | (Kind::Question, RequestKind::Question { .. }) => {}
            (Kind::Permission, RequestKind::Question { .. }) => {
                return Some(format!(
                    "{} is a question: answer it with a choice of its options or dismiss it",
                    request.id
                ));
            }
            (Kind::Question, RequestKind::Permission { .. }) => {
                return Some(format!("{} is a permission request: allow or deny it", request.id));
            }
        }
        let (Answer::Choose { answers }, RequestKind::Question { questions }) =
            (self, &request.kind)
        else {
            return None;
        };
        if answers.len() != questions.len() {
            return Some(format!(
                "{} asks {} question(s) and the answer has {} choice(s): give one per question, in order",
                request.id,
                questions.len(),
                answers.len()
            ));
        }
        for (n, (chosen, question)) in answers.iter().zip(questions).enumerate() {
            if chosen.is_empty() {
                return Some(format!("question {} of {} has no choice", n + 1, request.id));
            }
            if question.options.is_empty() {
                continue; // a free answer: any text
            }
            if let Some(unknown) = chosen.iter().find(|label| !question.options.contains(label)) {
                return Some(format!(
                    "{unknown:?} is not an option of question {} of {}; options: {}",
                    n + 1,
                    request.id,
                    question
                        .options
                        .iter()
                        .map(|o| format!("{o:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        None
    }

    fn kind_answered(&self) -> Kind {
        match self {
            Answer::Allow { .. } | Answer::Deny { .. } => Kind::Permission,
            Answer::Choose { .. } | Answer::Dismiss => Kind::Question,
        }
    }
}

/// Which kind of request an answer is for.
enum Kind {
    Permission,
    Question,
}

impl fmt::Display for Answer {
    /// What the answer did, for the audit line: `allowed once`, `denied: "use cargo"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Allow { always: false } => f.write_str("allowed once"),
            Answer::Allow { always: true } => f.write_str("allowed always"),
            Answer::Deny { message: None } => f.write_str("denied"),
            Answer::Deny { message: Some(message) } => write!(f, "denied: {message:?}"),
            Answer::Choose { answers } => {
                let chosen: Vec<String> =
                    answers.iter().map(|labels| format!("{:?}", labels.join(", "))).collect();
                write!(f, "answered {}", chosen.join("; "))
            }
            Answer::Dismiss => f.write_str("dismissed"),
        }
    }
}

/// Where a person's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `openloom answer`.
    Cli,
    /// `POST /api/tasks/{id}/requests/{requestId}`.
    Api,
    /// The dashboard's buttons (which call the API, saying so).
    Dashboard,
}

impl Channel {
    /// The channel's name as the audit line shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "CLI",
            Channel::Api => "API",
            Channel::Dashboard => "dashboard",
        }
    }
}

/// Who decided an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum AnsweredBy {
    /// The task's permission policy; `rule` names the rule that matched
    /// (`bash "cargo *": allow`).
    Policy {
        /// The rule that decided.
        rule: String,
    },
    /// The policy's fallback, after nobody answered for `after_seconds`
    /// (`human_timeout`).
    Fallback {
        /// How long the request waited.
        after_seconds: u64,
    },
    /// A person, through `channel`.
    Person {
        /// Where the answer came from.
        channel: Channel,
    },
}

impl fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnsweredBy::Policy { rule } => write!(f, "by the task's policy ({rule})"),
            AnsweredBy::Fallback { after_seconds } => {
                write!(f, "by the fallback after {after_seconds} s without an answer")
            }
            AnsweredBy::Person { channel } => write!(f, "by a person ({})", channel.as_str()),
        }
    }
}

/// What delivering an answer to the agent server came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server took the answer; the agent goes on.
    Delivered,
    /// The server no longer holds the request: answered already, or its session ended.
    NotPending,
}

/// The check-log entry that audits an answer: what was asked, what was answered and
/// who decided, e.g. `Answered permission: bash "ls": allowed once, by a person (CLI)`.
/// `status` is the task's status when the entry is written.
pub fn audit_entry(
    request: &PendingRequest,
    answer: &Answer,
    by: &AnsweredBy,
    status: TaskStatus,
    at: DateTime<Utc>,
) -> CheckLogEntry {
    let mut entry = CheckLogEntry::new(
        at,
        status,
        format!("Answered {}: {answer}, {by}", request.describe()),
        format!("request {} of session {}", request.id, request.session_id),
    );
    entry.evidence = Some(serde_json::json!({
        "request": request.bounded(),
        "answer": answer,
        "answered_by": by,
    }));
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Question;

    fn question(options: &[&str]) -> PendingRequest {
        PendingRequest {
            id: "que_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Question {
                questions: vec![Question {
                    question: "Which colour?".into(),
                    options: options.iter().map(|o| (*o).to_owned()).collect(),
                }],
            },
            asked_at: None,
        }
    }

    fn permission() -> PendingRequest {
        PendingRequest {
            id: "per_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Permission {
                permission: "bash".into(),
                patterns: vec!["ls".into()],
            },
            asked_at: None,
        }
    }

    fn choose(labels: &[&[&str]]) -> Answer {
        Answer::Choose {
            answers: labels.iter().map(|l| l.iter().map(|s| (*s).to_owned()).collect()).collect(),
        }
    }

    #[test]
    fn an_answer_must_fit_the_kind_of_request() {
        assert_eq!(Answer::Allow { always: false }.misfit(&permission()), None);
        assert_eq!(Answer::Dismiss.misfit(&question(&["Red"])), None);
        let wrong = Answer::Allow { always: false }.misfit(&question(&["Red"])).expect("refused");
        assert!(wrong.contains("is a question"), "{wrong}");
        let wrong = Answer::Dismiss.misfit(&permission()).expect("refused");
        assert!(wrong.contains("allow or deny"), "{wrong}");
    }

    #[test]
    fn a_choice_names_offered_options_one_list_per_question() {
        let red = question(&["Red", "Blue"]);
        assert_eq!(choose(&[&["Blue"]]).misfit(&red), None);
        let unknown = choose(&[&["Green"]]).misfit(&red).expect("refused");
        assert!(
            unknown.contains("\"Green\"") && unknown.contains("\"Red\", \"Blue\""),
            "{unknown}"
        );
        let count = choose(&[&["Red"], &["Blue"]]).misfit(&red).expect("refused");
        assert!(count.contains("1 question(s)") && count.contains("2 choice(s)"), "{count}");
        assert!(choose(&[&[]]).misfit(&red).is_some(), "an empty choice is refused");
        assert_eq!(choose(&[&["anything"]]).misfit(&question(&[])), None, "free answer");
    }

    #[test]
    fn the_audit_entry_says_what_was_asked_answered_and_by_whom() {
        let at = Utc::now();
        let by = AnsweredBy::Person { channel: Channel::Cli };
        let entry = audit_entry(
            &permission(),
            &Answer::Allow { always: false },
            &by,
            TaskStatus::Running,
            at,
        );
        assert_eq!(
            entry.summary,
            r#"Answered permission: bash "ls": allowed once, by a person (CLI)"#
        );
        let evidence = entry.evidence.expect("evidence");
        assert_eq!(evidence["answered_by"]["channel"], "cli");
        assert_eq!(evidence["answer"]["answer"], "allow");
        let policy = AnsweredBy::Policy { rule: r#"bash "git push *": deny"#.into() };
        let denied = Answer::Deny { message: Some("not allowed".into()) };
        let entry = audit_entry(&permission(), &denied, &policy, TaskStatus::Running, at);
        assert!(
            entry.summary.ends_with(
                r#"denied: "not allowed", by the task's policy (bash "git push *": deny)"#
            ),
            "{}",
            entry.summary
        );
        let chosen = audit_entry(
            &question(&["Red"]),
            &choose(&[&["Red"]]),
            &AnsweredBy::Fallback { after_seconds: 3600 },
            TaskStatus::Running,
            at,
        );
        assert!(
            chosen.summary.contains(r#"answered "Red", by the fallback after 3600 s"#),
            "{}",
            chosen.summary
        );
    }
}
