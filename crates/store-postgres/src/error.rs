//! The one error type of this crate, and its conversion into the core error.
//!
//! Every variant names the database as `user@host:port/database` ([`Target`]) and
//! never its password: connection strings carry secrets, and these messages reach
//! logs, `openloom doctor` and terminals. PostgreSQL's SQLSTATE codes are sorted into
//! the few conditions a user or the harness acts on (cannot connect, refused login,
//! no such database, busy, newer schema); the rest keeps sqlx's error as the source.

use std::fmt;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database an error is about: everything in the URL but the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The login role.
    pub user: String,
    /// The host name, address or socket directory.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The database name.
    pub database: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

/// Everything that can go wrong in the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string does not parse.
    #[error(
        "OPENLOOM_DATABASE is not a valid PostgreSQL URL ({message}); write it as \
         postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    InvalidUrl {
        /// What is wrong with it (never the URL itself, which may hold a password).
        message: String,
    },
    /// The server could not be reached, refused the login, or has no such database.
    #[error("cannot connect to the PostgreSQL database {target}: {reason}; {hint}")]
    Connect {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// What the server or the network said, with any password removed.
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The server was reachable before but is not now (network, restart, pool
    /// exhausted). Transient: the harness retries.
    #[error("the PostgreSQL database {target} is unreachable: {reason}")]
    Unavailable {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// What failed.
        reason: String,
    },
    /// A lock stayed held past `lock_timeout`, or the server aborted the transaction
    /// on a deadlock or serialization conflict with another worker. Transient.
    #[error("the PostgreSQL database {target} is busy (another worker holds a lock): {message}")]
    Busy {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// The server's reason.
        message: String,
    },
    /// The database was migrated by a newer OpenLoom; it was left untouched.
    #[error(
        "the PostgreSQL database {target} has schema version {found}, newer than this \
         OpenLoom knows (up to {known}); upgrade OpenLoom on every worker or point \
         OPENLOOM_DATABASE elsewhere (the database was not changed)"
    )]
    NewerSchema {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// The newest schema version found.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },
    /// The database has tables but no migration history: not one this OpenLoom
    /// created. It was left untouched.
    #[error(
        "the PostgreSQL database {target} was not created by OpenLoom (it has the tables \
         {} but no migration history); give OpenLoom a database of its own \
         (createdb openloom) (the database was not changed)",
        tables.join(", ")
    )]
    ForeignSchema {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// The tables found.
        tables: Vec<String>,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the PostgreSQL database {target}: {source}")]
    Migrate {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// sqlx's migration error (boxed: it is large, and rare).
        #[source]
        source: Box<sqlx::migrate::MigrateError>,
    },
    /// A stored value could not be decoded (bad JSON, unknown status, bad timestamp).
    #[error("undecodable {what} in the PostgreSQL database {target}: {message}")]
    Decode {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// Which value.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A task row could not be decoded; lists skip it (and log this error).
    #[error(
        "task {id} in the PostgreSQL database {target} cannot be read: undecodable {what}: {message}"
    )]
    UndecodableTask {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// The task's id.
        id: String,
        /// Which column.
        what: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// Any other database failure.
    #[error("database error on {target}: {source}")]
    Postgres {
        /// Which database (boxed: keeps every `Result` of this crate small).
        target: Box<Target>,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },
}

// SQLSTATE codes (PostgreSQL's appendix A) for the conditions we sort out.
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";
const LOCK_NOT_AVAILABLE: &str = "55P03";
const QUERY_CANCELED: &str = "57014";
const ADMIN_SHUTDOWN: &str = "57P01";
const CANNOT_CONNECT_NOW: &str = "57P03";
const INVALID_PASSWORD: &str = "28P01";
const INVALID_AUTHORIZATION: &str = "28000";
const INVALID_CATALOG_NAME: &str = "3D000";
const TOO_MANY_CONNECTIONS: &str = "53300";
/// A unique constraint refused a row.
pub(crate) const UNIQUE_VIOLATION: &str = "23505";

impl Error {
    /// Sorts an error of a query (on an established pool) into the variant the
    /// harness acts on.
    pub(crate) fn classify(target: &Target, source: sqlx::Error) -> Self {
        let target = Box::new(target.clone());
        match &source {
            sqlx::Error::Io(e) => return Error::Unavailable { target, reason: e.to_string() },
            sqlx::Error::PoolTimedOut => {
                return Error::Unavailable {
                    target,
                    reason: "no connection became free in time (pool exhausted or server down)"
                        .into(),
                };
            }
            _ => {}
        }
        let Some(db) = source.as_database_error() else {
            return Error::Postgres { target, source };
        };
        let message = db.message().to_owned();
        match db.code().as_deref() {
            Some(
                SERIALIZATION_FAILURE | DEADLOCK_DETECTED | LOCK_NOT_AVAILABLE | QUERY_CANCELED,
            ) => Error::Busy { target, message },
            Some(ADMIN_SHUTDOWN | CANNOT_CONNECT_NOW | TOO_MANY_CONNECTIONS) => {
                Error::Unavailable { target, reason: message }
            }
            _ => Error::Postgres { target, source },
        }
    }

    /// Sorts an error met while connecting, with a hint and without the password.
    pub(crate) fn connect(target: &Target, source: &sqlx::Error, secrets: &[String]) -> Self {
        let (reason, hint) = match source {
            sqlx::Error::Io(e) => (
                e.to_string(),
                "is PostgreSQL running and accepting TCP connections there? Check the host \
                 and port in OPENLOOM_DATABASE (or --database), and listen_addresses and \
                 pg_hba.conf on the server",
            ),
            sqlx::Error::PoolTimedOut => (
                "the server did not answer in time".to_owned(),
                "check that the host is reachable from this machine (firewall, VPN) and the \
                 port is PostgreSQL's",
            ),
            sqlx::Error::Tls(e) => {
                (e.to_string(), "check the sslmode parameter of the URL and the server's TLS setup")
            }
            other => match other.as_database_error() {
                Some(db) => {
                    let hint = match db.code().as_deref() {
                        Some(INVALID_PASSWORD | INVALID_AUTHORIZATION) => {
                            "check the user name and password in the URL, and pg_hba.conf"
                        }
                        Some(INVALID_CATALOG_NAME) => {
                            "create the database first (createdb, or CREATE DATABASE) or fix \
                             its name in the URL"
                        }
                        Some(TOO_MANY_CONNECTIONS) => {
                            "the server has no free connection slots: raise max_connections \
                             or run fewer workers"
                        }
                        _ => "see the server's log for details",
                    };
                    (db.message().to_owned(), hint)
                }
                None => (other.to_string(), "check OPENLOOM_DATABASE"),
            },
        };
        Error::Connect { target: Box::new(target.clone()), reason: scrub(&reason, secrets), hint }
    }

    /// An undecodable stored value.
    pub(crate) fn decode(target: &Target, what: &'static str, message: impl ToString) -> Self {
        Error::Decode { target: Box::new(target.clone()), what, message: message.to_string() }
    }
}

/// `text` with every non-empty secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// Adds the target to sqlx results.
pub(crate) trait SqlxResultExt<T> {
    /// Classifies the error as an [`Error`] on `target`.
    fn at(self, target: &Target) -> Result<T>;
}

impl<T> SqlxResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn at(self, target: &Target) -> Result<T> {
        self.map_err(|e| Error::classify(target, e))
    }
}

impl From<Error> for openloom_core::Error {
    /// A lock held too long, a deadlock or serialization conflict, and a database
    /// that became unreachable become [`openloom_core::Error::StoreBusy`] (transient:
    /// the harness retries later), as SQLite's "database is locked" does; every other
    /// failure becomes [`openloom_core::Error::Store`]. The server answers `Store`
    /// with a generic internal error, so SQL never reaches HTTP.
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Busy { .. } | Error::Unavailable { .. } => {
                openloom_core::Error::StoreBusy { message, source: Some(Box::new(err)) }
            }
            err => openloom_core::Error::Store { message, source: Some(Box::new(err)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target { user: "loom".into(), host: "db.example".into(), port: 5433, database: "ol".into() }
    }

    #[test]
    fn messages_name_the_database_without_a_password() {
        let err = Error::NewerSchema { target: Box::new(target()), found: 9, known: 1 };
        assert!(err.to_string().contains("postgres://loom@db.example:5433/ol"), "{err}");
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = vec!["hunter2".to_owned(), String::new()];
        assert_eq!(scrub("auth hunter2 failed", &secrets), "auth *** failed");
    }

    #[test]
    fn busy_and_unavailable_are_transient_in_core() {
        let busy: openloom_core::Error =
            Error::Busy { target: Box::new(target()), message: "lock timeout".into() }.into();
        assert!(busy.is_transient(), "{busy:?}");
        let gone: openloom_core::Error =
            Error::Unavailable { target: Box::new(target()), reason: "reset".into() }.into();
        assert!(gone.is_transient(), "{gone:?}");
        let schema: openloom_core::Error =
            Error::NewerSchema { target: Box::new(target()), found: 2, known: 1 }.into();
        assert!(!schema.is_transient(), "{schema:?}");
    }

    #[test]
    fn io_errors_of_queries_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(Error::classify(&target(), io), Error::Unavailable { .. }));
    }
}
