//! `openloom plan "INTENT"`: the model drafts a spec in a throwaway session.

use std::path::Path;

use anyhow::{Context, Result};
use openloom_core::SessionRef;
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
    let session = client
        .create_session(&workspace, "OpenLoom plan")
        .await
        .context("could not create a session")?;
    let session = SessionRef { id: session.id, directory: session.directory };
    let prompt = openloom_prompts::build_planner_prompt(intent, &workspace);
    let reply = client.prompt_and_wait(&session, &prompt, None).await;
    // The session was only a scratch pad: remove it whatever happened.
    if let Err(error) = client.delete_session(&session).await {
        tracing::warn!(%error, session = %session.id, "could not delete the planning session");
    }
    let reply = reply.context("the planning prompt failed")?;
    if let Some(error) = &reply.error {
        return Err(coded(
            exit::FAILURE,
            format!("the model could not plan: {}: {}", error.name, error.message),
        ));
    }
    let plan = openloom_prompts::parse_plan_reply(&reply.text(), intent).map_err(|e| {
        coded(
            exit::FAILURE,
            format!("the model's plan was unusable: {e}; try rephrasing the intent"),
        )
    })?;
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
