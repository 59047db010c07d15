//! Named implementations of checkers, sinks and sources.
//!
//! The reference registers classes under names (`register_checker("string")`) so a
//! configuration can pick them. Here a [`Registry`] holds factories; the binary fills
//! one with the built-in parts and an embedder adds their own. No global state: two
//! harnesses in one process can use different registries.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::check::Checker;
use crate::error::{Error, Result};
use crate::event::Sink;
use crate::source::Source;

/// Options passed to a factory (e.g. `spec_path` for a file source).
pub type Options = BTreeMap<String, String>;

type Factory<T> = Arc<dyn Fn(&Options) -> Result<Arc<T>> + Send + Sync>;

/// Factories of pluggable parts, by name.
#[derive(Clone, Default)]
pub struct Registry {
    checkers: BTreeMap<String, Factory<dyn Checker>>,
    sinks: BTreeMap<String, Factory<dyn Sink>>,
    sources: BTreeMap<String, Factory<dyn Source>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("checkers", &self.checkers.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn build<T: ?Sized>(
    kind: &'static str,
    map: &BTreeMap<String, Factory<T>>,
    name: &str,
    options: &Options,
) -> Result<Arc<T>> {
    match map.get(name) {
        Some(factory) => factory(options),
        None => Err(Error::UnknownName {
            kind,
            name: name.to_owned(),
            available: map.keys().cloned().collect(),
        }),
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a checker factory under `name`, replacing any previous one.
    pub fn register_checker(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&Options) -> Result<Arc<dyn Checker>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.checkers.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers a sink factory under `name`, replacing any previous one.
    pub fn register_sink(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&Options) -> Result<Arc<dyn Sink>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.sinks.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers a source factory under `name`, replacing any previous one.
    pub fn register_source(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&Options) -> Result<Arc<dyn Source>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.sources.insert(name.into(), Arc::new(factory));
        self
    }

    /// Builds the checker registered as `name`.
    pub fn checker(&self, name: &str, options: &Options) -> Result<Arc<dyn Checker>> {
        build("checker", &self.checkers, name, options)
    }

    /// Builds the sink registered as `name`.
    pub fn sink(&self, name: &str, options: &Options) -> Result<Arc<dyn Sink>> {
        build("sink", &self.sinks, name, options)
    }

    /// Builds the source registered as `name`.
    pub fn source(&self, name: &str, options: &Options) -> Result<Arc<dyn Source>> {
        build("source", &self.sources, name, options)
    }

    /// Registered names: (checkers, sinks, sources).
    pub fn names(&self) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
        (
            self.checkers.keys().map(String::as_str).collect(),
            self.sinks.keys().map(String::as_str).collect(),
            self.sources.keys().map(String::as_str).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::check::{CheckContext, CheckResult};

    struct Always;
    #[async_trait]
    impl Checker for Always {
        async fn check(&self, _: CheckContext<'_>) -> Result<CheckResult> {
            Ok(CheckResult { task_complete: true, ..CheckResult::default() })
        }
    }

    #[test]
    fn builds_by_name_and_explains_unknown_names() {
        let mut registry = Registry::new();
        registry.register_checker("always", |_| Ok(Arc::new(Always)));
        assert!(registry.checker("always", &Options::new()).is_ok());
        let err = registry.checker("never", &Options::new()).err().expect("unknown");
        assert_eq!(err.to_string(), "unknown checker \"never\"; available: always");
        assert_eq!(registry.names().0, vec!["always"]);
    }

    #[test]
    fn factories_see_their_options() {
        let mut registry = Registry::new();
        registry.register_checker("needs-path", |options| match options.get("path") {
            Some(_) => Ok(Arc::new(Always) as Arc<dyn Checker>),
            None => Err(Error::Invalid("path is required".into())),
        });
        assert!(registry.checker("needs-path", &Options::new()).is_err());
        let options = Options::from([("path".to_owned(), "x".to_owned())]);
        assert!(registry.checker("needs-path", &options).is_ok());
    }
}
