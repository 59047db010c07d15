//! GitHub issues as work: the pure decision of what one `issues` webhook delivery
//! means. The server's `/api/hooks/github` route checks the signature, calls
//! [`decide`], answers, and queues the task; nothing here does I/O.
//!
//! An issue becomes a task when it gets the configured label (`labeled` with that
//! label, or `opened` already carrying it): its title is the task's name; a fenced
//! ```` ```yaml ```` block in its body is the spec, otherwise the body is the prompt;
//! the workspace is the repository's directory from the configuration. The origin
//! is `github:<X-GitHub-Delivery>`, so a redelivered hook makes no second task.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use openloom_core::{Arrival, Origin, TaskSpec};
use openloom_prompts::PromptOptions;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The label an issue gets to become a task, unless configured otherwise.
pub const DEFAULT_LABEL: &str = "openloom";

/// What the GitHub source takes: the label, and each repository's directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The label that turns an issue into a task.
    #[serde(default = "default_label")]
    pub label: String,
    /// `owner/name` → the directory its tasks run in.
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
}

fn default_label() -> String {
    DEFAULT_LABEL.to_owned()
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig { label: default_label(), repos: BTreeMap::new() }
    }
}

impl GithubConfig {
    /// The directory of `repo` (GitHub's names are case-insensitive).
    pub fn workspace_of(&self, repo: &str) -> Option<&str> {
        self.repos
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(repo))
            .map(|(_, dir)| dir.as_str())
    }
}

/// What a delivery means.
#[derive(Debug, Clone, PartialEq)]
pub enum HookDecision {
    /// GitHub's `ping` when a hook is created: answer 200.
    Pong,
    /// Nothing to do, and why (answered 202 with the reason).
    Ignore(String),
    /// A task to create (answered 202, created after). Boxed: a spec is large.
    Task(Box<Arrival>),
}

#[derive(Debug, Deserialize)]
struct Payload {
    action: String,
    issue: Issue,
    label: Option<Label>,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct Issue {
    number: u64,
    title: String,
    body: Option<String>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
struct Label {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
}

/// Decides what the delivery `delivery` of event `event` with body `body` means.
/// Errors: a malformed payload or delivery id ([`Error::Payload`], 400), a
/// repository not in the map ([`Error::UnknownRepository`], 422), a spec block that
/// does not parse ([`Error::Spec`], 422) or picks its own workspace
/// ([`Error::Refused`], 422).
pub fn decide(
    config: &GithubConfig,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Result<HookDecision> {
    let malformed = |problem: String| Error::Payload { event: event.to_owned(), problem };
    match event {
        "ping" => return Ok(HookDecision::Pong),
        "issues" => {}
        other => {
            return Ok(HookDecision::Ignore(format!(
                "the {other:?} event is not taken; subscribe the hook to \"Issues\" only"
            )));
        }
    }
    let origin = Origin::new("github", delivery.trim())
        .map_err(|e| malformed(format!("X-GitHub-Delivery: {e}")))?;
    let payload: Payload = serde_json::from_slice(body).map_err(|e| malformed(format!("{e}")))?;
    let label = &config.label;
    let labelled = match payload.action.as_str() {
        "labeled" => payload.label.as_ref().is_some_and(|l| l.name.eq_ignore_ascii_case(label)),
        "opened" => payload.issue.labels.iter().any(|l| l.name.eq_ignore_ascii_case(label)),
        other => {
            return Ok(HookDecision::Ignore(format!(
                "action {other:?}: only an issue labeled {label:?} (or opened with it) becomes a task"
            )));
        }
    };
    if !labelled {
        return Ok(HookDecision::Ignore(format!(
            "the issue does not carry the label {label:?}; nothing to do"
        )));
    }
    let repo = payload.repository.full_name;
    let workspace = config
        .workspace_of(&repo)
        .ok_or_else(|| Error::UnknownRepository { repo: repo.clone() })?;
    let issue = format!("{repo}#{}", payload.issue.number);
    let spec = issue_spec(&issue, &payload.issue, workspace)?;
    Ok(HookDecision::Task(Box::new(Arrival { origin, spec })))
}

/// The spec of an issue: its ```` ```yaml ```` block, else its body as the prompt.
fn issue_spec(issue: &str, details: &Issue, workspace: &str) -> Result<TaskSpec> {
    let body = details.body.as_deref().unwrap_or("").replace("\r\n", "\n");
    let title = details.title.trim();
    let mut spec = match yaml_block(&body) {
        Some(block) => {
            let mut spec = openloom_prompts::parse_yaml(block, &format!("github:{issue}"))?;
            spec.workspace = issue_workspace(issue, &spec.workspace, workspace)?;
            spec
        }
        None => {
            let prompt = if body.trim().is_empty() { title } else { body.as_str() };
            let options =
                PromptOptions { name: Some(title.to_owned()), ..PromptOptions::default() };
            openloom_prompts::task_spec_from_prompt(prompt, workspace, options)?
        }
    };
    if !title.is_empty() {
        spec.name = title.to_owned();
    }
    openloom_prompts::check_spec_limits(&spec, &format!("github:{issue}"))?;
    Ok(spec)
}

/// The first fenced block whose info string is `yaml` or `yml`, without its fences.
fn yaml_block(body: &str) -> Option<&str> {
    let mut start = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        match start {
            None => {
                let info = trimmed.strip_prefix("```").map(str::trim);
                if matches!(info, Some(i) if i.eq_ignore_ascii_case("yaml") || i.eq_ignore_ascii_case("yml"))
                {
                    start = Some(offset + line.len());
                }
            }
            Some(begin) if trimmed == "```" => return Some(&body[begin..offset]),
            Some(_) => {}
        }
        offset += line.len();
    }
    // An unclosed block runs to the end of the body, as GitHub renders it.
    start.map(|begin| &body[begin..])
}

/// A spec from an issue runs in its repository's directory: it may name a
/// subdirectory of it, never a directory of its own choosing.
fn issue_workspace(issue: &str, asked: &str, repo_dir: &str) -> Result<String> {
    let asked = asked.trim();
    if asked.is_empty() {
        return Ok(repo_dir.to_owned());
    }
    let path = Path::new(asked);
    if path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Ok(Path::new(repo_dir).join(path).to_string_lossy().into_owned());
    }
    Err(Error::Refused {
        issue: issue.to_owned(),
        problem: format!(
            "the spec asks for workspace {asked:?}; a spec from an issue runs in its \
             repository's directory ({repo_dir}) or a subdirectory named relative to it"
        ),
    })
}

#[cfg(test)]
mod tests;
