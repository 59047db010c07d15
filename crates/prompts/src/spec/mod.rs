//! Spec formats: YAML and Markdown task specs, prompt-only specs, and writing specs
//! back as YAML.
//!
//! Both parsers produce [`openloom_core::TaskSpec`]. YAML is read into a
//! `serde_yaml::Value` first and walked by hand, so every semantic error can name its
//! field path (`steps[1].checks[0].timeout`); YAML syntax errors carry the line and
//! column the YAML parser reported, Markdown errors the line they are on. See
//! [`parse_yaml`] and [`parse_markdown`] for the formats and where they deliberately
//! differ from the reference.

mod checks;
mod emit;
mod expansion;
mod interval;
mod limits;
mod markdown;
mod unattended;
mod value;
mod yaml;

use std::path::Path;

use openloom_core::TaskSpec;
use openloom_core::spec::{DEFAULT_AGENT, DEFAULT_MODE};

pub use checks::CHECK_KINDS;
pub use emit::{DEFAULT_SPEC_FILENAME, default_spec_yaml, spec_to_yaml, write_default_spec};
pub use expansion::{MAX_EXPANDED_BYTES, MAX_FLOW_OPENERS};
pub use limits::{
    MAX_CHECKS, MAX_CRITERIA, MAX_LINE_CHARS, MAX_NAME_CHARS, MAX_SPEC_BYTES, MAX_STEPS,
    MAX_TEXT_CHARS, check_spec_limits,
};
pub use markdown::parse_markdown;
pub use unattended::parse_task_defaults;
pub use yaml::parse_yaml;

use crate::error::{Error, Location, Result};
use crate::pytext::{py_strip, title_from_prompt};

/// The origin used in errors for text that did not come from a file.
pub const INPUT_ORIGIN: &str = "<input>";

/// The two spec formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    /// YAML (the default).
    Yaml,
    /// Markdown with `## Goal`, `## Steps`, ... sections.
    Markdown,
}

impl SpecFormat {
    /// The names [`SpecFormat::from_name`] accepts.
    pub const NAMES: &'static str = "`yaml` (or `yml`) and `markdown` (or `md`)";

    /// Reads a format name (any case, trimmed): `yaml`/`yml` or `markdown`/`md`.
    /// Anything else is refused rather than read as YAML (the reference's choice),
    /// so `format: "toml"` is not silently parsed as something it is not.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Ok(SpecFormat::Yaml),
            "markdown" | "md" => Ok(SpecFormat::Markdown),
            _ => Err(Error::field(
                &Location::new(INPUT_ORIGIN),
                "format",
                format!("is {name:?}, not a spec format"),
                Self::NAMES,
            )),
        }
    }

    /// The format a file's extension implies: `.md` and `.markdown` are Markdown.
    pub fn from_path(path: &Path) -> Self {
        let markdown = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"));
        if markdown { SpecFormat::Markdown } else { SpecFormat::Yaml }
    }
}

/// Parses spec text in the given format; `origin` names it in errors.
pub fn parse_spec(text: &str, format: SpecFormat, origin: &str) -> Result<TaskSpec> {
    match format {
        SpecFormat::Yaml => parse_yaml(text, origin),
        SpecFormat::Markdown => parse_markdown(text, origin),
    }
}

/// Builds a spec from a JSON object with the YAML format's keys (an API body).
pub fn spec_from_json(value: &serde_json::Value, origin: &str) -> Result<TaskSpec> {
    let location = Location::new(origin);
    let yaml: serde_yaml::Value = serde_yaml::to_value(value)?;
    match yaml {
        serde_yaml::Value::Mapping(map) if !map.is_empty() => {
            let spec = yaml::spec_from_mapping(&map, &location)?;
            check_spec_limits(&spec, origin)?;
            Ok(spec)
        }
        serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null => {
            Err(Error::EmptySpec { location, expected: yaml::MINIMAL_SPEC })
        }
        _ => Err(Error::field(&location, "<document>", "is not an object", yaml::MINIMAL_SPEC)),
    }
}

/// Reads a spec file: Markdown for `.md`/`.markdown`, YAML otherwise. The file is
/// read as bytes so that a non-UTF-8 file gets an error saying so, with its position.
pub fn load_spec_file(path: &Path) -> Result<TaskSpec> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        Error::NotUtf8 { path: path.to_owned(), offset, line }
    })?;
    // A UTF-8 byte order mark is valid UTF-8 but not part of the spec.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    parse_spec(text, SpecFormat::from_path(path), &path.display().to_string())
}

/// Options of a prompt-only task ([`task_spec_from_prompt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptOptions {
    /// Seconds between checks; `None` for the default (300 when `watch`, else 0).
    pub check_interval_seconds: Option<u64>,
    /// Keep checking the session after the prompt (a default interval of 300 s).
    pub watch: bool,
    /// Agent to prompt; blank means the default agent.
    pub agent: String,
    /// Mode; blank means the default mode.
    pub mode: String,
    /// Task name; `None` (or blank) derives one from the prompt's first line.
    pub name: Option<String>,
}

impl Default for PromptOptions {
    fn default() -> Self {
        PromptOptions {
            check_interval_seconds: None,
            watch: false,
            agent: DEFAULT_AGENT.to_owned(),
            mode: DEFAULT_MODE.to_owned(),
            name: None,
        }
    }
}

/// Longest derived task name, in characters (the reference's 60).
pub const PROMPT_TITLE_CHARS: usize = 60;

/// A spec that sends `prompt` verbatim: no steps, no acceptance, the prompt as goal.
/// Errors with [`Error::EmptyPrompt`] when the prompt is blank.
pub fn task_spec_from_prompt(
    prompt: &str,
    workspace: &str,
    options: PromptOptions,
) -> Result<TaskSpec> {
    let text = py_strip(prompt);
    if text.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let interval = options.check_interval_seconds.unwrap_or(if options.watch { 300 } else { 0 });
    let name = options
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| title_from_prompt(text, PROMPT_TITLE_CHARS));
    let or_default = |value: &str, default: &str| {
        let value = value.trim();
        if value.is_empty() { default.to_owned() } else { value.to_owned() }
    };
    let mut spec = TaskSpec::new(name, py_strip(workspace), text);
    spec.mode = or_default(&options.mode, DEFAULT_MODE);
    spec.agent = or_default(&options.agent, DEFAULT_AGENT);
    spec.check_interval_seconds = interval;
    spec.initial_prompt = Some(text.to_owned());
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_name_and_extension() {
        assert_eq!(SpecFormat::from_name(" Markdown ").expect("known"), SpecFormat::Markdown);
        assert_eq!(SpecFormat::from_name("md").expect("known"), SpecFormat::Markdown);
        assert_eq!(SpecFormat::from_name("yml").expect("known"), SpecFormat::Yaml);
        assert_eq!(SpecFormat::from_name("YAML").expect("known"), SpecFormat::Yaml);
        let error = SpecFormat::from_name("toml").expect_err("unknown").to_string();
        assert!(error.contains("format: is \"toml\"") && error.contains("markdown"), "{error}");
        assert_eq!(SpecFormat::from_path(Path::new("a/task.MD")), SpecFormat::Markdown);
        assert_eq!(SpecFormat::from_path(Path::new("task.markdown")), SpecFormat::Markdown);
        assert_eq!(SpecFormat::from_path(Path::new("openloom.yaml")), SpecFormat::Yaml);
        assert_eq!(SpecFormat::from_path(Path::new("noext")), SpecFormat::Yaml);
    }

    #[test]
    fn prompt_specs_follow_the_reference() {
        let spec = task_spec_from_prompt("  Fix it\nplease ", " /w ", PromptOptions::default())
            .expect("prompt");
        assert_eq!(spec.name, "Fix it");
        assert_eq!(spec.goal, "Fix it\nplease");
        assert_eq!(spec.workspace, "/w");
        assert_eq!(spec.initial_prompt.as_deref(), Some("Fix it\nplease"));
        assert_eq!(spec.check_interval_seconds, 0);
        assert!(spec.is_one_shot());

        let watched = task_spec_from_prompt(
            "x",
            "/w",
            PromptOptions {
                watch: true,
                agent: " ".into(),
                mode: "fast".into(),
                ..Default::default()
            },
        )
        .expect("prompt");
        assert_eq!(watched.check_interval_seconds, 300);
        assert_eq!(watched.agent, "opencode");
        assert_eq!(watched.mode, "fast");

        let explicit = task_spec_from_prompt(
            "x",
            "/w",
            PromptOptions {
                check_interval_seconds: Some(42),
                watch: true,
                name: Some("Named".into()),
                ..Default::default()
            },
        )
        .expect("prompt");
        assert_eq!(explicit.check_interval_seconds, 42);
        assert_eq!(explicit.name, "Named");

        assert!(matches!(
            task_spec_from_prompt(" \n ", "/w", PromptOptions::default()),
            Err(Error::EmptyPrompt)
        ));
    }

    #[test]
    fn json_bodies_use_the_yaml_rules() {
        let body = serde_json::json!({"name": "n", "goal": "g", "steps": ["a", {"title": "b"}]});
        let spec = spec_from_json(&body, INPUT_ORIGIN).expect("valid body");
        assert_eq!(spec.steps.len(), 2);
        assert!(spec_from_json(&serde_json::json!([1]), INPUT_ORIGIN).is_err());
        assert!(spec_from_json(&serde_json::json!({}), INPUT_ORIGIN).is_err());
    }
}
