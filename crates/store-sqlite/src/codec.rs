//! How core values are written to and read from SQLite columns.
//!
//! Timestamps are RFC 3339 UTC text with exactly nine fractional digits (`...05.123456789Z`):
//! fixed width makes text order equal time order (the due query compares them), and
//! nine digits keep chrono's nanoseconds, so a task reads back equal to what was
//! written. Years outside 0000–9999 would break the fixed width and are refused.

use std::path::Path;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use openloom_core::{CheckLogEntry, StoredLogEntry, Task, TaskId, TaskStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::{Error, Result};

/// The task columns, in the order [`task_from_row`] and the insert use.
pub(crate) const TASK_COLUMNS: &str = "id, name, spec_json, workspace, status, current_step, \
     completed_steps_json, idle_checks, progress, check_interval_seconds, session_ids_json, \
     active_session_id, last_check_at, next_check_at, last_summary, error, consecutive_errors, \
     verification_rounds, last_verification_json, last_message_id, created_at, updated_at, revision, \
     pending_requests_json, liveness_json, opencode";

/// [`TASK_COLUMNS`] with the spec replaced by its [`SpecSummary`](openloom_core::SpecSummary) as JSON, computed
/// by SQLite: a list never brings a whole spec into the process, only its counts and
/// short fields. The name and goal come as JSON, uncut, and are clipped by the
/// caller ([`SpecSummary::clipped`](openloom_core::SpecSummary::clipped)): SQLite's
/// text functions stop at a NUL character, which a JSON string may hold.
pub(crate) fn summary_columns() -> String {
    const SUMMARY: &str = "json_object(\
           'name', spec_json -> '$.name', \
           'workspace', spec_json -> '$.workspace', \
           'goal', spec_json -> '$.goal', \
           'mode', spec_json -> '$.mode', \
           'agent', spec_json -> '$.agent', \
           'check_interval_seconds', spec_json -> '$.check_interval_seconds', \
           'step_count', coalesce(json_array_length(spec_json, '$.steps'), 0), \
           'check_count', coalesce(json_array_length(spec_json, '$.checks'), 0) \
             + (SELECT count(*) FROM json_each(spec_json, '$.steps') AS step, \
                  json_each(step.value, '$.checks')), \
           'acceptance_count', coalesce(json_array_length(spec_json, '$.acceptance'), 0), \
           'summarised', json('true')) AS spec_json";
    TASK_COLUMNS.replacen("spec_json", SUMMARY, 1)
}

/// A task's columns encoded for binding, in [`TASK_COLUMNS`] order.
pub(crate) struct TaskRow {
    pub id: String,
    pub name: String,
    pub spec_json: String,
    pub workspace: String,
    pub status: &'static str,
    pub current_step: i64,
    pub completed_steps_json: String,
    pub idle_checks: i64,
    pub progress: f64,
    pub check_interval_seconds: i64,
    pub session_ids_json: String,
    pub active_session_id: Option<String>,
    pub last_check_at: Option<String>,
    pub next_check_at: Option<String>,
    pub last_summary: Option<String>,
    pub error: Option<String>,
    pub consecutive_errors: i64,
    pub verification_rounds: i64,
    pub last_verification_json: Option<String>,
    pub last_message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
    pub pending_requests_json: String,
    pub liveness_json: String,
    pub opencode: Option<String>,
}

impl TaskRow {
    /// Encodes a task; fails with `Invalid` for values SQLite cannot hold faithfully.
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

    /// Binds every column, in [`TASK_COLUMNS`] order, to `query`.
    pub(crate) fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
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

/// Encodes a timestamp as fixed-width RFC 3339 text.
pub(crate) fn timestamp(at: &DateTime<Utc>) -> openloom_core::Result<String> {
    if !(0..=9999).contains(&at.year()) {
        return Err(openloom_core::Error::Invalid(format!(
            "timestamp {at} is outside the years 0000-9999 the store can keep"
        )));
    }
    Ok(at.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn json<T: Serialize + ?Sized>(value: &T) -> openloom_core::Result<String> {
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

/// Reads the columns selected with [`TASK_COLUMNS`] back into a task; a bad value
/// is an [`Error::UndecodableTask`] naming the task.
pub(crate) fn task_from_row<S: DeserializeOwned>(path: &Path, row: &SqliteRow) -> Result<Task<S>> {
    let d = Decoder { path, row, next: std::cell::Cell::new(0) };
    let id: String = d.get("id")?;
    decode_task(&d, &id).map_err(|error| match error {
        Error::Decode { path, what, message } => Error::UndecodableTask { path, id, what, message },
        other => other,
    })
}

fn decode_task<S: DeserializeOwned>(d: &Decoder<'_>, id: &str) -> Result<Task<S>> {
    Ok(Task {
        id: TaskId::from(id),
        name: d.get("name")?,
        spec: d.json("spec_json")?,
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
pub(crate) fn log_entry_from_row(path: &Path, row: &SqliteRow) -> Result<StoredLogEntry> {
    let d = Decoder { path, row, next: std::cell::Cell::new(0) };
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
pub(crate) fn parse_time(path: &Path, what: &'static str, text: &str) -> Result<DateTime<Utc>> {
    if let Some(at) = parse_fixed_width(text) {
        return Ok(at);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::decode(path, what, format!("{text:?}: {e}")))
}

/// The exact form [`timestamp`] writes (`2025-01-02T03:04:05.123456789Z`), read
/// without chrono's general RFC 3339 parser, which costs about a thousand instructions
/// a timestamp and a task row has up to four. Anything else (a leap second, an offset,
/// a value written by hand) is `None` and goes to chrono, so the result is the same.
fn parse_fixed_width(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (29, b'Z')];
    if b.len() != 30 || shape.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?
            .iter()
            .try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?;
    let second = num(17, 19)?;
    if second >= 60 {
        return None;
    }
    let time = date.and_hms_nano_opt(num(11, 13)?, num(14, 16)?, second, num(20, 29)?)?;
    Some(time.and_utc())
}

/// Reads a row's columns by position, in the order they were selected.
///
/// By position, not by name: a lookup by name hashes the name and searches the row's
/// column map, for every column of every row, which cost more than the two columns
/// schema 3 added (docs/benchmarks.md). Each read takes the next column, so the
/// readers below read in [`TASK_COLUMNS`] / [`LOG_COLUMNS`] order; debug builds (the
/// tests) check every name against the row's own column.
struct Decoder<'a> {
    path: &'a Path,
    row: &'a SqliteRow,
    next: std::cell::Cell<usize>,
}

impl<'a> Decoder<'a> {
    fn get<T>(&self, column: &'static str) -> Result<T>
    where
        T: sqlx::Decode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        let index = self.next.get();
        self.next.set(index + 1);
        debug_assert_eq!(
            self.row.columns().get(index).map(sqlx::Column::name),
            Some(column),
            "columns read out of their selected order"
        );
        self.row.try_get(index).map_err(|e| Error::decode(self.path, column, e))
    }

    fn unsigned<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T> {
        let value: i64 = self.get(column)?;
        T::try_from(value)
            .map_err(|_| Error::decode(self.path, column, format!("{value} out of range")))
    }

    // The readers below borrow text columns (`&str`) rather than copy them into a
    // `String` first: one allocation and copy less per column, the spec's included.

    fn json<T: DeserializeOwned>(&self, column: &'static str) -> Result<T> {
        let text: &str = self.get(column)?;
        serde_json::from_str(text).map_err(|e| Error::decode(self.path, column, e))
    }

    /// A JSON list column; the empty list, what most rows hold, without the JSON
    /// decoder (the same result, a fraction of the instructions).
    fn list<T: DeserializeOwned>(&self, column: &'static str) -> Result<Vec<T>> {
        let text: &str = self.get(column)?;
        if text == "[]" {
            return Ok(Vec::new());
        }
        serde_json::from_str(text).map_err(|e| Error::decode(self.path, column, e))
    }

    /// A JSON object column whose `{}` (what most rows hold) is the default value,
    /// without the JSON decoder.
    fn object<T: DeserializeOwned + Default>(&self, column: &'static str) -> Result<T> {
        let text: &str = self.get(column)?;
        if text == "{}" {
            return Ok(T::default());
        }
        serde_json::from_str(text).map_err(|e| Error::decode(self.path, column, e))
    }

    fn optional_json<T: DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>> {
        let text: Option<&str> = self.get(column)?;
        text.map(|t| serde_json::from_str(t).map_err(|e| Error::decode(self.path, column, e)))
            .transpose()
    }

    fn status(&self, column: &'static str) -> Result<TaskStatus> {
        let text: &str = self.get(column)?;
        text.parse().map_err(|e| Error::decode(self.path, column, e))
    }

    fn time(&self, column: &'static str) -> Result<DateTime<Utc>> {
        let text: &str = self.get(column)?;
        parse_time(self.path, column, text)
    }

    fn optional_time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>> {
        let text: Option<&str> = self.get(column)?;
        text.map(|t| parse_time(self.path, column, t)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_sort_as_text() {
        let early = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single().expect("valid date");
        let late = early + chrono::Duration::nanoseconds(1);
        let (a, b) = (timestamp(&early).expect("in range"), timestamp(&late).expect("in range"));
        assert_eq!(a, "2025-01-02T03:04:05.000000000Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
        assert_eq!(parse_time(Path::new("x"), "at", &b).expect("parses"), late);
    }

    #[test]
    fn the_fixed_width_reader_agrees_with_chrono() {
        let cases = [
            "2025-01-02T03:04:05.000000000Z",
            "2025-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00.000000001Z",
            "9999-12-31T23:59:59.123456789Z",
            "2024-02-29T12:00:00.500000000Z",
            // Not in the fixed form, or not a time: chrono decides, as before.
            "2025-02-29T12:00:00.000000000Z",
            "2025-01-02T24:00:00.000000000Z",
            "2016-12-31T23:59:60.000000000Z",
            "2025-01-02T03:04:05.123Z",
            "2025-01-02T03:04:05.000000000+00:00",
            "2025-01-02 03:04:05.000000000Z",
            "2025-01-02T03:04:05.00000000xZ",
            "+025-01-02T03:04:05.000000000Z",
            "",
        ];
        for text in cases {
            let chrono = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).ok();
            if let Some(fast) = parse_fixed_width(text) {
                assert_eq!(Some(fast), chrono, "{text}");
            }
            assert_eq!(parse_time(Path::new("x"), "at", text).ok(), chrono, "{text}");
        }
        // The fast path is taken for what the store writes.
        let now = Utc::now();
        assert_eq!(parse_fixed_width(&timestamp(&now).expect("in range")), Some(now));
    }

    #[test]
    fn out_of_range_years_are_refused() {
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).single().expect("valid date");
        assert!(matches!(timestamp(&far), Err(openloom_core::Error::Invalid(_))));
    }
}
