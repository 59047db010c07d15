//! The skip policy for end-to-end tests, and [`E2e`], everything one test needs.

use std::io::Write as _;
use std::sync::Once;

use crate::Error;
use crate::launcher::{Launcher, OpencodeOptions, OpencodeServer};
use crate::model::{Script, ScriptedModel};
use crate::workspace::GitWorkspace;

/// Environment variable: `required` turns a missing OpenCode into a test failure
/// (CI sets it); anything else lets e2e tests skip.
pub const E2E_ENV: &str = "OPENLOOM_E2E";

/// The launcher for an end-to-end test, or `None` when OpenCode is missing and the
/// test should return early.
///
/// When skipping, one line per test process says why and how to install OpenCode
/// (the error carries [`INSTALL_HINT`](crate::INSTALL_HINT)). It is
/// written to stderr directly (not with `eprintln!`, which the test harness
/// captures) so it shows up in a normal `cargo test` run.
///
/// # Panics
/// When OpenCode is missing and `OPENLOOM_E2E=required`: in CI a skipped e2e suite
/// must fail, not pass silently.
pub fn e2e_launcher() -> Option<Launcher> {
    match Launcher::find() {
        Ok(launcher) => Some(launcher),
        Err(error) if e2e_required() => {
            panic!("{E2E_ENV}=required but OpenCode is unavailable: {error}")
        }
        Err(error) => {
            static SKIP_NOTICE: Once = Once::new();
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "openloom e2e: skipping the OpenCode tests: {error}"
                );
            });
            None
        }
    }
}

/// Whether `OPENLOOM_E2E=required` is set.
pub fn e2e_required() -> bool {
    std::env::var(E2E_ENV).is_ok_and(|value| value.eq_ignore_ascii_case("required"))
}

/// `let launcher = require_opencode!();` — the launcher, or return from the test
/// when OpenCode is not installed (see [`e2e_launcher`]).
#[macro_export]
macro_rules! require_opencode {
    () => {
        match $crate::e2e_launcher() {
            Some(launcher) => launcher,
            None => return,
        }
    };
}

/// Everything one end-to-end test needs: a scripted model, a git workspace, and an
/// OpenCode server wired to the model. Fields drop in order, OpenCode first.
#[derive(Debug)]
pub struct E2e {
    /// The running OpenCode.
    pub opencode: OpencodeServer,
    /// The scripted model OpenCode talks to.
    pub model: ScriptedModel,
    /// A temp git repository to create sessions in.
    pub workspace: GitWorkspace,
}

impl E2e {
    /// Start the model with `script`, create a workspace, start OpenCode.
    pub async fn start(launcher: &Launcher, script: Script) -> Result<Self, Error> {
        Self::start_with(launcher, script, OpencodeOptions::default()).await
    }

    /// Like [`start`](Self::start) with OpenCode options (auth, permissions, …).
    pub async fn start_with(
        launcher: &Launcher,
        script: Script,
        options: OpencodeOptions,
    ) -> Result<Self, Error> {
        let model = ScriptedModel::start(script).await?;
        let workspace = GitWorkspace::create()?;
        let opencode = launcher.start(&model, options).await?;
        Ok(Self { opencode, model, workspace })
    }
}
