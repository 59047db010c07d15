//! [`ServerConfig`]: where to listen, the API token, and the limits; and the rules
//! that decide whether a configuration is safe to start.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use openloom_opencode::Secret;

use crate::error::{Error, Result};
use crate::monitor::MonitorConfig;

/// The environment variable the binary reads the API token from.
pub const API_TOKEN_ENV: &str = "OPENLOOM_API_TOKEN";

/// Largest request body accepted, in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How the server listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on. Port 0 picks a free port (see [`crate::Server::local_addr`]).
    pub bind: SocketAddr,
    /// When set, every request but `GET /` needs `Authorization: Bearer <token>`.
    /// Required for a non-loopback `bind`.
    pub api_token: Option<Secret>,
    /// Extra host names the server may be reached by (e.g. behind a reverse proxy):
    /// `name` matches that host on any port, `name:port` only that port.
    pub public_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Interval of SSE heartbeat comments.
    pub heartbeat: Duration,
    /// Tasks sent in an SSE snapshot.
    pub snapshot_tasks: usize,
    /// The session monitor's pace.
    pub monitor: MonitorConfig,
}

impl ServerConfig {
    /// A configuration listening on `bind`, with no token and the defaults elsewhere.
    pub fn new(bind: SocketAddr) -> Self {
        ServerConfig {
            bind,
            api_token: None,
            public_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            heartbeat: Duration::from_secs(15),
            snapshot_tasks: 200,
            monitor: MonitorConfig::default(),
        }
    }

    /// The configuration with an API token.
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// Refuses configurations that would be unsafe or cannot work: a non-loopback
    /// address without a token, an empty token.
    pub fn validate(&self) -> Result<()> {
        if let Some(token) = &self.api_token {
            if token.expose().trim().is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "the API token is empty; set {API_TOKEN_ENV} to a long random value"
                )));
            }
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

    fn config(bind: &str) -> ServerConfig {
        ServerConfig::new(bind.parse().expect("addr"))
    }

    #[test]
    fn non_loopback_without_token_is_refused() {
        assert!(matches!(config("0.0.0.0:8080").validate(), Err(Error::InsecureBind { .. })));
        assert!(matches!(config("192.168.1.2:8080").validate(), Err(Error::InsecureBind { .. })));
        assert!(config("127.0.0.1:8080").validate().is_ok());
        assert!(config("[::1]:8080").validate().is_ok());
        assert!(config("0.0.0.0:8080").with_token("s3cret-token").validate().is_ok());
        assert!(matches!(
            config("127.0.0.1:1").with_token("  ").validate(),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_public_host_name_needs_a_token_even_on_loopback() {
        let mut proxied = config("127.0.0.1:8080");
        proxied.public_hosts = vec!["loom.example.com".into()];
        let error = proxied.clone().validate().expect_err("a proxy brings remote callers");
        assert!(error.to_string().contains("OPENLOOM_API_TOKEN"), "{error}");
        assert!(proxied.with_token("s3cret-token").validate().is_ok());

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
        let mut c = config("0.0.0.0:8080").with_token("t0ken");
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
