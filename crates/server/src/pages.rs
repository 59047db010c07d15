//! Task pages read and encoded once per store version, shared by every list the
//! server answers: `GET /api/tasks`, `GET /api/state` and the SSE snapshot.
//!
//! Reading a page (the store's summaries, each turned into its list entry) and
//! encoding it as JSON is most of what those routes cost; dashboards poll them, and
//! between two writes the answer cannot change. So a page is kept, keyed by its query,
//! while the store version is the one it was read at: a hit is exactly what a fresh
//! read would give.
//!
//! One part of an entry is not task data and bumps no version: `driven_by`, the worker
//! whose claim a task is under (claims renew every few seconds). It is read from the
//! store on every request (one small query by id) and the encoding is redone when it
//! differs from the one the cached encoding was made with, so a takeover shows at
//! once, not at the next write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openloom_core::{StoreVersion, TaskId, TaskQuery};
use serde_json::Value;
use serde_json::value::RawValue;

/// Who drives which task (a worker's name by task id).
type Drivers = HashMap<TaskId, String>;

/// A page's entries as the store gave them, before `driven_by` is added.
#[derive(Debug)]
pub(crate) struct Page {
    /// The list entries (`routes::tasks::list_entry`), newest first.
    pub entries: Vec<Value>,
    /// Their ids, in the same order.
    pub ids: Vec<TaskId>,
    /// The cursor of the next page, if there is one.
    pub next: Option<TaskId>,
    /// The entries encoded with `driven_by`, and the drivers they were encoded with.
    encoded: Mutex<Option<(Drivers, Arc<RawValue>)>>,
}

impl Page {
    /// A page of `entries` (with their `ids`) and the cursor after it.
    pub fn new(entries: Vec<Value>, ids: Vec<TaskId>, next: Option<TaskId>) -> Self {
        Page { entries, ids, next, encoded: Mutex::new(None) }
    }

    /// The entries as one JSON array, each with `driven_by` from `drivers`; encoded
    /// again only when `drivers` differ from the last encoding's.
    pub fn encoded(&self, drivers: Drivers) -> Result<Arc<RawValue>, serde_json::Error> {
        let mut encoded = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_with, json)) = encoded.as_ref()
            && *made_with == drivers
        {
            return Ok(Arc::clone(json));
        }
        let json: Arc<RawValue> = Arc::from(serde_json::value::to_raw_value(&WithDrivers {
            page: self,
            drivers: &drivers,
        })?);
        *encoded = Some((drivers, Arc::clone(&json)));
        Ok(json)
    }
}

/// The entries serialized with `driven_by` inserted, without cloning them.
struct WithDrivers<'a> {
    page: &'a Page,
    drivers: &'a Drivers,
}

impl serde::Serialize for WithDrivers<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Entry<'a>(&'a Value, Option<&'a String>);
        impl serde::Serialize for Entry<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let Value::Object(fields) = self.0 else { return self.0.serialize(serializer) };
                let mut map = serializer.serialize_map(Some(fields.len() + 1))?;
                for (key, value) in fields.iter().filter(|(key, _)| key.as_str() != "driven_by") {
                    map.serialize_entry(key, value)?;
                }
                map.serialize_entry("driven_by", &self.1)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.page.entries.len()))?;
        for (entry, id) in self.page.entries.iter().zip(&self.page.ids) {
            seq.serialize_element(&Entry(entry, self.drivers.get(id)))?;
        }
        seq.end()
    }
}

/// Pages by query, valid while the store version is the one they were read at.
#[derive(Debug, Default)]
pub(crate) struct PageCache {
    pages: Mutex<HashMap<String, (StoreVersion, Arc<Page>)>>,
}

impl PageCache {
    /// Most distinct queries kept; past that the cache starts over.
    const CAPACITY: usize = 64;
    /// Largest page kept, in tasks (a page of 500 is read afresh every time).
    const MAX_TASKS: usize = 200;

    /// The key of a query (every field that changes the page).
    pub fn key(query: &TaskQuery) -> String {
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        format!(
            "{}|{:?}|{}",
            query.limit,
            query.before.as_ref().map(TaskId::as_str),
            statuses.join(",")
        )
    }

    /// The page kept for `key` at `version`, if there is one.
    pub fn get(&self, key: &str, version: StoreVersion) -> Option<Arc<Page>> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages.get(key).filter(|(at, _)| *at == version).map(|(_, page)| Arc::clone(page))
    }

    /// Keeps `page` for `key` at `version`.
    pub fn put(&self, key: String, version: StoreVersion, page: Arc<Page>) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        // Only the newest version's pages can be served again.
        pages.retain(|_, (at, _)| *at == version);
        if page.entries.len() > Self::MAX_TASKS {
            return;
        }
        if pages.len() >= Self::CAPACITY && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(key, (version, page));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openloom_core::TaskStatus;
    use serde_json::json;

    fn page() -> Page {
        Page::new(
            vec![json!({ "id": "a", "driven_by": "stale" }), json!({ "id": "b" })],
            vec![TaskId::from("a"), TaskId::from("b")],
            None,
        )
    }

    #[test]
    fn drivers_are_inserted_and_a_change_of_driver_re_encodes() {
        let page = page();
        let first =
            page.encoded(Drivers::from([(TaskId::from("a"), "w1".to_owned())])).expect("encodes");
        assert_eq!(
            serde_json::from_str::<Value>(first.get()).expect("valid JSON"),
            json!([{ "id": "a", "driven_by": "w1" }, { "id": "b", "driven_by": null }])
        );
        let same =
            page.encoded(Drivers::from([(TaskId::from("a"), "w1".to_owned())])).expect("encodes");
        assert!(Arc::ptr_eq(&first, &same), "the same drivers reuse the encoding");
        let moved =
            page.encoded(Drivers::from([(TaskId::from("a"), "w2".to_owned())])).expect("encodes");
        assert_eq!(
            serde_json::from_str::<Value>(moved.get()).expect("valid JSON")[0]["driven_by"],
            json!("w2")
        );
    }

    #[test]
    fn a_page_is_served_only_at_the_version_it_was_read_at() {
        let cache = PageCache::default();
        let key = PageCache::key(&TaskQuery::newest(50));
        cache.put(key.clone(), 7, Arc::new(page()));
        assert!(cache.get(&key, 7).is_some());
        assert!(cache.get(&key, 8).is_none());
        cache.put(PageCache::key(&TaskQuery::newest(10)), 8, Arc::new(page()));
        assert!(cache.get(&key, 7).is_none(), "older versions' pages are dropped");
    }

    #[test]
    fn queries_differing_in_any_field_have_different_keys() {
        let newest = TaskQuery::newest(50);
        let filtered = TaskQuery { statuses: vec![TaskStatus::Running], ..TaskQuery::newest(50) };
        let older = TaskQuery { before: Some(TaskId::from("x")), ..TaskQuery::newest(50) };
        let keys = [newest, filtered, older, TaskQuery::newest(10)].map(|q| PageCache::key(&q));
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
