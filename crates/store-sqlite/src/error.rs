//! The one error type of this crate, and its conversion into the core error.
//!
//! Every variant names the database path, because the first thing a user needs to
//! know when the store fails is *which file*. SQLite's result codes are sorted into
//! the few conditions a user can act on (not a database, cannot open, read-only, disk
//! full, busy, newer schema); the rest keeps sqlx's error as the source.

use std::path::{Path, PathBuf};

use sqlx::error::DatabaseError;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SQLite store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory that should hold the database could not be created.
    #[error("cannot create the directory for the database {}: {source}", path.display())]
    CreateDir {
        /// The database path.
        path: PathBuf,
        /// Why the directory could not be created.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a SQLite database (or its header is corrupt).
    #[error("{} is not a SQLite database (file is not a database or is corrupt)", path.display())]
    NotADatabase {
        /// The database path.
        path: PathBuf,
    },
    /// The database file is damaged.
    #[error("the database {} is corrupt: {message}", path.display())]
    Corrupt {
        /// The database path.
        path: PathBuf,
        /// What was found damaged.
        message: String,
    },
    /// SQLite could not open or create the file (missing or unwritable directory, a
    /// directory in the file's place, ...).
    #[error("cannot open the database {}: {message}", path.display())]
    CannotOpen {
        /// The database path.
        path: PathBuf,
        /// SQLite's reason.
        message: String,
    },
    /// The database or its directory is read-only.
    #[error("the database {} is read-only: {message}", path.display())]
    ReadOnly {
        /// The database path.
        path: PathBuf,
        /// SQLite's reason.
        message: String,
    },
    /// The disk is full, or a file size limit was reached; the write was rolled back.
    #[error("no space left for the database {} (disk full or file size limit): {message}", path.display())]
    DiskFull {
        /// The database path.
        path: PathBuf,
        /// SQLite's reason.
        message: String,
    },
    /// Another process held the write lock for longer than the busy timeout.
    #[error("the database {} stayed locked by another process: {message}", path.display())]
    Busy {
        /// The database path.
        path: PathBuf,
        /// SQLite's reason.
        message: String,
    },
    /// The database was written by a newer OpenLoom; it was left untouched.
    #[error(
        "the database {} has schema version {found}, newer than this OpenLoom knows \
         (up to {known}); upgrade OpenLoom or point OPENLOOM_DATABASE elsewhere \
         (the database was not changed)",
        path.display()
    )]
    NewerSchema {
        /// The database path.
        path: PathBuf,
        /// The newest schema version found in the database.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },
    /// The file is a SQLite database with tables but no migration history: not one
    /// this OpenLoom created (perhaps the Python OpenLoom's, which uses the same
    /// default path). It was left untouched.
    #[error(
        "the database {} was not created by this OpenLoom (it has the tables {} but no \
         migration history; the Python OpenLoom uses the same default path); move it \
         aside or point OPENLOOM_DATABASE elsewhere (the database was not changed)",
        path.display(),
        tables.join(", ")
    )]
    ForeignSchema {
        /// The database path.
        path: PathBuf,
        /// The tables found.
        tables: Vec<String>,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the database {}: {source}", path.display())]
    Migrate {
        /// The database path.
        path: PathBuf,
        /// sqlx's migration error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A stored value could not be decoded (bad JSON, unknown status, bad timestamp).
    #[error("undecodable {what} in the database {}: {message}", path.display())]
    Decode {
        /// The database path.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A task row could not be decoded (bad JSON, unknown status, bad timestamp),
    /// for example after a hand edit or a disk fault. Lists skip such a row (and log
    /// this error) so one bad task does not hide all the others.
    #[error("task {id} in the database {} cannot be read: undecodable {what}: {message}", path.display())]
    UndecodableTask {
        /// The database path.
        path: PathBuf,
        /// The task's id.
        id: String,
        /// Which column.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// Any other database failure.
    #[error("database error on {}: {source}", path.display())]
    Sqlite {
        /// The database path.
        path: PathBuf,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },
}

// Primary SQLite result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_NOTADB: i64 = 26;
// Extended I/O codes that mean "the write did not fit" rather than a broken device.
const SQLITE_IOERR_WRITE: i64 = SQLITE_IOERR | (3 << 8);
const SQLITE_IOERR_FSYNC: i64 = SQLITE_IOERR | (4 << 8);
const SQLITE_IOERR_TRUNCATE: i64 = SQLITE_IOERR | (6 << 8);

impl Error {
    /// Sorts a sqlx error on `path` into the variant a user can act on.
    pub(crate) fn classify(path: &Path, source: sqlx::Error) -> Self {
        let path = path.to_path_buf();
        let Some(db) = source.as_database_error() else {
            return Error::Sqlite { path, source };
        };
        let message = db.message().to_owned();
        let code = sqlite_code(db);
        match code.map(|c| c & 0xff) {
            Some(SQLITE_NOTADB) => Error::NotADatabase { path },
            Some(SQLITE_CORRUPT) => Error::Corrupt { path, message },
            Some(SQLITE_CANTOPEN) => Error::CannotOpen { path, message },
            Some(SQLITE_READONLY) => Error::ReadOnly { path, message },
            Some(SQLITE_FULL) => Error::DiskFull { path, message },
            Some(SQLITE_BUSY) => Error::Busy { path, message },
            // A write past RLIMIT_FSIZE (or a quota) fails with EFBIG/EDQUOT, which
            // SQLite reports as an I/O error; the OS error text tells us more than
            // the code, so we only promote the write-side codes.
            _ if matches!(
                code,
                Some(SQLITE_IOERR_WRITE | SQLITE_IOERR_FSYNC | SQLITE_IOERR_TRUNCATE)
            ) =>
            {
                Error::DiskFull { path, message }
            }
            _ => Error::Sqlite { path, source },
        }
    }

    /// An undecodable stored value.
    pub(crate) fn decode(path: &Path, what: &'static str, message: impl ToString) -> Self {
        Error::Decode { path: path.to_path_buf(), what, message: message.to_string() }
    }
}

fn sqlite_code(db: &dyn DatabaseError) -> Option<i64> {
    db.code().and_then(|code| code.parse().ok())
}

/// Adds the database path to sqlx results.
pub(crate) trait SqlxResultExt<T> {
    /// Classifies the error as an [`Error`] on `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> SqlxResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::classify(path, e))
    }
}

impl From<Error> for openloom_core::Error {
    /// A lock held too long by another process becomes
    /// [`openloom_core::Error::StoreBusy`] (transient: retried later); every other
    /// failure becomes [`openloom_core::Error::Store`]. The message names the file and
    /// the condition, this error stays as the source for logs. The server answers
    /// `Store` with a generic internal error, so SQL never reaches HTTP.
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Busy { .. } => {
                openloom_core::Error::StoreBusy { message, source: Some(Box::new(err)) }
            }
            err => openloom_core::Error::Store { message, source: Some(Box::new(err)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path() {
        let path = PathBuf::from("/data/openloom.sqlite3");
        let errors = [
            Error::NotADatabase { path: path.clone() },
            Error::DiskFull { path: path.clone(), message: "database or disk is full".into() },
            Error::NewerSchema { path: path.clone(), found: 7, known: 1 },
        ];
        for err in errors {
            assert!(err.to_string().contains("/data/openloom.sqlite3"), "{err}");
        }
    }

    #[test]
    fn core_error_is_a_store_error_with_the_message() {
        let err = Error::NewerSchema { path: "/x.db".into(), found: 3, known: 2 };
        let text = err.to_string();
        let core: openloom_core::Error = err.into();
        match core {
            openloom_core::Error::Store { message, source } => {
                assert_eq!(message, text);
                assert!(source.is_some());
            }
            other => panic!("expected a store error, got {other:?}"),
        }
    }
}
