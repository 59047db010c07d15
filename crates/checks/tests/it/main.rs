//! Integration tests for openloom-checks: real processes, real files, real git, in
//! temporary directories.

mod common;
mod files;
mod git;
mod locking;
mod run;
mod verify;
mod verifying;
