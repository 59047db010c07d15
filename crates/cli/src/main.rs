//! The `openloom` binary: parse the command line, resolve settings, install
//! tracing, run the command. Everything else lives in the library crates.

mod cli;
mod commands;
mod config;
mod console;
mod exit;
mod opencode_child;
mod opencode_file;
mod token;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::Coded;

fn main() -> ExitCode {
    // The launch step of an OpenCode child (see `opencode_child`), before any parsing.
    if let Some(code) = opencode_child::guard_main() {
        return code;
    }
    // Before any thread starts, so every arena is made under the same settings.
    let tuned = openloom_malloc::tune();
    let cli = Cli::parse();
    install_tracing();
    tracing::debug!(?tuned, "allocator settings");
    protect_secrets();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("openloom: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Errors can quote task names and spec text: escaped, newlines kept.
            eprintln!("openloom: error: {}", console::printable_lines(&format!("{error:#}")));
            ExitCode::from(error.downcast_ref::<Coded>().map_or(exit::FAILURE, |c| c.code))
        }
    }
}

/// Keeps other processes of the same user — the checks OpenLoom runs, the agent's
/// tools — from reading this process's environment (the OpenCode password, the API
/// token) through `/proc/<pid>/environ`, and from attaching a debugger to it.
fn protect_secrets() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        tracing::debug!(%error, "could not mark the process non-dumpable");
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only, so the
/// console lines stay readable). `RUST_LOG` takes a level (`debug`) or
/// `target=level` pairs (`warn,openloom_core=debug`); `tracing`'s `Targets`
/// filter reads it, which needs no regex engine (a smaller resident binary).
fn install_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let quiet = || Targets::new().with_default(LevelFilter::WARN);
    let (filter, refused) = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => match directives.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (quiet(), Some((directives, error))),
        },
        _ => (quiet(), None),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(filter)
        .init();
    if let Some((directives, error)) = refused {
        tracing::warn!(
            %error,
            "RUST_LOG={directives:?} ignored: give a level (`debug`) or `target=level` pairs \
             (`warn,openloom_core=debug`); logging warnings only"
        );
    }
}
