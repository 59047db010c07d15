//! Tasks and check-log entries to and from rows.
//!
//! The encoding is the SQLite store's, value for value (fixed-width RFC 3339 text
//! timestamps, JSON text for lists and nested values): the two stores must mean the
//! same by every field, the parity transcript compares them, and `openloom migrate`
//! copies rows between them through these types.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use openloom_core::{
    CheckLogEntry, SpecSummary, StoredLogEntry, Task, TaskId, TaskSpec, TaskStatus,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow};

use crate::error::{Error, Result, Target};

/// The task columns every task query selects, in [`TaskRow`] order.
pub(crate) const TASK_COLUMNS: &str = "id, name, spec_json, workspace, status, current_step, \
     completed_steps_json, idle_checks, progress, check_interval_seconds, session_ids_json, \
     active_session_id, last_check_at, next_check_at, last_summary, error, consecutive_errors, \
     verification_rounds, last_verification_json, last_message_id, created_at, updated_at, revision, \
     pending_requests_json, liveness_json, opencode";

/// `$1, $2, ... $25`: the placeholders for [`TASK_COLUMNS`].
pub(crate) fn task_placeholders() -> String {
    (1..=TASK_COLUMNS.split(',').count()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// A task's columns encoded for binding, in [`TASK_COLUMNS`] order.
pub(crate) struct TaskRow {
    id: String,
    name: String,
    spec_json: String,
    workspace: String,
    status: &'static str,
    current_step: i64,
    completed_steps_json: String,
    idle_checks: i64,
    progress: f64,
    check_interval_seconds: i64,
    session_ids_json: String,
    active_session_id: Option<String>,
    last_check_at: Option<String>,
    next_check_at: Option<String>,
    last_summary: Option<String>,
    error: Option<String>,
    consecutive_errors: i64,
    verification_rounds: i64,
    last_verification_json: Option<String>,
    last_message_id: Option<String>,
    created_at: String,
    updated_at: String,
    revision: i64,
    pending_requests_json: String,
    liveness_json: String,
    opencode: Option<String>,
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

impl TaskRow {
    /// Encodes a task; fails with `Invalid` for values the store cannot hold faithfully.
    pub(crate) fn encode(task: &Task) -> openloom_core::Result<Self> {
        Ok(TaskRow {
            id: task.id.as_str().to_owned(),
            name: task.name.clone(),
            spec_json: json(&task.spec)?,
            workspace: task.workspace.clone(),
            status: task.status.as_str(),
            current_step: int("current_step", task.current_step)?,
            completed_steps_json: json(&task.completed_steps)?,
            idle_checks: i64::from(task.idle_checks),
            progress: task.progress,
            check_interval_seconds: int("check_interval_seconds", task.check_interval_seconds)?,
            session_ids_json: json(&task.session_ids)?,
            active_session_id: task.active_session_id.clone(),
            last_check_at: task.last_check_at.as_ref().map(timestamp).transpose()?,
            next_check_at: task.next_check_at.as_ref().map(timestamp).transpose()?,
            last_summary: task.last_summary.clone(),
            error: task.error.clone(),
            consecutive_errors: i64::from(task.consecutive_errors),
            verification_rounds: i64::from(task.verification_rounds),
            last_verification_json: task.last_verification.as_ref().map(json).transpose()?,
            last_message_id: task.last_message_id.clone(),
            created_at: timestamp(&task.created_at)?,
            updated_at: timestamp(&task.updated_at)?,
            revision: int("revision", task.revision)?,
            pending_requests_json: json(&task.pending_requests)?,
            liveness_json: json(&task.liveness)?,
            opencode: task.opencode.clone(),
        })
    }

    /// Binds every column, in [`TASK_COLUMNS`] order (`$1` is the id).
    pub(crate) fn bind(self, query: Query<'_>) -> Query<'_> {
        query
            .bind(self.id)
            .bind(self.name)
            .bind(self.spec_json)
            .bind(self.workspace)
            .bind(self.status)
            .bind(self.current_step)
            .bind(self.completed_steps_json)
            .bind(self.idle_checks)
            .bind(self.progress)
            .bind(self.check_interval_seconds)
            .bind(self.session_ids_json)
            .bind(self.active_session_id)
            .bind(self.last_check_at)
            .bind(self.next_check_at)
            .bind(self.last_summary)
            .bind(self.error)
            .bind(self.consecutive_errors)
            .bind(self.verification_rounds)
            .bind(self.last_verification_json)
            .bind(self.last_message_id)
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.revision)
            .bind(self.pending_requests_json)
            .bind(self.liveness_json)
            .bind(self.opencode)
    }
}

/// Encodes a timestamp as fixed-width RFC 3339 text (years 0000-9999, like SQLite's).
pub(crate) fn timestamp(at: &DateTime<Utc>) -> openloom_core::Result<String> {
    if !(0..=9999).contains(&at.year()) {
        return Err(openloom_core::Error::Invalid(format!(
            "timestamp {at} is outside the years 0000-9999 the store can keep"
        )));
    }
    Ok(at.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> openloom_core::Result<String> {
    serde_json::to_string(value)
        .map_err(|e| openloom_core::Error::Invalid(format!("cannot encode as JSON: {e}")))
}

fn int<T: TryInto<i64> + Copy + std::fmt::Display>(
    field: &str,
    value: T,
) -> openloom_core::Result<i64> {
    value.try_into().map_err(|_| {
        openloom_core::Error::Invalid(format!("{field} {value} is too large to store"))
    })
}

/// What a task's `spec_json` column is read as: the whole spec, or the summary lists
/// show (read without building the spec, [`SpecSummary::from_spec_json`]).
pub(crate) trait SpecColumn: Sized {
    fn decode(json: &str) -> serde_json::Result<Self>;
}

impl SpecColumn for TaskSpec {
    fn decode(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }
}

impl SpecColumn for SpecSummary {
    fn decode(json: &str) -> serde_json::Result<Self> {
        SpecSummary::from_spec_json(json)
    }
}

/// Reads the columns selected with [`TASK_COLUMNS`] back into a task; a bad value
/// is an [`Error::UndecodableTask`] naming the task.
pub(crate) fn task_from_row<S: SpecColumn>(target: &Target, row: &PgRow) -> Result<Task<S>> {
    let d = Decoder { target, row, next: std::cell::Cell::new(0) };
    let id: String = d.get("id")?;
    decode_task(&d, &id).map_err(|error| match error {
        Error::Decode { target, what, message } => {
            Error::UndecodableTask { target, id, what, message }
        }
        other => other,
    })
}

fn decode_task<S: SpecColumn>(d: &Decoder<'_>, id: &str) -> Result<Task<S>> {
    Ok(Task {
        id: TaskId::from(id),
        name: d.get("name")?,
        spec: d.spec("spec_json")?,
        workspace: d.get("workspace")?,
        status: d.status("status")?,
        current_step: d.unsigned("current_step")?,
        completed_steps: d.list("completed_steps_json")?,
        idle_checks: d.unsigned("idle_checks")?,
        progress: d.get("progress")?,
        check_interval_seconds: d.unsigned("check_interval_seconds")?,
        session_ids: d.list("session_ids_json")?,
        active_session_id: d.get("active_session_id")?,
        last_check_at: d.optional_time("last_check_at")?,
        next_check_at: d.optional_time("next_check_at")?,
        last_summary: d.get("last_summary")?,
        error: d.get("error")?,
        consecutive_errors: d.unsigned("consecutive_errors")?,
        verification_rounds: d.unsigned("verification_rounds")?,
        last_verification: d.optional_json("last_verification_json")?,
        last_message_id: d.get("last_message_id")?,
        created_at: d.time("created_at")?,
        updated_at: d.time("updated_at")?,
        revision: d.unsigned("revision")?,
        pending_requests: d.list("pending_requests_json")?,
        liveness: d.object("liveness_json")?,
        opencode: d.get("opencode")?,
    })
}

/// The check-log columns, in the order [`log_entry_from_row`] reads.
pub(crate) const LOG_COLUMNS: &str =
    "seq, at, status, summary, detail, evidence_json, repeats, last_at";

/// Reads a check-log row selected with [`LOG_COLUMNS`].
pub(crate) fn log_entry_from_row(target: &Target, row: &PgRow) -> Result<StoredLogEntry> {
    let d = Decoder { target, row, next: std::cell::Cell::new(0) };
    Ok(StoredLogEntry {
        seq: d.get("seq")?,
        entry: CheckLogEntry {
            at: d.time("at")?,
            status: d.status("status")?,
            summary: d.get("summary")?,
            detail: d.get("detail")?,
            evidence: d.optional_json("evidence_json")?,
        },
        repeats: d.unsigned("repeats")?,
        last_at: d.optional_time("last_at")?,
    })
}

/// Reads a timestamp column written by [`timestamp`].
pub(crate) fn parse_time(target: &Target, what: &'static str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::decode(target, what, format!("{text:?}: {e}")))
}

/// Reads a row's columns by position, in the order they were selected.
///
/// By position, not by name: a lookup by name hashes the name and searches the row's
/// column map, for every column of every row, which cost more than the two columns
/// schema 3 added (docs/benchmarks.md). Each read takes the next column, so the
/// readers below read in [`TASK_COLUMNS`] / [`LOG_COLUMNS`] order; debug builds (the
/// tests) check every name against the row's own column.
struct Decoder<'a> {
    target: &'a Target,
    row: &'a PgRow,
    next: std::cell::Cell<usize>,
}

impl<'a> Decoder<'a> {
    fn get<T>(&self, column: &'static str) -> Result<T>
    where
        T: sqlx::Decode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let index = self.next.get();
        self.next.set(index + 1);
        debug_assert_eq!(
            self.row.columns().get(index).map(sqlx::Column::name),
            Some(column),
            "columns read out of their selected order"
        );
        self.row.try_get(index).map_err(|e| Error::decode(self.target, column, e))
    }

    fn unsigned<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T> {
        let value: i64 = self.get(column)?;
        T::try_from(value)
            .map_err(|_| Error::decode(self.target, column, format!("{value} out of range")))
    }

    // The readers below borrow text columns (`&str`) rather than copy them into a
    // `String` first: one allocation and copy less per column, the spec's included.

    fn spec<S: SpecColumn>(&self, column: &'static str) -> Result<S> {
        let text: &str = self.get(column)?;
        S::decode(text).map_err(|e| Error::decode(self.target, column, e))
    }

    /// A JSON list column; the empty list, what most rows hold, without the JSON
    /// decoder (the same result, a fraction of the instructions).
    fn list<T: DeserializeOwned>(&self, column: &'static str) -> Result<Vec<T>> {
        let text: &str = self.get(column)?;
        if text == "[]" {
            return Ok(Vec::new());
        }
        serde_json::from_str(text).map_err(|e| Error::decode(self.target, column, e))
    }

    /// A JSON object column whose `{}` (what most rows hold) is the default value,
    /// without the JSON decoder.
    fn object<T: DeserializeOwned + Default>(&self, column: &'static str) -> Result<T> {
        let text: &str = self.get(column)?;
        if text == "{}" {
            return Ok(T::default());
        }
        serde_json::from_str(text).map_err(|e| Error::decode(self.target, column, e))
    }

    fn optional_json<T: DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>> {
        let text: Option<&str> = self.get(column)?;
        text.map(|t| serde_json::from_str(t).map_err(|e| Error::decode(self.target, column, e)))
            .transpose()
    }

    fn status(&self, column: &'static str) -> Result<TaskStatus> {
        let text: &str = self.get(column)?;
        text.parse().map_err(|e| Error::decode(self.target, column, e))
    }

    fn time(&self, column: &'static str) -> Result<DateTime<Utc>> {
        let text: &str = self.get(column)?;
        parse_time(self.target, column, text)
    }

    fn optional_time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>> {
        let text: Option<&str> = self.get(column)?;
        text.map(|t| parse_time(self.target, column, t)).transpose()
    }
}
