//! `openloom status`: the task table.

use anyhow::{Context, Result};
use openloom_core::TaskQuery;

use super::parts;
use crate::config::Settings;
use crate::console::printable;
use crate::exit;

pub async fn run(settings: &Settings, json: bool, limit: usize) -> Result<u8> {
    let store = parts::store(settings).await?;
    let tasks =
        store.tasks.list_tasks(&TaskQuery::newest(limit)).await.context("could not list tasks")?;
    let ids: Vec<_> = tasks.iter().map(|t| t.id.clone()).collect();
    let drivers = store
        .tasks
        .drivers(&ids, chrono::Utc::now())
        .await
        .context("could not read the task claims")?;
    if json {
        // Each task as stored, with `driven_by`: the worker whose claim it is under.
        let mut values = Vec::with_capacity(tasks.len());
        for task in &tasks {
            let mut value = serde_json::to_value(task).context("could not encode a task")?;
            if let Some(object) = value.as_object_mut() {
                object.insert("driven_by".to_owned(), drivers.get(&task.id).cloned().into());
            }
            values.push(value);
        }
        println!("{}", serde_json::to_string_pretty(&values).context("could not encode tasks")?);
        return Ok(exit::OK);
    }
    if tasks.is_empty() {
        println!("No tasks in {}. Start one with `openloom watch`.", settings.database);
        return Ok(exit::OK);
    }
    let rows: Vec<[String; 6]> = tasks
        .iter()
        .map(|t| {
            [
                printable(t.id.as_str()),
                clip(&t.name, 32),
                t.status.to_string(),
                format!("{:.0}%", t.progress * 100.0),
                drivers.get(&t.id).map_or_else(|| "-".to_owned(), |name| clip(name, 24)),
                clip(t.last_summary.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    print!("{}", table(["ID", "NAME", "STATUS", "PROGRESS", "DRIVEN BY", "LAST SUMMARY"], &rows));
    Ok(exit::OK)
}

/// Left-aligned columns separated by two spaces.
pub fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// At most `max` characters, with an ellipsis when cut; newlines become spaces and
/// other control characters are escaped ([`printable`]).
pub fn clip(text: &str, max: usize) -> String {
    let flat = text.replace(['\n', '\r'], " ");
    if flat.chars().count() <= max {
        return printable(&flat);
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    printable(&cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = [["a".to_owned(), "long value".to_owned()], ["bbb".to_owned(), "x".to_owned()]];
        assert_eq!(table(["K", "V"], &rows), "K    V\na    long value\nbbb  x\n");
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("héllo wörld", 6), "héllo…");
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("bell\u{7}", 10), "bell\\x07");
    }
}
