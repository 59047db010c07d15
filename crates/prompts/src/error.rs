//! The one error type of the prompts crate.
//!
//! Spec errors always name where the problem is — the file (or `<input>`), a line and
//! column when the parser knows them, the field path (`steps[1].checks[0]`) — and what
//! would have been valid, because the person reading them is editing that file.

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a spec a problem is: the origin (file path or `<input>`) and, when known,
/// a one-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the spec came from, or `<input>` for text without a file.
    pub origin: String,
    /// One-based line, when known.
    pub line: Option<u32>,
    /// One-based column, when known.
    pub column: Option<u32>,
}

impl Location {
    /// A location with only an origin.
    pub fn new(origin: impl Into<String>) -> Self {
        Location { origin: origin.into(), line: None, column: None }
    }

    /// The same origin at a line (and optionally column).
    pub fn at(&self, line: usize, column: Option<usize>) -> Self {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Location {
            origin: self.origin.clone(),
            line: Some(narrow(line)),
            column: column.map(narrow),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong parsing specs, writing them, or reading a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec text is empty (or only whitespace and comments).
    #[error("{location}: the spec is empty; {expected}")]
    EmptySpec {
        /// Where.
        location: Location,
        /// What a minimal valid spec looks like.
        expected: &'static str,
    },
    /// The YAML could not be parsed at all.
    #[error("{location}: invalid YAML: {message}")]
    YamlSyntax {
        /// Where, with the line and column the YAML parser reported.
        location: Location,
        /// The parser's message.
        message: String,
    },
    /// The spec parsed, but a field has the wrong shape or value.
    #[error("{location}: {field}: {problem}; expected {expected}")]
    InvalidField {
        /// Where (a line for Markdown specs; YAML values carry no positions).
        location: Location,
        /// The field path, e.g. `steps[1].checks[0]`, or `<document>` for the whole spec.
        field: String,
        /// What is wrong.
        problem: String,
        /// What would be valid.
        expected: String,
    },
    /// The spec file is not UTF-8 text.
    #[error(
        "{}: not UTF-8 text (invalid byte at offset {offset}, line {line}); save the file as UTF-8",
        path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
        /// One-based line of that byte.
        line: usize,
    },
    /// Reading or writing a file failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file to create exists already.
    #[error(
        "{} already exists; remove it or overwrite it with force (the CLI's --force)",
        path.display()
    )]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A prompt-only task needs a prompt.
    #[error("a prompt is required: the text is empty")]
    EmptyPrompt,
    /// The planner's reply contained no JSON object.
    #[error("the planner's reply contains no JSON object: {excerpt:?}")]
    PlanWithoutJson {
        /// The start of the reply, for the log.
        excerpt: String,
    },
    /// The planner's JSON is not a usable plan.
    #[error("the planner's plan is not usable: {reason}")]
    InvalidPlan {
        /// What is missing or wrong.
        reason: String,
    },
    /// Serialising a spec to YAML failed.
    #[error("could not write the spec as YAML: {0}")]
    Serialize(#[from] serde_yaml::Error),
    /// Drafting a plan: the agent server failed. Its error decides what to do
    /// (transient or not, credentials, a session that vanished).
    #[error("{doing}: {source}")]
    PlanningAgent {
        /// What was being done, e.g. "could not create the planning session".
        doing: &'static str,
        /// The agent server's error.
        #[source]
        source: openloom_core::Error,
    },
    /// Drafting a plan: the model ended its turn with an error (a provider failure,
    /// an unknown model or agent).
    #[error("the model failed to plan: {name} {message}")]
    PlanModelFailed {
        /// The error's name, e.g. `ProviderAuthError`.
        name: String,
        /// Its message.
        message: String,
    },
    /// Drafting a plan: the model answered, but with no usable plan
    /// ([`Error::PlanWithoutJson`] or [`Error::InvalidPlan`] inside).
    #[error("the model's reply holds no usable plan: {source}")]
    UnusablePlanReply {
        /// Why the reply is not a plan.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// True when the caller's input is at fault (a bad spec, a blank prompt, a file
    /// that exists): a 400 at an HTTP edge. False for a planner reply the model got
    /// wrong (the agent's fault, a 502) and for I/O and serialisation failures.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::EmptySpec { .. }
                | Error::YamlSyntax { .. }
                | Error::InvalidField { .. }
                | Error::NotUtf8 { .. }
                | Error::AlreadyExists { .. }
                | Error::EmptyPrompt
        )
    }

    /// An [`Error::InvalidField`] without a line.
    pub(crate) fn field(
        location: &Location,
        field: impl Into<String>,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidField {
            location: location.clone(),
            field: field.into(),
            problem: problem.into(),
            expected: expected.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_print_like_compiler_diagnostics() {
        let loc = Location::new("task.yaml");
        assert_eq!(loc.to_string(), "task.yaml");
        assert_eq!(loc.at(3, Some(7)).to_string(), "task.yaml:3:7");
        assert_eq!(loc.at(3, None).to_string(), "task.yaml:3");
    }

    #[test]
    fn input_errors_are_told_from_model_errors() {
        assert!(Error::EmptyPrompt.is_invalid_input());
        assert!(!Error::InvalidPlan { reason: "no steps".into() }.is_invalid_input());
        assert!(!Error::PlanWithoutJson { excerpt: String::new() }.is_invalid_input());
    }

    #[test]
    fn field_errors_say_what_is_valid() {
        let err = Error::field(&Location::new("<input>"), "steps", "is a string", "a list");
        assert_eq!(err.to_string(), "<input>: steps: is a string; expected a list");
    }
}
