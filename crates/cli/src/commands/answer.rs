//! `openloom answer TASK_ID_PREFIX`: a person's answer to a permission or a question
//! the task's agent waits on, delivered to OpenCode and audited in the check log by
//! core's [`answer_pending`]. It needs no running `watch` or `serve`: it reads the
//! task from the store and talks to OpenCode itself.

use anyhow::Result;
use chrono::Utc;
use openloom_core::{Answer, Answered, AnsweredBy, Channel, Refusal, answer_pending};

use super::log::resolve_prefix;
use super::parts;
use crate::config::Settings;
use crate::console::printable;
use crate::exit::{self, coded};

/// The answer the flags give. Clap lets exactly one of them through; the error is for
/// a definition that stopped doing so.
pub fn reply(
    allow: bool,
    always: bool,
    deny: bool,
    message: Option<String>,
    choose: Vec<String>,
    dismiss: bool,
) -> Result<Answer> {
    Ok(match (allow, deny, choose.is_empty(), dismiss) {
        (true, false, true, false) => Answer::Allow { always },
        (false, true, true, false) => Answer::Deny { message },
        // One `--choose` per question, in order, one label each.
        (false, false, false, false) => {
            Answer::Choose { answers: choose.into_iter().map(|label| vec![label]).collect() }
        }
        (false, false, true, true) => Answer::Dismiss,
        _ => {
            return Err(coded(
                exit::BAD_INPUT,
                "give exactly one of --allow, --deny, --choose LABEL… or --dismiss",
            ));
        }
    })
}

pub async fn run(
    settings: &Settings,
    prefix: &str,
    request: Option<&str>,
    answer: &Answer,
) -> Result<u8> {
    let store = parts::store(settings).await?.tasks;
    let task = resolve_prefix(store.as_ref(), prefix).await?;
    let settings = &on_the_tasks_opencode(settings, &task)?;
    // An OpenCode that `watch` or `serve` started itself, when the user named none.
    let settings = &crate::opencode_file::reachable(settings).await;
    let client = parts::client(settings)?;
    let by = AnsweredBy::Person { channel: Channel::Cli };
    let answered =
        answer_pending(store.as_ref(), client.as_ref(), &task.id, request, answer, &by, Utc::now())
            .await
            .map_err(|error| agent_failure(settings, &error))?;
    let id = printable(task.id.as_str());
    match answered {
        Answered::Delivered { task, request, .. } => {
            println!("Answered {}: {answer}", printable(&request.describe()));
            let next = match task.pending_requests.len() {
                0 => format!("the agent goes on; follow it with `openloom log {id}`"),
                n => format!(
                    "{n} more request(s) pending; `openloom status --json` lists them, \
                     `openloom answer {id} --request ID …` answers one"
                ),
            };
            println!("task {id} is {}: {next}", task.status);
            Ok(exit::OK)
        }
        Answered::NoLongerPending { request, .. } => Err(coded(
            exit::NOT_PENDING,
            format!(
                "{} ({}) is no longer pending: it was answered elsewhere, or its session ended; \
                 nothing was answered. See `openloom log {id}` and `openloom status`",
                request.id,
                request.describe()
            ),
        )),
        Answered::Refused(refusal) => Err(refused(&id, &refusal)),
    }
}

/// A refusal in the CLI's words, with its exit code and what to do next.
fn refused(id: &str, refusal: &Refusal) -> anyhow::Error {
    let list = |pending: &[(String, String)]| {
        pending.iter().map(|(rid, what)| format!("  {rid}  {what}")).collect::<Vec<_>>().join("\n")
    };
    match refusal {
        Refusal::UnknownTask { .. } => {
            coded(exit::NOT_FOUND, format!("{refusal}; see `openloom status`"))
        }
        Refusal::NothingPending { .. } => coded(
            exit::NOT_PENDING,
            format!(
                "task {id} waits on no permission or question (answered already?); \
                 see `openloom status`"
            ),
        ),
        Refusal::UnknownRequest { request_id, pending, .. } => coded(
            exit::NOT_FOUND,
            format!(
                "task {id} has no pending request {request_id:?}; pending:\n{}\n\
                 pass one of these ids with --request",
                list(pending)
            ),
        ),
        Refusal::Ambiguous { pending, .. } => coded(
            exit::BAD_INPUT,
            format!(
                "task {id} has {} pending requests; say which with --request ID:\n{}",
                pending.len(),
                list(pending)
            ),
        ),
        Refusal::Misfit { reason, .. } => coded(exit::BAD_INPUT, reason.clone()),
    }
}

/// An error reaching OpenCode or the store, with its exit code and the fix.
fn agent_failure(settings: &Settings, error: &openloom_core::Error) -> anyhow::Error {
    use openloom_core::Error as Core;
    match error {
        Core::AgentUnavailable { .. } | Core::AgentUnauthorized { .. } => coded(
            exit::UNREACHABLE,
            format!(
                "could not deliver the answer to OpenCode at {}: {error}\n  \
                 point OPENLOOM_OPENCODE_URL (and OPENLOOM_OPENCODE_PASSWORD) at the OpenCode \
                 that runs the task; one that `watch` or `serve` started itself is found \
                 without them while it runs, if this shell has the same XDG_STATE_HOME (or HOME)",
                settings.opencode_url
            ),
        ),
        other => coded(exit::FAILURE, format!("could not answer: {other}")),
    }
}

/// The settings that reach the OpenCode server `task` runs on: these, unless it is
/// bound to another server of `opencode_servers`, whose URL is then used. A task
/// bound to a server these settings cannot reach is an error naming it.
fn on_the_tasks_opencode(settings: &Settings, task: &openloom_core::Task) -> Result<Settings> {
    let Some(bound) =
        task.opencode.as_deref().filter(|_| !task.runs_on(settings.opencode.as_deref()))
    else {
        return Ok(settings.clone());
    };
    let Some(url) = settings.opencode_servers.get(bound) else {
        return Err(coded(
            exit::BAD_INPUT,
            format!(
                "task {} runs on the OpenCode server {bound:?}, which opencode_servers in the \
                 config file does not list; add it with its URL, or answer on a worker connected \
                 to it",
                printable(task.id.as_str())
            ),
        ));
    };
    let mut ours = settings.clone();
    ours.opencode = Some(bound.to_owned());
    ours.opencode_url = url.trim().trim_end_matches('/').to_owned();
    ours.opencode_url_is_default = false;
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_make_one_answer_and_each_choose_answers_one_question() {
        let none = Vec::new;
        assert_eq!(
            reply(true, true, false, None, none(), false).expect("allow"),
            Answer::Allow { always: true }
        );
        assert_eq!(
            reply(false, false, true, Some("no".into()), none(), false).expect("deny"),
            Answer::Deny { message: Some("no".into()) }
        );
        assert_eq!(
            reply(false, false, false, None, vec!["a.txt".into(), "Red".into()], false)
                .expect("choose"),
            Answer::Choose { answers: vec![vec!["a.txt".into()], vec!["Red".into()]] }
        );
        assert_eq!(
            reply(false, false, false, None, none(), true).expect("dismiss"),
            Answer::Dismiss
        );
        assert!(reply(true, false, true, None, none(), false).is_err(), "two answers");
        assert!(reply(false, false, false, None, none(), false).is_err(), "no answer");
    }

    #[test]
    fn refusals_say_what_to_do_with_distinct_codes() {
        let code = |error: &anyhow::Error| {
            error.downcast_ref::<crate::exit::Coded>().map(|coded| coded.code)
        };
        let pending = vec![
            ("que_1".to_owned(), "question: \"Which?\"".to_owned()),
            ("per_2".to_owned(), "permission: bash \"ls\"".to_owned()),
        ];
        let task_id = openloom_core::TaskId::from("task_1");
        let ambiguous = refused(
            "task_1",
            &Refusal::Ambiguous { task_id: task_id.clone(), pending: pending.clone() },
        );
        assert_eq!(code(&ambiguous), Some(exit::BAD_INPUT));
        let text = ambiguous.to_string();
        assert!(text.contains("--request") && text.contains("  per_2  permission"), "{text}");
        let nothing = refused("task_1", &Refusal::NothingPending { task_id: task_id.clone() });
        assert_eq!(code(&nothing), Some(exit::NOT_PENDING));
        let unknown = refused(
            "task_1",
            &Refusal::UnknownRequest { task_id, request_id: "x".into(), pending },
        );
        assert_eq!(code(&unknown), Some(exit::NOT_FOUND));
        assert!(unknown.to_string().contains("que_1"), "{unknown}");
    }
}
