//! The prompts OpenLoom sends to the agent: bootstrap, periodic check, next-step
//! nudge, auto-continue reply, and the report of failed verification.
//!
//! Step numbers the agent sees are one-based; `current_step` arguments are
//! zero-based indexes, as in [`openloom_core::Task::current_step`]. Every prompt
//! that expects an answer names the markers [`STEP_DONE_MARKER`] and
//! [`TASK_COMPLETE_MARKER`], which [`crate::progress`] reads back.

use std::fmt::Write;

use openloom_core::{CheckDefinition, CheckResult, TaskSpec};

/// The marker the agent writes after a step, followed by its number.
pub const STEP_DONE_MARKER: &str = "STEP DONE";
/// The marker the agent writes when the whole task is done.
pub const TASK_COMPLETE_MARKER: &str = "TASK COMPLETE";
/// Step name used when the spec has no step at the focus index.
const REMAINING_WORK: &str = "Finish remaining work";

/// The first prompt of a task.
///
/// A prompt-only spec (an `initial_prompt` and no steps or acceptance) gets its
/// prompt verbatim; otherwise the agent gets the goal, the numbered steps with their
/// acceptance boxes, the final checks, the current focus and the markers. When the
/// spec has executable checks, the prompt lists them and says that claims are
/// verified by running them.
pub fn build_bootstrap_prompt(spec: &TaskSpec, current_step: usize) -> String {
    if let Some(prompt) = spec.initial_prompt.as_deref().filter(|p| !p.is_empty()) {
        if spec.steps.is_empty() && spec.acceptance.is_empty() {
            let mut out = prompt.to_owned();
            if spec.has_checks() {
                out.push_str("\n\n");
                out.push_str(&verification_section(spec));
            }
            return out;
        }
    }
    let steps_block = if spec.steps.is_empty() {
        "1. Complete the goal\n   - [ ] Step completed".to_owned()
    } else {
        spec.steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let boxes = if step.acceptance.is_empty() {
                    "   - [ ] Step completed".to_owned()
                } else {
                    step.acceptance
                        .iter()
                        .map(|item| format!("   - [ ] {item}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                format!("{}. {}\n{boxes}", index + 1, step.title)
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let global_section = if spec.acceptance.is_empty() {
        String::new()
    } else {
        format!("\nFinal checks (whole task):\n{}\n", checkbox_list(&spec.acceptance))
    };
    let step_name = spec.step_title(current_step).unwrap_or(REMAINING_WORK);
    let goal = if spec.goal.is_empty() { &spec.name } else { &spec.goal };
    let verification = if spec.has_checks() {
        format!("\n{}\n", verification_section(spec))
    } else {
        String::new()
    };
    format!(
        "You are executing an OpenLoom harness task.

Task: {name}
Workspace: {workspace}

Goal:
{goal}

Steps (each step has its own acceptance):
{steps_block}
{global_section}
Current focus: step {focus} — {step_name}

Proceed through steps autonomously. Do not ask for confirmation between steps.
{verification}
When you complete a step, include a line: {STEP_DONE_MARKER}: <number>
When all step and final checks pass, include a line: {TASK_COMPLETE_MARKER}
",
        name = spec.name,
        workspace = spec.workspace,
        focus = current_step + 1,
    )
}

fn checkbox_list(items: &[String]) -> String {
    items.iter().map(|item| format!("- [ ] {item}")).collect::<Vec<_>>().join("\n")
}

fn check_lines(out: &mut String, checks: &[CheckDefinition]) {
    for check in checks {
        let _ = writeln!(out, "- {}", check.label());
    }
}

/// Tells the agent which checks OpenLoom runs itself and that claims are verified.
fn verification_section(spec: &TaskSpec) -> String {
    let mut out = String::from(
        "Verification: OpenLoom runs these checks in the workspace itself; a claim counts only when its checks pass.\n",
    );
    for (index, step) in spec.steps.iter().enumerate() {
        if !step.checks.is_empty() {
            let _ = writeln!(out, "Step {} ({STEP_DONE_MARKER}: {}):", index + 1, index + 1);
            check_lines(&mut out, &step.checks);
        }
    }
    if !spec.checks.is_empty() {
        let _ = writeln!(out, "Whole task ({TASK_COMPLETE_MARKER}):");
        check_lines(&mut out, &spec.checks);
    }
    out.push_str(
        "Run them yourself before you report. If one fails after your claim, you will get its output and be asked to fix it.",
    );
    out
}

/// The prompt sent when the session is idle and no marker moved the task on: the
/// steps with `(done)` marks, the final checks, and what to reply.
///
/// A step is done when it is in `completed_steps` (one-based) or at most
/// `progress.step_done`.
pub fn build_periodic_check_prompt(
    spec: &TaskSpec,
    current_step: usize,
    progress: &CheckResult,
    completed_steps: &[u32],
) -> String {
    let steps_block = if spec.steps.is_empty() {
        "1. Complete the goal".to_owned()
    } else {
        spec.steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let number = index + 1;
                let done = completed_steps.iter().any(|n| *n as usize == number)
                    || progress.step_done as usize >= number;
                let hint = if step.acceptance.is_empty() {
                    String::new()
                } else {
                    format!(" ({} checks)", step.acceptance.len())
                };
                format!("{number}. {}{}{hint}", step.title, if done { " (done)" } else { "" })
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let global_section = if spec.acceptance.is_empty() {
        String::new()
    } else {
        format!("\nFinal checks:\n{}\n", checkbox_list(&spec.acceptance))
    };
    let focus_index = current_step.min(spec.steps.len().saturating_sub(1));
    let focus_step = spec.step_title(focus_index).unwrap_or(REMAINING_WORK);
    format!(
        "OpenLoom harness periodic check for \"{name}\".

The session is idle. Confirm task status before we schedule the next check.

Steps:
{steps_block}
{global_section}
Reply with ONE of:
- {STEP_DONE_MARKER}: <number> — if a step is finished (required after each step)
- {TASK_COMPLETE_MARKER} — if all step and final checks pass
- Or continue working on step {focus}: {focus_step}

Proceed autonomously. Do not ask for confirmation.",
        name = spec.name,
        focus = focus_index + 1,
    )
}

/// The nudge after a step was reported done: focus on the step at `next_step`
/// (zero-based, clamped to the last step).
pub fn build_next_step_prompt(spec: &TaskSpec, next_step: usize) -> String {
    let index = next_step.min(spec.steps.len().saturating_sub(1));
    let title = spec.step_title(index).unwrap_or(REMAINING_WORK);
    format!(
        "Continue harness task '{name}'. Focus on step {number}: {title}. \
         Proceed without asking for permission. \
         Reply with {STEP_DONE_MARKER}: <number> or {TASK_COMPLETE_MARKER} when appropriate.",
        name = spec.name,
        number = index + 1,
    )
}

/// The reply to an agent that asked whether to go on (see
/// [`crate::progress::needs_continue_reply`]): yes, proceed with `current_step`.
///
/// As in the reference, the number is `current_step + 1` while the title is the
/// last step's when `current_step` is past the end.
pub fn build_continue_reply(spec: &TaskSpec, current_step: usize) -> String {
    let index = current_step.min(spec.steps.len().saturating_sub(1));
    let title = spec.step_title(index).unwrap_or(REMAINING_WORK);
    let number = current_step + 1;
    format!(
        "Yes — proceed autonomously with step {number}: {title}. \
         Do not ask for confirmation between harness steps; implement directly. \
         Reply with {STEP_DONE_MARKER}: {number} when this step is finished."
    )
}

/// Most characters of one check's output shown to the agent: the end of the output,
/// where test runners and compilers summarise, is what it needs.
pub const MAX_OUTPUT_CHARS: usize = 4000;

fn output_tail(output: &str) -> String {
    let trimmed = output.trim_end();
    let count = trimmed.chars().count();
    if count <= MAX_OUTPUT_CHARS {
        return trimmed.to_owned();
    }
    let tail: String = trimmed.chars().skip(count - MAX_OUTPUT_CHARS).collect();
    format!("…{tail}")
}

/// Tells the agent its claim did not hold: which checks failed, with the tail of
/// their output, and to fix it and report again. `step` is the one-based step that
/// was claimed, `None` for `TASK COMPLETE`; `failures` pairs a check's label with
/// its output tail (cut to the last [`MAX_OUTPUT_CHARS`] characters).
pub fn build_verification_failed_prompt(
    step: Option<u32>,
    failures: &[(String, String)],
) -> String {
    let (claim, report) = match step {
        Some(n) => (format!("{STEP_DONE_MARKER}: {n}"), format!("{STEP_DONE_MARKER}: {n}")),
        None => (TASK_COMPLETE_MARKER.to_owned(), TASK_COMPLETE_MARKER.to_owned()),
    };
    let mut out = format!(
        "OpenLoom verification failed: you reported {claim}, but {} did not pass.\n",
        if failures.len() == 1 {
            "this check".to_owned()
        } else {
            format!("{} checks", failures.len())
        }
    );
    for (label, output) in failures {
        let _ = write!(out, "\nCheck: {label}\n");
        let tail = output_tail(output);
        if tail.is_empty() {
            out.push_str("(no output)\n");
        } else {
            let _ = write!(out, "Output (last lines):\n```\n{tail}\n```\n");
        }
    }
    let _ = write!(
        out,
        "\nFix the cause (not the check), run the check yourself, and when it passes reply again with {report}. \
         Proceed autonomously. Do not ask for confirmation."
    );
    out
}
