//! `openloom completions SHELL`: the shell completion script, generated from the same
//! clap definition that parses the command line, so it cannot drift from it.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Writes the completion script for `shell` to stdout.
pub fn run(shell: Shell) -> Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "openloom", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("could not write the completion script to stdout")?;
    Ok(exit::OK)
}
