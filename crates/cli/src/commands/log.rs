//! `openloom log TASK_ID_PREFIX`: a task's check log.

use anyhow::{Context, Result};
use openloom_core::{LogQuery, Store, Task};

use super::parts;
use crate::config::Settings;
use crate::console::printable;
use crate::exit::{self, coded};

pub async fn run(settings: &Settings, prefix: &str, json: bool, limit: usize) -> Result<u8> {
    let store = parts::store(settings).await?;
    let task = resolve_prefix(store.tasks.as_ref(), prefix).await?;
    // The log is read oldest first in pages; keep the newest `limit` entries.
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .tasks
            .check_log(&task.id, &LogQuery { after, limit: 500 })
            .await
            .context("could not read the check log")?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        entries.extend(page);
        if entries.len() > limit {
            entries.drain(..entries.len() - limit);
        }
    }
    if json {
        for entry in &entries {
            println!("{}", serde_json::to_string(entry).context("could not encode an entry")?);
        }
        return Ok(exit::OK);
    }
    // Names, summaries and outputs come from specs, agents and commands: escaped.
    println!(
        "{}  {}  [{}]  {}",
        printable(task.id.as_str()),
        printable(&task.name),
        task.status,
        printable(&task.workspace)
    );
    if let Some(error) = &task.error {
        println!("error: {}", printable(error));
    }
    for stored in &entries {
        let entry = &stored.entry;
        println!(
            "{}  {:<9}  {}{}",
            entry.at.format("%Y-%m-%d %H:%M:%S"),
            entry.status.as_str(),
            printable(&entry.summary),
            repeats(stored)
        );
        if let Some(evidence) = &entry.evidence {
            print_evidence(evidence);
        }
    }
    Ok(exit::OK)
}

/// How often an entry was written in a row, when more than once: "  (×600, last 14:02)".
fn repeats(stored: &openloom_core::StoredLogEntry) -> String {
    match stored.last_at {
        Some(last) if stored.repeats > 1 => {
            let format = if last.date_naive() == stored.entry.at.date_naive() {
                "%H:%M"
            } else {
                "%Y-%m-%d %H:%M"
            };
            format!("  (×{}, last {})", stored.repeats, last.format(format))
        }
        _ => String::new(),
    }
}

/// Prints verification evidence: one line per check, with the failing output tail.
fn print_evidence(evidence: &serde_json::Value) {
    let Ok(verification) = serde_json::from_value::<openloom_core::Verification>(evidence.clone())
    else {
        return;
    };
    for outcome in &verification.outcomes {
        let verdict = if outcome.passed {
            "PASS"
        } else if outcome.timed_out {
            "TIMEOUT"
        } else {
            "FAIL"
        };
        println!("    {verdict:<7} {}  ({} ms)", printable(&outcome.label), outcome.duration_ms);
        if !outcome.passed {
            if let Some(error) = &outcome.error {
                println!("            {}", printable(error));
            }
            for line in
                outcome.output_tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev()
            {
                println!("            | {}", printable(line));
            }
        }
    }
}

/// The one task whose id starts with `prefix`; lists the candidates when ambiguous.
pub async fn resolve_prefix(store: &dyn Store, prefix: &str) -> Result<Task> {
    let prefix = prefix.trim();
    if prefix.is_empty() {
        return Err(coded(
            exit::BAD_INPUT,
            "give a task id or a prefix of one (see `openloom status`)",
        ));
    }
    let matches = store.find_by_prefix(prefix, 20).await.context("could not search tasks")?;
    match matches.len() {
        0 => Err(coded(
            exit::NOT_FOUND,
            format!("no task id starts with {prefix:?}; see `openloom status`"),
        )),
        1 => Ok(matches.into_iter().next().expect("one match")),
        _ => {
            let list: Vec<String> = matches
                .iter()
                .map(|t| format!("  {}  {}  [{}]", t.id, printable(&t.name), t.status))
                .collect();
            Err(coded(
                exit::NOT_FOUND,
                format!(
                    "{prefix:?} matches {} tasks; give more of the id:\n{}",
                    matches.len(),
                    list.join("\n")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use openloom_core::{CheckLogEntry, StoredLogEntry, TaskStatus};

    use super::repeats;

    #[test]
    fn repeated_entries_show_their_count_and_last_time() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 4, 2, 0).single().expect("valid");
        let entry = CheckLogEntry::new(at, TaskStatus::Running, "Agent is busy", "busy");
        let once = StoredLogEntry { seq: 1, entry: entry.clone(), repeats: 1, last_at: None };
        assert_eq!(repeats(&once), "");
        let many = StoredLogEntry { repeats: 600, last_at: Some(at + Duration::hours(10)), ..once };
        assert_eq!(repeats(&many), "  (×600, last 14:02)");
        let next_day = StoredLogEntry { last_at: Some(at + Duration::days(1)), ..many };
        assert_eq!(repeats(&next_day), "  (×600, last 2026-01-03 04:02)");
    }
}
