//! `POST /api/tasks/{id}/requests/{requestId}`: a person's answer to a permission or
//! a question the task's agent waits on, from the API or the dashboard. Core's
//! [`answer_pending`] does the work (deliver, audit, clear); this module reads the
//! body and maps the outcome to HTTP: 200 with the task, 400 for an answer that does
//! not fit, 404 for an unknown task or request, 409 when nothing is pending any more.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use openloom_core::{
    Answer, Answered, AnsweredBy, Channel, Event, EventPayload, Refusal, StoreVersion, Task,
    answer_pending,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The body: `{"reply": "allow"|"always"|"deny", "message"?}` for a permission,
/// `{"answers": [["label", …], …]}` (one list per question) or `{"dismiss": true}`
/// for a question; `"via": "dashboard"` audits the answer as the dashboard's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    reply: Option<String>,
    message: Option<String>,
    answers: Option<Vec<Vec<String>>>,
    dismiss: Option<bool>,
    via: Option<String>,
}

impl AnswerBody {
    /// The answer and who gave it, or a 400 that says what is wrong.
    fn parse(self) -> Result<(Answer, AnsweredBy)> {
        let channel = match self.via.as_deref() {
            None | Some("api") => Channel::Api,
            Some("dashboard") => Channel::Dashboard,
            Some(other) => {
                return Err(Error::BadRequest(format!(
                    "via must be \"api\" or \"dashboard\", not {other:?}"
                )));
            }
        };
        let given = [self.reply.is_some(), self.answers.is_some(), self.dismiss.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(Error::BadRequest(
                "give exactly one of reply (allow, always, deny) for a permission, answers \
                 (one list of labels per question) or dismiss: true for a question"
                    .into(),
            ));
        }
        if self.message.is_some() && self.reply.as_deref() != Some("deny") {
            return Err(Error::BadRequest("message goes only with reply \"deny\"".into()));
        }
        let answer = match (self.reply.as_deref(), self.answers, self.dismiss) {
            (Some("allow"), _, _) => Answer::Allow { always: false },
            (Some("always"), _, _) => Answer::Allow { always: true },
            (Some("deny"), _, _) => Answer::Deny { message: self.message },
            (Some(other), _, _) => {
                return Err(Error::BadRequest(format!(
                    "reply must be \"allow\", \"always\" or \"deny\", not {other:?}"
                )));
            }
            (None, Some(answers), _) => Answer::Choose { answers },
            (None, None, Some(true)) => Answer::Dismiss,
            (None, None, _) => {
                return Err(Error::BadRequest(
                    "dismiss must be true (to answer, send answers instead)".into(),
                ));
            }
        };
        Ok((answer, AnsweredBy::Person { channel }))
    }
}

/// Answers a pending request of a task.
pub async fn answer(
    State(state): State<AppState>,
    ApiPath((id, request_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<Json<Value>> {
    let (answer, by) = body.parse()?;
    let id = openloom_core::TaskId::from(id);
    // The agent of the OpenCode server the task's session is in.
    let mut harness = state.harness();
    if let Some(task) = state.store().get_task(&id).await? {
        match state.connection_for(&task) {
            Some(connection) => harness = &connection.harness,
            None => {
                let bound = task.opencode.as_deref().unwrap_or_default();
                return Err(Error::Conflict(format!(
                    "task {id} runs on the OpenCode server {bound:?}, and its requests are there; \
                     answer it through a worker connected to {bound:?}; nothing was answered"
                )));
            }
        }
    }
    let answered = answer_pending(
        state.store().as_ref(),
        harness.agent().as_ref(),
        &id,
        Some(&request_id),
        &answer,
        &by,
        Utc::now(),
    )
    .await?;
    match answered {
        Answered::Delivered { task, request, version } => {
            let summary = format!("Answered {}: {answer}, {by}", request.describe());
            announce(&state, &task, version, &summary);
            Ok(Json(json!({
                "ok": true,
                "task": task,
                "request": request,
                "answer": answer,
                "summary": summary,
                "store_version": version,
            })))
        }
        Answered::NoLongerPending { task, request, version } => {
            announce(&state, &task, version, &format!("No longer pending: {}", request.describe()));
            Err(Error::Conflict(format!(
                "request {} ({}) is no longer pending: it was answered elsewhere, or its \
                 session ended; nothing was answered",
                request.id,
                request.describe()
            )))
        }
        Answered::Refused(refusal) => Err(refused(refusal)),
    }
}

/// Tells the live views (SSE, the dashboard) that the task changed.
fn announce(state: &AppState, task: &Task, version: StoreVersion, summary: &str) {
    state.harness().bus().emit(Event::new(
        task.id.clone(),
        version,
        EventPayload::Updated {
            status: task.status,
            current_step: task.current_step,
            progress: task.progress,
            summary: summary.to_owned(),
        },
    ));
}

fn refused(refusal: Refusal) -> Error {
    match refusal {
        Refusal::UnknownTask { id } => Error::NotFound { what: "task", id: id.to_string() },
        // A request id was named and the task waits on nothing: most likely the
        // request was answered already (a second click, another person).
        Refusal::NothingPending { task_id } => Error::Conflict(format!(
            "task {task_id} waits on no permission or question: the request is no longer pending"
        )),
        // `GET /api/tasks/{id}` lists what is pending.
        Refusal::UnknownRequest { request_id, .. } => {
            Error::NotFound { what: "pending request", id: request_id }
        }
        refusal @ (Refusal::Ambiguous { .. } | Refusal::Misfit { .. }) => {
            Error::BadRequest(refusal.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Result<(Answer, AnsweredBy)> {
        serde_json::from_value::<AnswerBody>(value).expect("a body").parse()
    }

    #[test]
    fn a_body_names_one_answer_and_where_it_came_from() {
        let api = AnsweredBy::Person { channel: Channel::Api };
        assert_eq!(
            body(json!({"reply": "always"})).expect("ok"),
            (Answer::Allow { always: true }, api.clone())
        );
        assert_eq!(
            body(json!({"reply": "deny", "message": "no"})).expect("ok").0,
            Answer::Deny { message: Some("no".into()) }
        );
        assert_eq!(
            body(json!({"answers": [["a.txt"]], "via": "dashboard"})).expect("ok"),
            (
                Answer::Choose { answers: vec![vec!["a.txt".into()]] },
                AnsweredBy::Person { channel: Channel::Dashboard }
            )
        );
        assert_eq!(body(json!({"dismiss": true})).expect("ok").0, Answer::Dismiss);
        for bad in [
            json!({}),
            json!({"reply": "allow", "dismiss": true}),
            json!({"reply": "once"}),
            json!({"reply": "allow", "message": "x"}),
            json!({"dismiss": false}),
            json!({"reply": "allow", "via": "cli"}),
        ] {
            let error = body(bad.clone()).expect_err("refused");
            assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}: {error}");
        }
    }
}
