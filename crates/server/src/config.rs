//! [`ServerConfig`]: where to listen, the API token, and the limits; and the rules
//! that decide whether a configuration is safe to start.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use openloom_opencode::Secret;

use crate::error::{Error, Result};
use crate::monitor::MonitorConfig;

/// The environment variable the binary reads the API token from.
pub const API_TOKEN_ENV: &str = "OPENLOOM_API_TOKEN";

/// The environment variable the binary reads the GitHub hook's secret from.
pub const GITHUB_SECRET_ENV: &str = "OPENLOOM_GITHUB_WEBHOOK_SECRET";

/// Largest request body accepted, in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Shortest API token accepted. A generated token is 64 hex digits; a person's
/// choice shorter than this is guessable by a local process in minutes.
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a connection may take to send a request's headers, counted from when it
/// opened or from the end of its previous answer (so it is also the idle keep-alive
/// timeout).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept back from the connection cap: the database, the OpenCode
/// client's pool, the pipes of running checks, logs.
const RESERVED_FDS: u64 = 64;
/// Connection cap when the descriptor limit is unknown or unlimited.
const MAX_CONNECTIONS_CEILING: usize = 8192;

/// How the server listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on. Port 0 picks a free port (see [`crate::Server::local_addr`]).
    pub bind: SocketAddr,
    /// Every request but the dashboard page and its assets needs
    /// `Authorization: Bearer <token>`. Required unless [`ServerConfig::no_token`],
    /// and at least [`MIN_TOKEN_LEN`] characters.
    pub api_token: Option<Secret>,
    /// Serve without a token (loopback only): every local user can then create tasks,
    /// which run commands as this process's user. Off unless asked for explicitly.
    pub no_token: bool,
    /// Extra host names the server may be reached by (e.g. behind a reverse proxy):
    /// `name` matches that host on any port, `name:port` only that port.
    pub public_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Interval of SSE heartbeat comments.
    pub heartbeat: Duration,
    /// Tasks sent in an SSE snapshot.
    pub snapshot_tasks: usize,
    /// Time allowed for a request's headers, from the connection's start or the end
    /// of its previous answer; slower or idle connections are closed.
    pub header_timeout: Duration,
    /// Most open connections; more are answered 503 and closed. The default is
    /// derived from the process's file-descriptor limit ([`default_max_connections`]).
    pub max_connections: usize,
    /// Most open `/api/events` streams; more are answered 503 (`busy`).
    pub max_event_streams: usize,
    /// The session monitor's pace.
    pub monitor: MonitorConfig,
    /// What `POST /api/hooks/github` takes (label, repository directories); `None`
    /// refuses the route.
    pub github: Option<openloom_sources::GithubConfig>,
    /// The secret GitHub signs its deliveries with ([`GITHUB_SECRET_ENV`]); `None`
    /// refuses the route, whatever `github` says.
    pub github_secret: Option<Secret>,
    /// The names of the other OpenCode servers of the team (`opencode_servers` in
    /// the config file) that `POST /api/tasks` may create tasks for (`opencode`);
    /// the harness's own ([`openloom_core::Harness::opencode`]) is always allowed.
    pub opencode_servers: Vec<String>,
}

impl ServerConfig {
    /// A configuration listening on `bind`, with the defaults elsewhere. It has no
    /// token yet: set one ([`ServerConfig::with_token`]) or opt out
    /// ([`ServerConfig::no_token`]) before [`crate::Server::bind`].
    pub fn new(bind: SocketAddr) -> Self {
        let max_connections = default_max_connections();
        ServerConfig {
            bind,
            api_token: None,
            no_token: false,
            public_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            heartbeat: Duration::from_secs(15),
            snapshot_tasks: 200,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections,
            max_event_streams: (max_connections / 2).max(1),
            monitor: MonitorConfig::default(),
            github: None,
            github_secret: None,
            opencode_servers: Vec::new(),
        }
    }

    /// The configuration with an API token.
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// Refuses configurations that would be unsafe or cannot work: no token without
    /// the explicit opt-out, a short token, a non-loopback address or public host
    /// name without a token, zero limits.
    pub fn validate(&self) -> Result<()> {
        if let Some(token) = &self.api_token {
            let length = token.expose().trim().chars().count();
            if length < MIN_TOKEN_LEN {
                return Err(Error::InvalidConfig(format!(
                    "the API token has {length} characters, fewer than the {MIN_TOKEN_LEN} \
                     required (a short token is guessed quickly); set {API_TOKEN_ENV} to a long \
                     random value, e.g. `openssl rand -hex 32`, or unset it to use the \
                     generated one"
                )));
            }
        } else if !self.no_token {
            return Err(Error::InvalidConfig(format!(
                "no API token: set {API_TOKEN_ENV} (or let the binary generate one); serving \
                 without a token must be asked for explicitly (--no-token), since any local \
                 user could then create tasks, which run commands"
            )));
        } else if !self.bind.ip().is_loopback() {
            return Err(Error::InsecureBind { bind: self.bind });
        } else if let Some(name) = self.public_hosts.iter().find(|h| !names_this_machine(h)) {
            // A public name means a proxy brings other machines' requests to this
            // loopback port: they need the token as much as a public bind would.
            return Err(Error::InvalidConfig(format!(
                "the public host name {name:?} lets other machines reach this server (through a \
                 proxy), and tasks can run commands: set {API_TOKEN_ENV} (or pass --token) to \
                 require `Authorization: Bearer <token>`"
            )));
        }
        if self.body_limit == 0 {
            return Err(Error::InvalidConfig("the body limit must be positive".into()));
        }
        if self.max_connections == 0 || self.max_event_streams == 0 {
            return Err(Error::InvalidConfig(
                "the connection and event-stream caps must be positive".into(),
            ));
        }
        if self.header_timeout.is_zero() {
            return Err(Error::InvalidConfig("the header timeout must be positive".into()));
        }
        Ok(())
    }

    /// True when a request's `Host` (`name[:port]`) names this server. Accepted: the
    /// bound address, `localhost`, `127.0.0.1` and `[::1]` on the bound port, the
    /// configured public hosts, and — when bound to an unspecified address such as
    /// `0.0.0.0` — any IP literal on the bound port. Host *names* that are not
    /// configured are refused, which is what defeats DNS rebinding: the attacker's
    /// page reaches us under the attacker's name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let port = self.bind.port();
        let (name, host_port) = split_host(&host);
        if self.public_hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            match split_host(&allowed) {
                (allowed_name, None) => allowed_name == name,
                (allowed_name, Some(p)) => allowed_name == name && host_port == Some(p),
            }
        }) {
            return true;
        }
        if host_port != Some(port) {
            return false;
        }
        if name == "localhost" {
            return true;
        }
        let ip: Option<IpAddr> = name.trim_start_matches('[').trim_end_matches(']').parse().ok();
        match ip {
            Some(ip) if ip == self.bind.ip() => true,
            Some(ip) if ip.is_loopback() => {
                self.bind.ip().is_loopback() || self.bind.ip().is_unspecified()
            }
            Some(_) => self.bind.ip().is_unspecified(),
            None => false,
        }
    }
}

/// The default connection cap: three quarters of the process's soft file-descriptor
/// limit, less 64 kept for the database, OpenCode and checks (so accepting never fails with "too many open files"
/// while the harness still has descriptors for its work), at least 8 and at most
/// 8192. Raise the limit (`ulimit -n`) to serve more clients.
pub fn default_max_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    connections_for_fd_limit(soft)
}

fn connections_for_fd_limit(soft: u64) -> usize {
    let usable = soft.saturating_sub(RESERVED_FDS).saturating_mul(3) / 4;
    usize::try_from(usable).unwrap_or(usize::MAX).clamp(8, MAX_CONNECTIONS_CEILING)
}

/// Splits `name[:port]` (with `[v6]:port` brackets) into the name and the port.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((inside, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (&host[..inside.len() + 2], port);
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// True for host names that only ever mean this machine: `localhost` and loopback
/// addresses (with or without a port).
fn names_this_machine(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, _) = split_host(&host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-token-0123456789";

    /// A configuration that opted out of the token (what the loopback rules apply to).
    fn config(bind: &str) -> ServerConfig {
        ServerConfig { no_token: true, ..ServerConfig::new(bind.parse().expect("addr")) }
    }

    #[test]
    fn non_loopback_without_token_is_refused() {
        assert!(matches!(config("0.0.0.0:8080").validate(), Err(Error::InsecureBind { .. })));
        assert!(matches!(config("192.168.1.2:8080").validate(), Err(Error::InsecureBind { .. })));
        assert!(config("127.0.0.1:8080").validate().is_ok());
        assert!(config("[::1]:8080").validate().is_ok());
        assert!(config("0.0.0.0:8080").with_token(TOKEN).validate().is_ok());
        assert!(matches!(
            config("127.0.0.1:1").with_token("  ").validate(),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_token_is_required_unless_explicitly_waived_and_must_be_long() {
        let plain = ServerConfig::new("127.0.0.1:8080".parse().expect("addr"));
        let error = plain.clone().validate().expect_err("no token, no opt-out");
        assert!(error.to_string().contains("--no-token"), "{error}");
        let error = plain.clone().with_token("a").validate().expect_err("one character");
        assert!(error.to_string().contains("16"), "{error}");
        assert!(plain.clone().with_token("fifteen-chars-x").validate().is_err());
        assert!(plain.with_token("sixteen-chars-xx").validate().is_ok());
    }

    #[test]
    fn the_connection_cap_follows_the_descriptor_limit() {
        assert_eq!(connections_for_fd_limit(256), 144);
        assert_eq!(connections_for_fd_limit(1024), 720);
        assert_eq!(connections_for_fd_limit(20), 8, "never below 8");
        assert_eq!(connections_for_fd_limit(u64::MAX), 8192, "unlimited is capped");
        assert!(default_max_connections() >= 8);
    }

    #[test]
    fn a_public_host_name_needs_a_token_even_on_loopback() {
        let mut proxied = config("127.0.0.1:8080");
        proxied.public_hosts = vec!["loom.example.com".into()];
        let error = proxied.clone().validate().expect_err("a proxy brings remote callers");
        assert!(error.to_string().contains("OPENLOOM_API_TOKEN"), "{error}");
        assert!(proxied.with_token(TOKEN).validate().is_ok());

        let mut local = config("127.0.0.1:8080");
        local.public_hosts = vec!["localhost".into(), "127.0.0.1:8080".into(), "[::1]".into()];
        assert!(local.validate().is_ok(), "names of this machine need no token");
    }

    #[test]
    fn loopback_hosts_on_the_bound_port_are_allowed() {
        let c = config("127.0.0.1:8080");
        for host in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080"] {
            assert!(c.allows_host(host), "{host}");
        }
        for host in ["127.0.0.1:9090", "evil.example:8080", "localhost", "192.168.1.2:8080", ""] {
            assert!(!c.allows_host(host), "{host}");
        }
        // Spellings that reach loopback in some browsers or resolvers but are not ours:
        // refused (a false refusal is safe, a false acceptance is not).
        for host in [
            "0.0.0.0:8080",
            "127.0.0.1.:8080",
            "localhost.:8080",
            "127.1:8080",
            "2130706433:8080",
            "[::ffff:127.0.0.1]:8080",
            "[::1]:8080:8080",
            "localhost:8080@evil.example",
            "evil.example#@localhost:8080",
            "[::1]]:8080",
        ] {
            assert!(!c.allows_host(host), "{host}");
        }
    }

    #[test]
    fn unspecified_bind_allows_ip_literals_and_configured_names_only() {
        let mut c = config("0.0.0.0:8080").with_token(TOKEN);
        assert!(c.allows_host("192.168.1.2:8080"));
        assert!(!c.allows_host("rebind.attacker.example:8080"));
        c.public_hosts = vec!["loom.example.com".into(), "other.example:9000".into()];
        assert!(c.allows_host("loom.example.com"));
        assert!(c.allows_host("loom.example.com:443"));
        assert!(c.allows_host("other.example:9000"));
        assert!(!c.allows_host("other.example:9001"));
    }

    #[test]
    fn splits_hosts_with_and_without_ports() {
        assert_eq!(split_host("a:1"), ("a", Some(1)));
        assert_eq!(split_host("a"), ("a", None));
        assert_eq!(split_host("[::1]:8"), ("[::1]", Some(8)));
        assert_eq!(split_host("::1"), ("::1", None));
    }
}
