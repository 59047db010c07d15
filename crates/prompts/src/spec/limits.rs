//! The bounds every spec must keep, whatever it came from (a file, an API body, a
//! plan): its text size, its number of steps, checks and criteria, and the length
//! of its text fields.
//!
//! A task is stored, listed, sent to every dashboard and put into prompts; a spec of
//! 40,000 steps was accepted before and a page of such tasks took hundreds of
//! megabytes to answer. The limits are far above what a person or the planner
//! writes, and each error names the limit and what to do instead.

use openloom_core::TaskSpec;

use crate::error::{Error, Location, Result};

/// Largest spec text (YAML or Markdown), and largest spec once parsed (as JSON), in
/// bytes: 256 KiB.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;
/// Most steps in a spec.
pub const MAX_STEPS: usize = 200;
/// Most executable checks in a spec, the task's and all steps' together.
pub const MAX_CHECKS: usize = 100;
/// Most acceptance criteria in one list (the task's, or one step's).
pub const MAX_CRITERIA: usize = 100;
/// Longest task name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest step title or acceptance criterion, in characters.
pub const MAX_LINE_CHARS: usize = 2000;
/// Longest goal or initial prompt, in characters.
pub const MAX_TEXT_CHARS: usize = 64 * 1024;
/// Most permission rules in a spec's `permissions` (and characters in a pattern).
pub const MAX_RULES: usize = 200;

/// Refuses spec text larger than [`MAX_SPEC_BYTES`] before it is parsed.
pub(crate) fn check_text_size(text: &str, location: &Location) -> Result<()> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(Error::field(
            location,
            "<document>",
            format!(
                "is {} KiB, more than the {} KiB a spec may have",
                text.len() / 1024,
                MAX_SPEC_BYTES / 1024
            ),
            "a smaller spec: split the work into several tasks, and put long material in a \
             workspace file that the goal names",
        ));
    }
    Ok(())
}

/// Refuses a spec past any of the limits; the error names the field and the limit.
pub fn check_spec_limits(spec: &TaskSpec, origin: &str) -> Result<()> {
    let location = Location::new(origin);
    let split = "split the work into several tasks";
    if spec.steps.len() > MAX_STEPS {
        return Err(Error::field(
            &location,
            "steps",
            format!("has {} steps, more than the {MAX_STEPS} allowed", spec.steps.len()),
            format!("at most {MAX_STEPS} steps: {split}"),
        ));
    }
    let checks = spec.checks.len() + spec.steps.iter().map(|s| s.checks.len()).sum::<usize>();
    if checks > MAX_CHECKS {
        return Err(Error::field(
            &location,
            "checks",
            format!("the spec has {checks} checks in all, more than the {MAX_CHECKS} allowed"),
            format!("at most {MAX_CHECKS} checks: run a script that checks several things"),
        ));
    }
    chars(&location, "name", &spec.name, MAX_NAME_CHARS)?;
    chars(&location, "goal", &spec.goal, MAX_TEXT_CHARS)?;
    if let Some(prompt) = &spec.initial_prompt {
        chars(&location, "initial_prompt", prompt, MAX_TEXT_CHARS)?;
    }
    criteria(&location, "acceptance", &spec.acceptance)?;
    for (index, step) in spec.steps.iter().enumerate() {
        chars(&location, &format!("steps[{index}].title"), &step.title, MAX_LINE_CHARS)?;
        criteria(&location, &format!("steps[{index}].acceptance"), &step.acceptance)?;
    }
    let rules = spec.unattended.rules();
    if rules.len() > MAX_RULES {
        return Err(Error::field(
            &location,
            "permissions",
            format!("has {} rules, more than the {MAX_RULES} allowed", rules.len()),
            format!("at most {MAX_RULES} rules: use `*` patterns to cover related commands"),
        ));
    }
    for rule in rules {
        chars(
            &location,
            &format!("permissions.{}", rule.permission),
            &rule.pattern,
            MAX_LINE_CHARS,
        )?;
        chars(&location, "permissions", &rule.permission, MAX_LINE_CHARS)?;
    }
    let bytes = serde_json::to_vec(spec).map(|json| json.len()).unwrap_or(usize::MAX);
    if bytes > MAX_SPEC_BYTES {
        return Err(Error::field(
            &location,
            "<document>",
            format!(
                "is {} KiB once parsed, more than the {} KiB a spec may have",
                bytes / 1024,
                MAX_SPEC_BYTES / 1024
            ),
            format!("a smaller spec: {split}, and put long material in a workspace file"),
        ));
    }
    Ok(())
}

fn criteria(location: &Location, field: &str, items: &[String]) -> Result<()> {
    if items.len() > MAX_CRITERIA {
        return Err(Error::field(
            location,
            field,
            format!("has {} criteria, more than the {MAX_CRITERIA} allowed", items.len()),
            format!("at most {MAX_CRITERIA} criteria: group related ones"),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        chars(location, &format!("{field}[{index}]"), item, MAX_LINE_CHARS)?;
    }
    Ok(())
}

fn chars(location: &Location, field: &str, text: &str, max: usize) -> Result<()> {
    let count = text.chars().count();
    if count > max {
        return Err(Error::field(
            location,
            field,
            format!("has {count} characters, more than the {max} allowed"),
            format!("at most {max} characters: put long material in a workspace file"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use openloom_core::Step;

    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec::new("n", "/w", "g")
    }

    #[test]
    fn each_limit_is_named_in_its_error() {
        let mut many = spec();
        many.steps = (0..40_000).map(|i| Step::new(format!("s{i}"))).collect();
        let error = check_spec_limits(&many, "<input>").expect_err("40,000 steps").to_string();
        assert!(error.contains("steps: has 40000 steps, more than the 200 allowed"), "{error}");
        assert!(error.contains("split the work"), "{error}");

        let mut long_name = spec();
        long_name.name = "x".repeat(MAX_NAME_CHARS + 1);
        let error = check_spec_limits(&long_name, "<input>").expect_err("long name").to_string();
        assert!(error.contains("name: has 201 characters"), "{error}");

        let mut criteria = spec();
        criteria.acceptance = vec!["ok".to_owned(); MAX_CRITERIA + 1];
        let error = check_spec_limits(&criteria, "<input>").expect_err("criteria").to_string();
        assert!(error.contains("acceptance: has 101 criteria"), "{error}");

        let mut title = spec();
        title.steps = vec![Step::new("t".repeat(MAX_LINE_CHARS + 1))];
        let error = check_spec_limits(&title, "<input>").expect_err("title").to_string();
        assert!(error.contains("steps[0].title"), "{error}");
    }

    #[test]
    fn specs_at_the_limits_pass() {
        let mut full = spec();
        full.steps = (0..MAX_STEPS).map(|i| Step::new(format!("step {i}"))).collect();
        full.acceptance = vec!["criterion".to_owned(); MAX_CRITERIA];
        full.name = "n".repeat(MAX_NAME_CHARS);
        assert!(check_spec_limits(&full, "<input>").is_ok());
    }

    #[test]
    fn large_text_is_refused_before_parsing() {
        let location = Location::new("<input>");
        assert!(check_text_size(&"x".repeat(MAX_SPEC_BYTES), &location).is_ok());
        let error = check_text_size(&"x".repeat(MAX_SPEC_BYTES + 1), &location)
            .expect_err("too large")
            .to_string();
        assert!(error.contains("more than the 256 KiB"), "{error}");
    }
}
