//! Integration tests of openloom-prompts: behaviour against answers recorded from the
//! Python reference (`tests/fixtures/reference_cases.json`), error reporting, files,
//! and property tests.

mod common;
mod drafting;
mod errors;
mod files;
mod limits;
mod planner;
mod properties;
mod reference;
mod verification;
