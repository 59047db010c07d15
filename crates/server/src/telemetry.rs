//! Token usage and cost for today, this week, this month and in total: a port of the
//! reference's `runtime/telemetry.py`.
//!
//! The reference summed the totals OpenCode keeps on each session and put a whole
//! session in a period by its last update, so a session active for a month counted
//! entirely in "today". We sum the assistant messages instead (the session monitor
//! reads them) and put each message in the period it was written in. Periods start
//! at midnight in the server's local time zone, the week on Monday, as in the reference
//! (a server usually runs where its user is; in a container that is often UTC).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Local, TimeZone, Utc};
use openloom_core::{AgentMessage, Session, TokenUsage};
use serde::Serialize;

/// The model name used when a message does not say which model wrote it.
pub const UNKNOWN_MODEL: &str = "Unknown";

/// Rows in a period's `topSessions`.
const TOP_SESSIONS: usize = 12;

/// What one assistant message cost.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageItem {
    /// When the message was written.
    pub at: DateTime<Utc>,
    /// `provider/model`, or [`UNKNOWN_MODEL`].
    pub model: String,
    /// Tokens used.
    pub tokens: TokenUsage,
    /// Cost in dollars.
    pub cost: f64,
}

/// A session and the usage of its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUsage {
    /// The session.
    pub session: Session,
    /// Usage per assistant message, in any order.
    pub items: Vec<UsageItem>,
}

/// The usage item of one message of `session`: `None` unless it is an assistant
/// message with tokens or cost.
pub fn usage_item(session: &Session, message: &AgentMessage) -> Option<UsageItem> {
    if !message.is_assistant() {
        return None;
    }
    let tokens = message.tokens.unwrap_or_default();
    let cost = message.cost.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0);
    if token_total(&tokens) == 0 && cost == 0.0 {
        return None;
    }
    let at = message.completed_at.or(message.created_at).or(session.updated_at)?;
    let model = message.model.clone().filter(|s| !s.trim().is_empty());
    Some(UsageItem { at, model: model.unwrap_or_else(|| UNKNOWN_MODEL.to_owned()), tokens, cost })
}

/// Token counts by kind, as the dashboard shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenTotals {
    /// Prompt tokens (not read from cache).
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Prompt tokens read from the provider's cache.
    pub cache_read: u64,
    /// Tokens written to the provider's cache.
    pub cache_write: u64,
}

// Token counts come from OpenCode: sums saturate rather than overflow, so absurd
// numbers from a buggy or hostile server cannot panic the monitor.
impl TokenTotals {
    fn add(&mut self, tokens: &TokenUsage) {
        self.input = self.input.saturating_add(tokens.input);
        self.output = self.output.saturating_add(tokens.output);
        self.reasoning = self.reasoning.saturating_add(tokens.reasoning);
        self.cache_read = self.cache_read.saturating_add(tokens.cache_read);
        self.cache_write = self.cache_write.saturating_add(tokens.cache_write);
    }

    fn add_totals(&mut self, other: &TokenTotals) {
        self.add(&TokenUsage {
            input: other.input,
            output: other.output,
            reasoning: other.reasoning,
            cache_read: other.cache_read,
            cache_write: other.cache_write,
        });
    }

    /// All kinds together.
    pub fn total(&self) -> u64 {
        [self.output, self.reasoning, self.cache_read, self.cache_write]
            .into_iter()
            .fold(self.input, u64::saturating_add)
    }
}

fn token_total(tokens: &TokenUsage) -> u64 {
    let mut totals = TokenTotals::default();
    totals.add(tokens);
    totals.total()
}

/// Usage of one model in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    /// Provider id (before the `/`).
    #[serde(rename = "providerID")]
    pub provider_id: String,
    /// Model id (after the `/`).
    #[serde(rename = "modelID")]
    pub model_id: String,
    /// `provider/model`.
    pub model: String,
    /// Dollars.
    pub cost: f64,
    /// Sessions that used it in the period.
    pub session_count: u64,
    /// Tokens by kind.
    pub tokens: TokenTotals,
    /// All tokens.
    pub total_tokens: u64,
}

/// Usage of one session in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionUsageRow {
    /// Session id.
    pub id: String,
    /// Title (the id when untitled).
    pub title: String,
    /// Working directory.
    pub directory: String,
    /// Dollars.
    pub cost: f64,
    /// Tokens by kind.
    pub tokens: TokenTotals,
    /// All tokens.
    pub total_tokens: u64,
    /// The model that wrote most of its tokens in the period.
    pub model: String,
    /// Last update of the session.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Usage in one period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodUsage {
    /// Dollars.
    pub total_cost: f64,
    /// Tokens by kind.
    pub total_tokens: TokenTotals,
    /// All tokens.
    pub token_total: u64,
    /// Sessions updated in the period.
    pub session_count: u64,
    /// Sessions with usage in the period.
    pub sessions_with_usage: u64,
    /// Cache reads over all prompt tokens (cache reads plus fresh input), 0–1.
    pub cache_efficiency: f64,
    /// Per model, most expensive first.
    pub by_model: Vec<ModelUsage>,
    /// The sessions that used the most tokens.
    pub top_sessions: Vec<SessionUsageRow>,
}

/// The four periods the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsagePeriods {
    /// Since local midnight.
    pub today: PeriodUsage,
    /// Since Monday, local midnight.
    pub week: PeriodUsage,
    /// Since the first of the month, local midnight.
    pub month: PeriodUsage,
    /// Everything known.
    pub total: PeriodUsage,
}

/// Usage by period, as `/api/state` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageReport {
    /// The periods.
    pub periods: UsagePeriods,
    /// When it was computed.
    pub now: Option<DateTime<Utc>>,
}

/// Local midnight today, last Monday and the first of the month, as UTC instants.
pub fn period_starts<Tz: TimeZone>(now: &DateTime<Tz>) -> [DateTime<Utc>; 3] {
    let tz = now.timezone();
    let today = now.date_naive();
    // The day starts at the first local time of that date: midnight, or where a DST
    // change skips midnight (clocks jump 00:00 → 01:00), the first minute after the gap.
    let midnight = |date: chrono::NaiveDate| -> DateTime<Utc> {
        let naive = date.and_time(chrono::NaiveTime::MIN);
        (0..=24 * 60)
            .find_map(|minute| {
                tz.from_local_datetime(&(naive + chrono::Duration::minutes(minute))).earliest()
            })
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc())
    };
    let week = today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
    let month = today.with_day(1).unwrap_or(today);
    [midnight(today), midnight(week), midnight(month)]
}

/// Usage for today, this week, this month and in total, in local time.
pub fn usage_report(sessions: &[SessionUsage], now: DateTime<Utc>) -> UsageReport {
    let [today, week, month] = period_starts(&now.with_timezone(&Local));
    UsageReport {
        periods: UsagePeriods {
            today: period_usage(sessions, Some(today)),
            week: period_usage(sessions, Some(week)),
            month: period_usage(sessions, Some(month)),
            total: period_usage(sessions, None),
        },
        now: Some(now),
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let factor = 10f64.powi(digits);
    (value * factor).round() / factor
}

/// Usage of the items at or after `since` (`None`: all of them).
pub fn period_usage(sessions: &[SessionUsage], since: Option<DateTime<Utc>>) -> PeriodUsage {
    let mut out = PeriodUsage::default();
    let mut models: HashMap<String, (ModelUsage, Vec<String>)> = HashMap::new();
    let mut rows = Vec::new();
    for usage in sessions {
        let session = &usage.session;
        let updated = session.updated_at.or(session.created_at);
        if since.is_none_or(|since| updated.is_some_and(|u| u >= since)) {
            out.session_count += 1;
        }
        let mut tokens = TokenTotals::default();
        let mut cost = 0.0;
        let mut by_model: HashMap<&str, u64> = HashMap::new();
        for item in usage.items.iter().filter(|i| since.is_none_or(|since| i.at >= since)) {
            tokens.add(&item.tokens);
            cost += item.cost;
            let written = by_model.entry(&item.model).or_default();
            *written = written.saturating_add(token_total(&item.tokens));
            let (bucket, seen) = models.entry(item.model.clone()).or_insert_with(|| {
                let (provider_id, model_id) = match item.model.split_once('/') {
                    Some((p, m)) => (p.to_owned(), m.to_owned()),
                    None => (String::new(), item.model.clone()),
                };
                let bucket = ModelUsage {
                    provider_id,
                    model_id,
                    model: item.model.clone(),
                    cost: 0.0,
                    session_count: 0,
                    tokens: TokenTotals::default(),
                    total_tokens: 0,
                };
                (bucket, Vec::new())
            });
            bucket.cost += item.cost;
            bucket.tokens.add(&item.tokens);
            if !seen.contains(&session.id) {
                seen.push(session.id.clone());
                bucket.session_count += 1;
            }
        }
        if tokens.total() == 0 && cost == 0.0 {
            continue;
        }
        out.sessions_with_usage += 1;
        out.total_cost += cost;
        out.total_tokens.add_totals(&tokens);
        let model = by_model
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(m, _)| m.to_owned())
            .unwrap_or_else(|| UNKNOWN_MODEL.to_owned());
        rows.push(SessionUsageRow {
            id: session.id.clone(),
            title: if session.title.is_empty() {
                session.id.clone()
            } else {
                session.title.clone()
            },
            directory: session.directory.clone(),
            cost: round(cost, 6),
            tokens,
            total_tokens: tokens.total(),
            model,
            updated_at: updated,
        });
    }
    finish(out, models.into_values().map(|(bucket, _)| bucket).collect(), rows)
}

/// A period's usage from its summed totals, models and session rows: the derived
/// figures (rounded cost, token total, cache efficiency), models most expensive
/// first and the top sessions.
fn finish(
    mut out: PeriodUsage,
    mut by_model: Vec<ModelUsage>,
    mut rows: Vec<SessionUsageRow>,
) -> PeriodUsage {
    out.total_cost = round(out.total_cost, 6);
    out.token_total = out.total_tokens.total();
    let prompt = out.total_tokens.cache_read.saturating_add(out.total_tokens.input);
    out.cache_efficiency =
        if prompt > 0 { round(out.total_tokens.cache_read as f64 / prompt as f64, 4) } else { 0.0 };
    for bucket in &mut by_model {
        bucket.cost = round(bucket.cost, 6);
        bucket.total_tokens = bucket.tokens.total();
    }
    by_model.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then_with(|| b.total_tokens.cmp(&a.total_tokens))
            .then_with(|| a.model.cmp(&b.model))
    });
    rows.sort_by(|a, b| {
        b.total_tokens.cmp(&a.total_tokens).then_with(|| b.cost.total_cmp(&a.cost))
    });
    rows.truncate(TOP_SESSIONS);
    out.by_model = by_model;
    out.top_sessions = rows;
    out
}

/// The usage of several OpenCode servers' sessions (no session in two of them) as
/// one period: sums, models merged by name, the top sessions of them all.
fn merge_periods<'a>(parts: impl Iterator<Item = &'a PeriodUsage>) -> PeriodUsage {
    let mut out = PeriodUsage::default();
    let mut models: Vec<ModelUsage> = Vec::new();
    let mut rows = Vec::new();
    for part in parts {
        out.total_cost += part.total_cost;
        out.total_tokens.add_totals(&part.total_tokens);
        out.session_count = out.session_count.saturating_add(part.session_count);
        out.sessions_with_usage = out.sessions_with_usage.saturating_add(part.sessions_with_usage);
        for model in &part.by_model {
            match models.iter_mut().find(|m| m.model == model.model) {
                Some(bucket) => {
                    bucket.cost += model.cost;
                    bucket.session_count = bucket.session_count.saturating_add(model.session_count);
                    bucket.tokens.add_totals(&model.tokens);
                }
                None => models.push(model.clone()),
            }
        }
        rows.extend(part.top_sessions.iter().cloned());
    }
    finish(out, models, rows)
}

impl UsageReport {
    /// Several servers' reports as one ([`crate::MonitorSnapshot::merged`]); `now`
    /// is the first's.
    pub fn merged(reports: &[&UsageReport]) -> UsageReport {
        let period = |pick: fn(&UsagePeriods) -> &PeriodUsage| {
            merge_periods(reports.iter().map(|report| pick(&report.periods)))
        };
        UsageReport {
            periods: UsagePeriods {
                today: period(|p| &p.today),
                week: period(|p| &p.week),
                month: period(|p| &p.month),
                total: period(|p| &p.total),
            },
            now: reports.first().and_then(|report| report.now),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, FixedOffset, LocalResult};

    use super::*;

    fn session(id: &str, updated: DateTime<Utc>) -> Session {
        Session {
            id: id.into(),
            directory: "/w".into(),
            title: format!("title {id}"),
            parent_id: None,
            created_at: Some(updated),
            updated_at: Some(updated),
            archived_at: None,
        }
    }

    fn item(at: DateTime<Utc>, model: &str, input: u64, cache_read: u64, cost: f64) -> UsageItem {
        UsageItem {
            at,
            model: model.into(),
            tokens: TokenUsage { input, output: 10, reasoning: 0, cache_read, cache_write: 0 },
            cost,
        }
    }

    #[test]
    fn periods_start_at_local_midnight_monday_and_the_first() {
        let tz = FixedOffset::east_opt(2 * 3600).expect("offset");
        // Thursday 2025-05-15 10:30 at +02:00.
        let now = tz.with_ymd_and_hms(2025, 5, 15, 10, 30, 0).single().expect("time");
        let [today, week, month] = period_starts(&now);
        assert_eq!(today.to_rfc3339(), "2025-05-14T22:00:00+00:00");
        assert_eq!(week.to_rfc3339(), "2025-05-11T22:00:00+00:00");
        assert_eq!(month.to_rfc3339(), "2025-04-30T22:00:00+00:00");
    }

    /// A zone whose clocks jump from 00:00 to 01:00 on 2025-11-02 (UTC-3, then UTC-2),
    /// as some zones' DST changes did.
    #[derive(Debug, Clone, Copy)]
    struct SkipsMidnight;

    impl SkipsMidnight {
        fn change() -> chrono::NaiveDateTime {
            chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
                .and_then(|d| d.and_hms_opt(3, 0, 0))
                .expect("valid instant")
        }
        fn offset(hours: i32) -> FixedOffset {
            FixedOffset::west_opt(hours * 3600).expect("offset")
        }
    }

    impl TimeZone for SkipsMidnight {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            SkipsMidnight
        }
        fn offset_from_local_date(&self, _: &chrono::NaiveDate) -> LocalResult<FixedOffset> {
            LocalResult::None
        }
        fn offset_from_local_datetime(
            &self,
            local: &chrono::NaiveDateTime,
        ) -> LocalResult<FixedOffset> {
            // Local wall times: before 00:00 on the day of change UTC-3; from 01:00 UTC-2.
            let change_local = Self::change() - Duration::hours(3);
            if *local < change_local {
                LocalResult::Single(Self::offset(3))
            } else if *local < change_local + Duration::hours(1) {
                LocalResult::None
            } else {
                LocalResult::Single(Self::offset(2))
            }
        }
        fn offset_from_utc_date(&self, _: &chrono::NaiveDate) -> FixedOffset {
            Self::offset(3)
        }
        fn offset_from_utc_datetime(&self, utc: &chrono::NaiveDateTime) -> FixedOffset {
            if *utc < Self::change() { Self::offset(3) } else { Self::offset(2) }
        }
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_after_the_gap() {
        let noon = SkipsMidnight
            .from_local_datetime(
                &chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
                    .expect("valid"),
            )
            .single()
            .expect("noon exists");
        let [today, ..] = period_starts(&noon);
        // 01:00 at UTC-2, the first local time of that day.
        assert_eq!(today.to_rfc3339(), "2025-11-02T03:00:00+00:00");
    }

    #[test]
    fn messages_count_in_the_period_they_were_written() {
        let now = Utc::now();
        let old = now - Duration::days(40);
        let usage = SessionUsage {
            session: session("ses_a", now),
            items: vec![
                item(old, "prov/big", 1000, 0, 1.0),
                item(now, "prov/small", 100, 300, 0.25),
            ],
        };
        let total = period_usage(std::slice::from_ref(&usage), None);
        assert_eq!(total.total_tokens.input, 1100);
        assert_eq!(total.total_cost, 1.25);
        assert_eq!(total.by_model[0].model, "prov/big");
        assert_eq!(total.by_model[0].provider_id, "prov");
        assert_eq!(total.by_model[0].model_id, "big");

        let recent = period_usage(std::slice::from_ref(&usage), Some(now - Duration::hours(1)));
        assert_eq!(recent.total_tokens.input, 100);
        assert_eq!(recent.total_cost, 0.25);
        assert_eq!(recent.cache_efficiency, 0.75);
        assert_eq!(recent.sessions_with_usage, 1);
        assert_eq!(recent.top_sessions[0].model, "prov/small");
        assert_eq!(recent.top_sessions[0].total_tokens, 100 + 300 + 10);
    }

    #[test]
    fn sessions_without_usage_count_but_are_not_ranked() {
        let now = Utc::now();
        let sessions = vec![
            SessionUsage { session: session("ses_empty", now), items: Vec::new() },
            SessionUsage {
                session: session("ses_busy", now),
                items: vec![item(now, "p/m", 5, 0, 0.0)],
            },
        ];
        let usage = period_usage(&sessions, None);
        assert_eq!(usage.session_count, 2);
        assert_eq!(usage.sessions_with_usage, 1);
        assert_eq!(usage.top_sessions.len(), 1);
        assert_eq!(usage.top_sessions[0].id, "ses_busy");
        assert_eq!(usage.by_model[0].session_count, 1);
    }

    #[test]
    fn only_assistant_messages_with_usage_become_items() {
        let now = Utc::now();
        let s = session("ses_a", now);
        let json = serde_json::json!([
            {"id": "m1", "role": "user", "created_at": now},
            {"id": "m2", "role": "assistant", "created_at": now, "completed_at": now,
             "tokens": {"input": 5, "output": 2, "reasoning": 0, "cache_read": 0, "cache_write": 0},
             "cost": 0.5, "model": "p/m"},
            {"id": "m3", "role": "assistant", "created_at": now}
        ]);
        let messages: Vec<AgentMessage> = serde_json::from_value(json).expect("messages");
        let items: Vec<UsageItem> = messages.iter().filter_map(|m| usage_item(&s, m)).collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].model, "p/m");
        assert_eq!(items[0].cost, 0.5);
    }

    #[test]
    fn absurd_token_counts_saturate_instead_of_panicking() {
        let now = Utc::now();
        let huge = |id: &str| SessionUsage {
            session: session(id, now),
            items: vec![item(now, "p/m", u64::MAX / 2 + 1, u64::MAX, 0.0)],
        };
        let usage = period_usage(&[huge("ses_a"), huge("ses_b")], None);
        assert_eq!(usage.total_tokens.input, u64::MAX);
        assert_eq!(usage.token_total, u64::MAX);
        assert_eq!(usage.by_model[0].total_tokens, u64::MAX);
        assert_eq!(usage.top_sessions[0].total_tokens, u64::MAX);
    }

    #[test]
    fn serializes_with_the_reference_names() {
        let json = serde_json::to_value(usage_report(&[], Utc::now())).expect("json");
        let today = &json["periods"]["today"];
        for key in
            ["totalCost", "totalTokens", "tokenTotal", "cacheEfficiency", "byModel", "topSessions"]
        {
            assert!(today.get(key).is_some(), "{key} missing in {today}");
        }
        assert!(today["totalTokens"].get("cacheRead").is_some());
    }

    #[test]
    fn reports_of_disjoint_sessions_merge_into_the_report_of_them_all() {
        let now = Utc::now();
        let old = now - Duration::days(40);
        let usage =
            |id: &str, updated, items| SessionUsage { session: session(id, updated), items };
        let first = vec![
            usage(
                "ses_a",
                now,
                vec![item(now, "p/m1", 100, 50, 0.5), item(old, "p/m2", 7, 0, 0.25)],
            ),
            usage("ses_b", old, vec![item(old, "p/m1", 300, 0, 1.0)]),
            usage("ses_idle", now, vec![]),
        ];
        let second = vec![
            usage("ses_c", now, vec![item(now, "p/m1", 40, 200, 0.125)]),
            usage("ses_d", now, vec![item(now, "q/m3", 900, 10, 2.0)]),
        ];
        let all: Vec<SessionUsage> = first.iter().chain(&second).cloned().collect();
        let merged =
            UsageReport::merged(&[&usage_report(&first, now), &usage_report(&second, now)]);
        assert_eq!(merged, usage_report(&all, now));
        assert_eq!(merged.periods.total.session_count, 5);
        assert_eq!(merged.periods.total.by_model.len(), 3);
    }
}
