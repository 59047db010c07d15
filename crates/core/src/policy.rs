//! A task's policy for what its agent may do unattended: permission rules with the
//! shape and meaning of OpenCode's own `permission` config, and whether the agent may
//! ask questions. The harness gives the rules to OpenCode as the session's ruleset
//! (OpenCode then never asks for what they allow or deny) and applies them with
//! [`decide`] to any request that still arrives.
//!
//! Matching follows OpenCode 1.x: `*` matches any run of characters (slashes and
//! newlines too), `?` one character, nothing else is special, a pattern ending in
//! `" *"` also matches without the tail (`"ls *"` matches `ls`), `~/` and `$HOME/`
//! are the home directory, and the **last** matching rule wins.

use std::fmt;

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::answer::Answer;
use crate::request::{PendingRequest, RequestKind};

/// What a rule does with a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Run it without asking.
    Allow,
    /// Refuse it.
    Deny,
    /// Hold it for a person.
    Ask,
}

impl Action {
    /// Every action, in the order documentation lists them.
    pub const ALL: [Action; 3] = [Action::Allow, Action::Deny, Action::Ask];

    /// The action's name in a spec: `allow`, `deny`, `ask`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Ask => "ask",
        }
    }

    /// The action named `name`, if any.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One rule: requests for `permission` (a key such as `bash`, `edit`, or `*`) whose
/// pattern matches `pattern` get `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRule {
    /// The permission key, a wildcard pattern itself (`*` for every key).
    pub permission: String,
    /// What is asked for: a command, a file name; a wildcard pattern.
    pub pattern: String,
    /// What to do.
    pub action: Action,
}

impl PermissionRule {
    /// A rule; `pattern` is kept as written (see [`PermissionRule::expanded`]).
    pub fn new(permission: impl Into<String>, pattern: impl Into<String>, action: Action) -> Self {
        PermissionRule { permission: permission.into(), pattern: pattern.into(), action }
    }

    /// The rule with `~` and `$HOME` in its pattern replaced by `home`, as OpenCode
    /// expands its config.
    pub fn expanded(&self, home: Option<&str>) -> PermissionRule {
        PermissionRule { pattern: expand_home(&self.pattern, home), ..self.clone() }
    }

    fn matches(&self, permission: &str, pattern: &str, home: Option<&str>) -> bool {
        wildcard(permission, &self.permission)
            && wildcard(pattern, &expand_home(&self.pattern, home))
    }
}

impl fmt::Display for PermissionRule {
    /// `bash "cargo *": allow`, as the audit line names the rule that decided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.permission, self.pattern, self.action.as_str())
    }
}

/// Whether the agent may ask a person questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionPolicy {
    /// Questions are held for a person (the default).
    #[default]
    Ask,
    /// The agent may not ask: the question tool is taken from the session, and a
    /// question that still arrives is dismissed.
    Deny,
}

/// What the policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer it so, naming the rule that decided (for the audit).
    Answer {
        /// The answer to deliver.
        answer: Answer,
        /// The rule, as the audit line shows it.
        rule: String,
    },
    /// Hold it for a person.
    Ask,
}

/// The message a denied agent is told, so it carries on without the tool call
/// instead of stopping its turn.
pub fn denied_message(rule: &str) -> String {
    format!(
        "This task's policy does not allow that ({rule}). Carry on without it: find another \
         way within the rules, or say what you need in your reply."
    )
}

/// Decides `request` by `rules` (last match wins) and `questions`.
///
/// A permission request names one or more patterns (a command line split into
/// commands): one denied pattern denies it, all allowed allows it, anything else —
/// a pattern left to ask, or matched by no rule — leaves it to a person, as OpenCode
/// does. With no rules at all (`permissions` absent) every permission is left to a
/// person: OpenCode's own config already decided it asks.
pub fn decide(
    rules: &[PermissionRule],
    questions: QuestionPolicy,
    request: &PendingRequest,
    home: Option<&str>,
) -> Decision {
    match &request.kind {
        RequestKind::Question { .. } => match questions {
            QuestionPolicy::Ask => Decision::Ask,
            QuestionPolicy::Deny => {
                Decision::Answer { answer: Answer::Dismiss, rule: "questions: deny".to_owned() }
            }
        },
        RequestKind::Permission { permission, patterns } => {
            let patterns: Vec<&str> = if patterns.is_empty() {
                vec!["*"]
            } else {
                patterns.iter().map(String::as_str).collect()
            };
            let mut allowed_by = None;
            for pattern in patterns {
                let Some(rule) = last_match(rules, permission, pattern, home) else {
                    return Decision::Ask;
                };
                match rule.action {
                    Action::Deny => {
                        let rule = rule.to_string();
                        let message = Some(denied_message(&rule));
                        return Decision::Answer { answer: Answer::Deny { message }, rule };
                    }
                    Action::Ask => return Decision::Ask,
                    Action::Allow => allowed_by = Some(rule),
                }
            }
            match allowed_by {
                Some(rule) => Decision::Answer {
                    answer: Answer::Allow { always: false },
                    rule: rule.to_string(),
                },
                None => Decision::Ask,
            }
        }
    }
}

/// The last rule matching `permission` and `pattern`: OpenCode's order.
pub fn last_match<'r>(
    rules: &'r [PermissionRule],
    permission: &str,
    pattern: &str,
    home: Option<&str>,
) -> Option<&'r PermissionRule> {
    rules.iter().rev().find(|rule| rule.matches(permission, pattern, home))
}

/// The ruleset to create a session with: the task's rules (home expanded), then a
/// rule taking the question tool away when questions are denied.
pub fn session_ruleset(
    rules: Option<&[PermissionRule]>,
    questions: QuestionPolicy,
    home: Option<&str>,
) -> Vec<PermissionRule> {
    let mut ruleset: Vec<PermissionRule> =
        rules.unwrap_or_default().iter().map(|rule| rule.expanded(home)).collect();
    if questions == QuestionPolicy::Deny {
        ruleset.push(PermissionRule::new("question", "*", Action::Deny));
    }
    ruleset
}

/// Why `pattern` cannot be a rule's pattern, if it cannot: OpenCode's wildcards
/// accept any text, so only what no request can ever carry is refused.
pub fn pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        Some("is empty (use \"*\" for everything)")
    } else if pattern.chars().any(|c| c.is_control() && c != '\t') {
        Some("contains a control character")
    } else {
        None
    }
}

/// `~`, `~/…`, `$HOME` and `$HOME/…` with the home directory, when it is known.
fn expand_home(pattern: &str, home: Option<&str>) -> String {
    let Some(home) = home else { return pattern.to_owned() };
    for prefix in ["~", "$HOME"] {
        if pattern == prefix {
            return home.to_owned();
        }
        if let Some(rest) = pattern.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            return format!("{}/{rest}", home.trim_end_matches('/'));
        }
    }
    pattern.to_owned()
}

/// OpenCode's wildcard match: `*` any run, `?` one character, and a trailing `" *"`
/// that may be left out (`"git push *"` matches `git push`).
fn wildcard(text: &str, pattern: &str) -> bool {
    if WildMatch::new(pattern).matches(text) {
        return true;
    }
    pattern.strip_suffix(" *").is_some_and(|head| WildMatch::new(head).matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(patterns: &[&str]) -> PendingRequest {
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

    fn rules(list: &[(&str, &str, Action)]) -> Vec<PermissionRule> {
        list.iter().map(|(k, p, a)| PermissionRule::new(*k, *p, *a)).collect()
    }

    /// The issue's example policy, in the order a spec writes it.
    fn example() -> Vec<PermissionRule> {
        rules(&[
            ("*", "*", Action::Ask),
            ("edit", "*", Action::Allow),
            ("bash", "*", Action::Ask),
            ("bash", "cargo *", Action::Allow),
            ("bash", "git push *", Action::Deny),
            ("external_directory", "*", Action::Deny),
        ])
    }

    fn action(rules: &[PermissionRule], request: &PendingRequest) -> &'static str {
        match decide(rules, QuestionPolicy::Ask, request, Some("/home/dev")) {
            Decision::Answer { answer: Answer::Allow { .. }, .. } => "allow",
            Decision::Answer { answer: Answer::Deny { .. }, .. } => "deny",
            Decision::Answer { .. } => "other",
            Decision::Ask => "ask",
        }
    }

    #[test]
    fn wildcards_follow_opencode() {
        // OpenCode's documented examples (util/wildcard and its tests).
        assert!(wildcard("git status", "git status*"));
        assert!(wildcard("git status --short", "git status*"));
        assert!(wildcard("ls", "ls *"), "a trailing \" *\" may be left out");
        assert!(wildcard("ls -la", "ls *"));
        assert!(!wildcard("lsblk", "ls *"), "but the space is not");
        assert!(wildcard("file.txt", "file.???"));
        assert!(!wildcard("file.text", "file.???"));
        assert!(wildcard("src/a/b.rs", "src/*"), "`*` crosses slashes");
        assert!(wildcard("echo a\necho b", "echo *"), "and newlines");
        assert!(wildcard("a.b", "a.b") && !wildcard("aXb", "a.b"), "`.` is literal");
        assert!(wildcard("[x]", "[x]") && !wildcard("x", "[x]"), "brackets are literal");
        assert!(wildcard("anything", "*"));
    }

    #[test]
    fn the_last_matching_rule_wins() {
        let policy = example();
        assert_eq!(action(&policy, &bash(&["cargo test"])), "allow");
        assert_eq!(action(&policy, &bash(&["git push origin main"])), "deny");
        assert_eq!(action(&policy, &bash(&["git push"])), "deny");
        assert_eq!(action(&policy, &bash(&["echo hello > hello.txt"])), "ask");
        let edit = PendingRequest {
            kind: RequestKind::Permission {
                permission: "edit".into(),
                patterns: vec!["src/main.rs".into()],
            },
            ..bash(&[])
        };
        assert_eq!(action(&policy, &edit), "allow");
        // Written the other way round, the catch-all comes last and wins.
        let reversed: Vec<_> = example().into_iter().rev().collect();
        assert_eq!(action(&reversed, &bash(&["cargo test"])), "ask");
    }

    #[test]
    fn every_pattern_of_a_request_must_be_allowed() {
        let policy = example();
        assert_eq!(action(&policy, &bash(&["cargo build", "cargo test"])), "allow");
        assert_eq!(action(&policy, &bash(&["cargo build", "git push x"])), "deny");
        assert_eq!(action(&policy, &bash(&["cargo build", "rm -rf target"])), "ask");
        assert_eq!(action(&[], &bash(&["cargo build"])), "ask", "no rules: a person decides");
    }

    #[test]
    fn a_denial_names_its_rule_and_tells_the_agent_to_carry_on() {
        let Decision::Answer { answer: Answer::Deny { message: Some(message) }, rule } =
            decide(&example(), QuestionPolicy::Ask, &bash(&["git push"]), None)
        else {
            panic!("denied");
        };
        assert_eq!(rule, r#"bash "git push *": deny"#);
        assert!(message.contains("Carry on without it") && message.contains(&rule), "{message}");
    }

    #[test]
    fn home_is_expanded_as_opencode_does() {
        let policy =
            rules(&[("edit", "~/secrets/*", Action::Deny), ("read", "$HOME", Action::Allow)]);
        let edit = |path: &str| PendingRequest {
            kind: RequestKind::Permission {
                permission: "edit".into(),
                patterns: vec![path.into()],
            },
            ..bash(&[])
        };
        assert_eq!(action(&policy, &edit("/home/dev/secrets/key")), "deny");
        assert_eq!(action(&policy, &edit("/elsewhere/secrets/key")), "ask");
        let ruleset = session_ruleset(Some(&policy), QuestionPolicy::Ask, Some("/home/dev/"));
        assert_eq!(ruleset[0].pattern, "/home/dev/secrets/*");
        assert_eq!(ruleset[1].pattern, "/home/dev/");
        assert_eq!(expand_home("~/x", None), "~/x", "kept when home is unknown");
        assert_eq!(expand_home("~user/x", Some("/h")), "~user/x");
    }

    #[test]
    fn denied_questions_are_dismissed_and_taken_from_the_session() {
        let question =
            PendingRequest { kind: RequestKind::Question { questions: vec![] }, ..bash(&[]) };
        assert_eq!(decide(&[], QuestionPolicy::Ask, &question, None), Decision::Ask);
        assert!(matches!(
            decide(&[], QuestionPolicy::Deny, &question, None),
            Decision::Answer { answer: Answer::Dismiss, .. }
        ));
        let ruleset = session_ruleset(None, QuestionPolicy::Deny, None);
        assert_eq!(ruleset, vec![PermissionRule::new("question", "*", Action::Deny)]);
        assert!(session_ruleset(None, QuestionPolicy::Ask, None).is_empty());
    }

    #[test]
    fn rules_serialize_as_opencode_rulesets() {
        let json = serde_json::to_value(PermissionRule::new("bash", "*", Action::Allow))
            .expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"permission": "bash", "pattern": "*", "action": "allow"})
        );
        assert_eq!(pattern_problem(""), Some("is empty (use \"*\" for everything)"));
        assert_eq!(pattern_problem("cargo *"), None);
    }
}
