//! The console sink: one line per task event, as the reference prints them
//! (CREATED, STARTED, status with progress, COMPLETE, FAILED), coloured only when
//! stdout is a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anstyle::{AnsiColor, Style};
use async_trait::async_trait;
use openloom_core::{Event, EventPayload, Sink, TaskId};

/// `text` safe to print on a terminal: control characters (C0 including newline and
/// tab, DEL, C1) and the invisible bidirectional-override characters are shown
/// escaped (`\x1b`, `\u{202e}`) rather than sent raw. Task names, summaries and check
/// output come from specs, agents and commands: raw, an ESC could rewrite the screen
/// or the window title, a BEL ring, a bidi override disguise a line.
pub fn printable(text: &str) -> String {
    escape(text, false)
}

/// [`printable`], but newlines are kept (for multi-line messages such as errors).
pub fn printable_lines(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> String {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if u32::from(c) < 0x100 {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// Prints task events to stdout.
pub struct ConsoleSink {
    names: Mutex<HashMap<TaskId, String>>,
    colour: bool,
}

impl ConsoleSink {
    /// A sink that colours its output if stdout is a terminal.
    pub fn new() -> Self {
        ConsoleSink { names: Mutex::new(HashMap::new()), colour: std::io::stdout().is_terminal() }
    }

    /// Remembers a task's name (for tasks whose Created event was before we started).
    pub fn name_task(&self, id: &TaskId, name: &str) {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), name.to_owned());
    }

    fn name(&self, id: &TaskId) -> String {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.get(id).cloned().unwrap_or_else(|| short(id.as_str()).to_owned())
    }

    /// The line printed for an event (without colour).
    pub fn line(&self, event: &Event) -> (String, Style) {
        let id = short(event.task_id.as_str());
        match &event.payload {
            EventPayload::Created { name, .. } => {
                self.name_task(&event.task_id, name);
                (format!("[{id}] CREATED  {name}"), Style::new())
            }
            EventPayload::Started { session_id, .. } => (
                format!(
                    "[{id}] STARTED  {}  session={}",
                    self.name(&event.task_id),
                    short(session_id)
                ),
                cyan(),
            ),
            EventPayload::Updated { status, progress, summary, .. } => (
                format!(
                    "[{id}] {status}  {}  p={:.0}%  {summary}",
                    self.name(&event.task_id),
                    progress * 100.0
                ),
                Style::new(),
            ),
            EventPayload::Completed { summary, .. } => {
                (format!("[{id}] COMPLETE  {}  {summary}", self.name(&event.task_id)), green())
            }
            EventPayload::Failed { error } => {
                (format!("[{id}] FAILED   {}  {error}", self.name(&event.task_id)), red())
            }
            EventPayload::LogLine { summary } => {
                (format!("[{id}] LOG      {summary}"), Style::new())
            }
            EventPayload::Deleted => (format!("[{id}] DELETED"), Style::new()),
        }
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn on_event(&self, event: &Event) -> openloom_core::Result<()> {
        let (line, style) = self.line(event);
        let line = printable(&line);
        let mut out = std::io::stdout().lock();
        let written = if self.colour {
            writeln!(out, "{style}{line}{style:#}")
        } else {
            writeln!(out, "{line}")
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| openloom_core::Error::other("console sink", e))
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn green() -> Style {
    Style::new().fg_color(Some(AnsiColor::Green.into())).bold()
}
fn red() -> Style {
    Style::new().fg_color(Some(AnsiColor::Red.into())).bold()
}
fn cyan() -> Style {
    Style::new().fg_color(Some(AnsiColor::Cyan.into()))
}

#[cfg(test)]
mod tests {
    use openloom_core::TaskStatus;

    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text é"), "plain text é");
        assert_eq!(printable("a\u{0}b\u{7}c\u{1b}[2Jd"), "a\\x00b\\x07c\\x1b[2Jd");
        assert_eq!(printable("x\ny\tz\u{7f}\u{9b}"), "x\\x0ay\\x09z\\x7f\\x9b");
        assert_eq!(printable("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(printable_lines("one\ntwo\u{1b}"), "one\ntwo\\x1b");
    }

    #[test]
    fn lines_follow_the_reference_format() {
        let sink = ConsoleSink::new();
        let id = TaskId::from("task_0123456789ab");
        let created = Event::new(
            id.clone(),
            1,
            EventPayload::Created { name: "Fix".into(), workspace: "/w".into() },
        );
        assert_eq!(sink.line(&created).0, "[task_0123456] CREATED  Fix");
        let updated = Event::new(
            id.clone(),
            2,
            EventPayload::Updated {
                status: TaskStatus::Running,
                current_step: 1,
                progress: 0.5,
                summary: "ok".into(),
            },
        );
        assert_eq!(sink.line(&updated).0, "[task_0123456] running  Fix  p=50%  ok");
        let failed = Event::new(id, 3, EventPayload::Failed { error: "boom".into() });
        assert_eq!(sink.line(&failed).0, "[task_0123456] FAILED   Fix  boom");
    }
}
