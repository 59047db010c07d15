//! The console sink: one line per task event, as the reference prints them
//! (CREATED, STARTED, status with progress, COMPLETE, FAILED), coloured only when
//! stdout is a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anstyle::{AnsiColor, Style};
use async_trait::async_trait;
use openloom_core::{Event, EventPayload, Sink, TaskId};

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
