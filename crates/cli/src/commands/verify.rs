//! `openloom verify SPEC`: run a spec's checks now, without an agent.

use std::path::Path;

use anyhow::{Context, Result};
use openloom_checks::{CheckRunner, verify_spec};

use super::parts;
use crate::config::Settings;
use crate::exit::{self, coded};

pub async fn run(settings: &Settings, spec_path: &Path, json: bool) -> Result<u8> {
    let spec = parts::load_spec(spec_path)?;
    if !spec.has_checks() {
        return Err(coded(
            exit::BAD_INPUT,
            format!(
                "{} has no executable checks; add `checks:` to a step or the task (see docs/spec-format.md)",
                spec_path.display()
            ),
        ));
    }
    let workspace = settings
        .workspace_policy()
        .resolve(&spec.workspace)
        .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    eprintln!(
        "Running the checks of {} in {} ...",
        crate::console::printable(&spec.name),
        crate::console::printable(&workspace.display().to_string())
    );
    let verification = verify_spec(&CheckRunner::new(), &workspace, &spec).await;
    if json {
        let rows: Vec<serde_json::Value> = verification
            .outcomes()
            .map(|(scope, outcome)| serde_json::json!({ "scope": scope, "outcome": outcome }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).context("could not encode results")?);
    } else {
        print!("{}", crate::console::printable_lines(&verification.render_table()));
    }
    Ok(if verification.passed() { exit::OK } else { exit::FAILURE })
}
