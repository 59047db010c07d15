//! Integration tests of the sources, on real SQLite files and real directories.

mod common;
mod inbox;
