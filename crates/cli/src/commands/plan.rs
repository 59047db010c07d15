//! `openloom plan "INTENT"`: the model drafts a spec in a throwaway session.

use std::path::Path;

use anyhow::{Context, Result};
use openloom_core::spec::DEFAULT_CHECK_INTERVAL_SECONDS;

use super::parts;
use crate::config::Settings;
use crate::exit::{self, coded};

pub async fn run(
    settings: &Settings,
    intent: &str,
    workspace: &Path,
    output: &Path,
    force: bool,
) -> Result<u8> {
    if intent.trim().is_empty() {
        return Err(coded(
            exit::BAD_INPUT,
            "say what you want done: openloom plan \"add a --json flag to status\"",
        ));
    }
    if output.exists() && !force {
        return Err(coded(
            exit::BAD_INPUT,
            format!(
                "{} already exists; pass --force to overwrite it or --output to write elsewhere",
                output.display()
            ),
        ));
    }
    let workspace = settings
        .workspace_policy()
        .resolve(&workspace.to_string_lossy())
        .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    let workspace = workspace.to_string_lossy().into_owned();
    let client = parts::client(settings)?;
    parts::require_opencode(&client, settings).await?;

    eprintln!("Asking the model for a plan (in a throwaway session in {workspace}) ...");
    let plan = openloom_prompts::draft_plan(client.as_ref(), &workspace, intent, None)
        .await
        .map_err(plan_error)?;
    let spec =
        openloom_prompts::plan_to_spec(&plan, &workspace, Some(DEFAULT_CHECK_INTERVAL_SECONDS));
    let yaml = openloom_prompts::spec_to_yaml(&spec).context("could not write the plan as YAML")?;
    std::fs::write(output, yaml)
        .with_context(|| format!("could not write {}", output.display()))?;
    println!(
        "Wrote {} ({} steps). Review it, add `checks:`, then run: openloom watch {}",
        output.display(),
        spec.steps.len(),
        output.display()
    );
    Ok(exit::OK)
}

/// The CLI's words for a failed draft: the model's failures say what to try; the
/// agent server's keep their own message.
fn plan_error(error: openloom_prompts::Error) -> anyhow::Error {
    use openloom_prompts::Error as Prompts;
    let message = match error {
        Prompts::PlanModelFailed { name, message } => {
            format!("the model could not plan: {name}: {message}")
        }
        Prompts::UnusablePlanReply { source } => {
            format!("the model's plan was unusable: {source}; try rephrasing the intent")
        }
        // The message already names its cause; `coded` keeps it from printing twice.
        other => other.to_string(),
    };
    coded(exit::FAILURE, message)
}
