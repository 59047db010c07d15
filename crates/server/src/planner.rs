//! The plan as the API returns it. Drafting it is `openloom_prompts::draft_plan`,
//! which the CLI's `openloom plan` shares.

use openloom_prompts::Plan;
use serde_json::{Value, json};

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
