//! `openloom init`: write the starter spec.

use std::path::Path;

use anyhow::Result;

use crate::exit::{self, coded};

pub fn run(cwd: &Path, path: &Path, force: bool) -> Result<u8> {
    let target = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let workspace = target.parent().unwrap_or(cwd).to_string_lossy().into_owned();
    let written = openloom_prompts::write_default_spec(&target, &workspace, force)
        .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    println!("Wrote {}", written.display());
    println!("Edit the goal, steps and checks, then run: openloom watch {}", path.display());
    Ok(exit::OK)
}
