//! Requests an agent waits on a person for: a permission to run a tool, or an answer
//! to a question. While one is pending the session stays busy and nothing moves, so
//! the harness must see it and say so instead of reporting "Agent is busy" forever.

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

impl PendingRequest {
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
    let mut out: String = text.chars().take(SUMMARY_CHARS).collect();
    if text.chars().count() > SUMMARY_CHARS {
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
        };
        assert_eq!(question.describe(), r#"question: "Which file name should I use?" (+1 more)"#);
        let hostile = permission(&["rm -rf /\u{1b}[2J\nls"]).describe();
        assert!(!hostile.contains('\u{1b}') && !hostile.contains('\n'), "{hostile}");
        let long = permission(&[&"x".repeat(500)]).describe();
        assert!(long.chars().count() < 150, "{long}");
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
