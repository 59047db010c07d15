//! Requests an agent waits on a person for: a permission to run a tool, or an answer
//! to a question. While one is pending the session stays busy and nothing moves, so
//! the harness must see it and say so instead of reporting "Agent is busy" forever.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A permission or a question the agent server holds for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The agent server's id of the request (`per_…`, `que_…`).
    pub id: String,
    /// The session that asks.
    pub session_id: String,
    /// What is asked.
    #[serde(flatten)]
    pub kind: RequestKind,
    /// When the harness first saw the request (the agent server does not say when it
    /// was asked); the policy's fallback answers it `human_timeout` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_at: Option<DateTime<Utc>>,
}

/// What a [`PendingRequest`] asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RequestKind {
    /// Permission to use a tool.
    Permission {
        /// The permission key: `bash`, `edit`, `external_directory`, ...
        permission: String,
        /// What exactly: the commands, the file names.
        patterns: Vec<String>,
    },
    /// Questions to answer, each with the options offered.
    Question {
        /// The questions, in order.
        questions: Vec<Question>,
    },
}

/// One question of a [`RequestKind::Question`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The question's text.
    pub question: String,
    /// The labels of the options offered (may be empty for a free answer).
    #[serde(default)]
    pub options: Vec<String>,
}

/// Longest text of a request shown in a one-line summary.
const SUMMARY_CHARS: usize = 120;

/// Most items (patterns, questions, options) a stored request keeps, and the longest
/// text of each: the text comes from the model, and task lists must stay small.
const STORED_ITEMS: usize = 20;
const STORED_CHARS: usize = 2_000;

impl PendingRequest {
    /// The request cut to what a task record keeps: at most 20 patterns, questions and
    /// options each, every text at most 2,000 characters.
    pub fn bounded(&self) -> PendingRequest {
        let cut = |text: &String| clip(text, STORED_CHARS);
        let kind = match &self.kind {
            RequestKind::Permission { permission, patterns } => RequestKind::Permission {
                permission: cut(permission),
                patterns: patterns.iter().take(STORED_ITEMS).map(cut).collect(),
            },
            RequestKind::Question { questions } => RequestKind::Question {
                questions: questions
                    .iter()
                    .take(STORED_ITEMS)
                    .map(|q| Question {
                        question: cut(&q.question),
                        options: q.options.iter().take(STORED_ITEMS).map(cut).collect(),
                    })
                    .collect(),
            },
        };
        PendingRequest {
            id: cut(&self.id),
            session_id: cut(&self.session_id),
            kind,
            asked_at: self.asked_at,
        }
    }

    /// One line naming the request, e.g. `permission: bash "echo hello > hello.txt"`
    /// or `question: "Which file name should I use?"`. Long texts are cut and control
    /// characters escaped: the text comes from the model.
    pub fn describe(&self) -> String {
        match &self.kind {
            RequestKind::Permission { permission, patterns } => {
                let what = patterns.join(", ");
                format!("permission: {} {}", short(permission), quoted(&what))
            }
            RequestKind::Question { questions } => {
                let first = questions.first().map_or("", |q| q.question.as_str());
                let more = match questions.len() {
                    0 | 1 => String::new(),
                    n => format!(" (+{} more)", n - 1),
                };
                format!("question: {}{more}", quoted(first))
            }
        }
    }
}

fn short(text: &str) -> String {
    clip(text, SUMMARY_CHARS)
}

/// `text` cut to `max` characters, with `…` when it was longer.
fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// `text` cut short and quoted, with control characters (and quotes) escaped.
fn quoted(text: &str) -> String {
    format!("{:?}", short(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(patterns: &[&str]) -> PendingRequest {
        PendingRequest {
            id: "per_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Permission {
                permission: "bash".into(),
                patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            },
            asked_at: None,
        }
    }

    #[test]
    fn a_request_is_described_in_one_safe_line() {
        assert_eq!(
            permission(&["echo hello > hello.txt"]).describe(),
            r#"permission: bash "echo hello > hello.txt""#
        );
        let question = PendingRequest {
            id: "que_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Question {
                questions: vec![
                    Question { question: "Which file name should I use?".into(), options: vec![] },
                    Question { question: "And the colour?".into(), options: vec!["Red".into()] },
                ],
            },
            asked_at: None,
        };
        assert_eq!(question.describe(), r#"question: "Which file name should I use?" (+1 more)"#);
        let hostile = permission(&["rm -rf /\u{1b}[2J\nls"]).describe();
        assert!(!hostile.contains('\u{1b}') && !hostile.contains('\n'), "{hostile}");
        let long = permission(&[&"x".repeat(500)]).describe();
        assert!(long.chars().count() < 150, "{long}");
    }

    #[test]
    fn a_stored_request_is_bounded_whatever_the_model_asked() {
        let long = "y".repeat(10_000);
        let many: Vec<&str> = (0..100).map(|_| long.as_str()).collect();
        let bounded = permission(&many).bounded();
        let RequestKind::Permission { patterns, .. } = &bounded.kind else {
            panic!("still a permission")
        };
        assert_eq!(patterns.len(), 20);
        assert!(
            patterns.iter().all(|p| p.chars().count() <= 2_001),
            "cut to 2,000 and an ellipsis"
        );
        assert_eq!(
            permission(&["ls"]).bounded(),
            permission(&["ls"]),
            "a small request is kept whole"
        );
    }

    #[test]
    fn requests_serialize_with_their_kind() {
        let json = serde_json::to_value(permission(&["ls"])).expect("serializes");
        assert_eq!(json["kind"], "permission");
        assert_eq!(json["patterns"][0], "ls");
        let back: PendingRequest = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, permission(&["ls"]));
    }
}
