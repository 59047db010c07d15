//! Drafting a plan with the model: a port of the reference's `generate_plan`.
//!
//! The planner prompt runs in a throwaway session that is deleted afterwards
//! whatever happened, so plans never clutter the user's session list.

use openloom_core::SessionRef;
use openloom_opencode::OpencodeClient;
use openloom_prompts::Plan;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Title of the throwaway planning session.
pub const PLAN_SESSION_TITLE: &str = "OpenLoom plan";

/// Asks the model for a plan for `intent` in `workspace` (already resolved).
pub async fn generate_plan(
    client: &OpencodeClient,
    workspace: &str,
    intent: &str,
    agent: Option<&str>,
) -> Result<Plan> {
    let session = client.create_session(workspace, PLAN_SESSION_TITLE).await?;
    let session = SessionRef { id: session.id, directory: workspace.to_owned() };
    let result = ask(client, &session, intent, agent).await;
    if let Err(error) = client.delete_session(&session).await {
        tracing::warn!(session = %session.id, %error, "could not delete the planning session");
    }
    result
}

async fn ask(
    client: &OpencodeClient,
    session: &SessionRef,
    intent: &str,
    agent: Option<&str>,
) -> Result<Plan> {
    let prompt = openloom_prompts::build_planner_prompt(intent, &session.directory);
    let reply = client.prompt_and_wait(session, &prompt, agent).await?;
    if let Some(error) = &reply.error {
        return Err(Error::Upstream(format!(
            "the model failed to plan: {} {}",
            error.name, error.message
        )));
    }
    let mut text = reply.text();
    if text.trim().is_empty() {
        let messages = client.messages(session, 20).await?;
        text = openloom_prompts::last_assistant_text(&messages);
    }
    openloom_prompts::parse_plan_reply(&text, intent)
        .map_err(|e| Error::Upstream(format!("the model's reply holds no usable plan: {e}")))
}

/// A plan as the API returns it (the reference's `TaskPlan.to_dict`).
pub fn plan_json(plan: &Plan) -> Value {
    json!({
        "name": plan.name,
        "goal": plan.goal,
        "steps": plan.steps.iter().map(|s| json!({ "title": s.title, "acceptance": s.acceptance })).collect::<Vec<_>>(),
        "global_acceptance": plan.global_acceptance,
        "intent": plan.intent,
    })
}
