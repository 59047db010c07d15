//! The request guard every route sits behind: `Host` (DNS rebinding), `Origin`
//! and `Referer` (cross-site writes) and the bearer token, in that order; and the
//! penalty that slows down a peer guessing the token.
//!
//! The API sends no CORS headers at all, so a browser page from another origin can
//! neither read our answers nor send a JSON body without a preflight we refuse. The
//! `Origin` check closes what remains: a cross-site form or `fetch` that changes
//! state. Without a token, this is what limits task creation (which can run
//! commands through executable checks) to same-origin pages and local tools.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::state::AppState;

/// Runs the checks; answers the first failure, else passes the request on. Every
/// answer gets the [`harden`] headers.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match check(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::info!(
                method = %request.method(),
                path = %request.uri().path(),
                %error,
                "request refused"
            );
            error.into_response()
        }
    };
    harden(response.headers_mut());
    response
}

/// No page may frame ours: a framed dashboard's clicks are same-origin requests that
/// the `Origin` check lets through (clickjacking). And no answer is sniffed into
/// another type: error details echo request text. A handler that set its own
/// policy (the dashboard's, which includes `frame-ancestors 'none'`) keeps it.
fn harden(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("frame-ancestors 'none'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

fn check(state: &AppState, request: &Request) -> Result<(), Error> {
    let config = state.config();
    let headers = request.headers();
    let host = request_host(request)
        .ok_or_else(|| Error::MisdirectedHost("the request has no Host header".to_owned()))?;
    if !config.allows_host(&host) {
        return Err(Error::MisdirectedHost(format!(
            "this server does not answer to host {host:?}; use the address it listens on \
             (or add the name to the server's public hosts)"
        )));
    }
    if changes_state(request.method()) {
        check_origin(headers, &host)?;
    }
    // No token means the operator opted out (`no_token`, loopback only); the server
    // refuses to start otherwise (`ServerConfig::validate`).
    if let Some(token) = &config.api_token {
        let path = request.uri().path();
        if !is_public(path) && !is_self_authenticated(path) {
            let peer = peer_key(request);
            let now = Instant::now();
            // A blocked peer's token is not even compared: answers must not tell a
            // guesser anything until the penalty is over.
            if let Some(retry_after) = state.failures().blocked(peer, now) {
                return Err(Error::TooManyAttempts { retry_after });
            }
            if !bearer_matches(headers, token.expose()) {
                state.failures().record(peer, now);
                return Err(Error::Unauthorized);
            }
        }
    }
    Ok(())
}

/// Whom a failed token attempt is counted against: the peer's IP address (IPv6 by
/// its /64, which one host usually owns whole). Requests without a known peer (the
/// router called without a socket) share one key.
fn peer_key(request: &Request) -> IpAddr {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

/// Failed token attempts by peer: [`Failures::FREE`] failures per
/// [`Failures::WINDOW`] are answered 401; past that the peer gets 429 with
/// `Retry-After` until its window ends. At most [`Failures::MAX_PEERS`] peers are
/// remembered (expired ones are forgotten first, then the oldest), so a flood of
/// addresses costs bounded memory — and at worst resets a penalty early.
///
/// The owner's tools on the same address share the penalty while it lasts: a
/// bounded pause, the price of not letting a local user guess freely.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    peers: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Failures {
    /// Wrong or missing tokens a peer may send per window before it waits.
    pub(crate) const FREE: u32 = 10;
    /// The counting window, and so the longest wait.
    pub(crate) const WINDOW: Duration = Duration::from_secs(60);
    /// Most peers remembered.
    pub(crate) const MAX_PEERS: usize = 4096;

    /// `Some(seconds to wait)` when `peer` used up its failures in its window.
    pub(crate) fn blocked(&self, peer: IpAddr, now: Instant) -> Option<u64> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let window = peers.get(&peer)?;
        let elapsed = now.saturating_duration_since(window.started);
        if window.failures < Self::FREE || elapsed >= Self::WINDOW {
            return None;
        }
        Some((Self::WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts one failure of `peer`.
    pub(crate) fn record(&self, peer: IpAddr, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if !peers.contains_key(&peer) && peers.len() >= Self::MAX_PEERS {
            peers.retain(|_, w| now.saturating_duration_since(w.started) < Self::WINDOW);
            if peers.len() >= Self::MAX_PEERS {
                if let Some(oldest) = peers.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k) {
                    peers.remove(&oldest);
                }
            }
        }
        let window = peers.entry(peer).or_insert(Window { started: now, failures: 0 });
        if now.saturating_duration_since(window.started) >= Self::WINDOW {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures == Self::FREE {
            tracing::warn!(
                %peer,
                "{} requests with a wrong or missing API token; refusing this address for up \
                 to {} s",
                Self::FREE,
                Self::WINDOW.as_secs()
            );
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Paths served without the token: the dashboard page and its exact asset paths,
/// which hold no data. Everything else needs it, so a route added later (or a path
/// spelled differently, `/API/tasks`, `/ui/other.js`) is protected by default.
fn is_public(path: &str) -> bool {
    crate::routes::ui::is_ui_path(path)
}

/// Paths that authenticate themselves instead of by the token: the GitHub hook checks
/// GitHub's signature of its body (`routes/hooks.rs`). Exact paths only.
fn is_self_authenticated(path: &str) -> bool {
    path == crate::routes::hooks::GITHUB_PATH
}

/// The `Host` header, or the URI authority (HTTP/2 sends `:authority` instead).
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// A state-changing request from a browser must come from our own origin. Requests
/// without `Origin` (curl, the CLI) pass unless they carry a `Referer` from another
/// origin (older browsers and some form posts send a `Referer` but no `Origin`; our
/// own page sends neither, it says `Referrer-Policy: no-referrer`); `Origin: null`
/// (sandboxed frames, some redirects) does not. `Sec-Fetch-Site`, when a browser sends it, must say
/// `same-origin` or `none` (typed by the user): `same-site` is refused too, because
/// another port of `localhost` is the same *site* but not our origin.
fn check_origin(headers: &HeaderMap, host: &str) -> Result<(), Error> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Err(Error::Forbidden(format!(
                "requests from another site ({site}) may not change state"
            )));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return check_referer(headers, host);
    };
    let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
    let host = host.trim().to_ascii_lowercase();
    if origin == format!("http://{host}") || origin == format!("https://{host}") {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "requests from origin {origin:?} may not change state; only pages served by this \
         server (http://{host}) may"
    )))
}

/// Without `Origin`, a `Referer` (when present) must name our own origin.
fn check_referer(headers: &HeaderMap, host: &str) -> Result<(), Error> {
    let Some(referer) = headers.get(header::REFERER) else { return Ok(()) };
    let referer = referer.to_str().unwrap_or("").trim().to_ascii_lowercase();
    let host = host.trim().to_ascii_lowercase();
    let authority = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if authority == Some(host.as_str()) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "requests referred by another page may not change state; only pages served by this \
         server (http://{host}) may"
    )))
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else { return false };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Compares without an early exit, so the time taken does not tell an attacker how
/// many leading bytes they guessed right. The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer t0k"));
        assert!(bearer_matches(&headers, "t0k"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t0k"));
        assert!(!bearer_matches(&headers, "t0k"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("t0k"));
        assert!(!bearer_matches(&headers, "t0k"));
    }

    #[test]
    fn origin_must_be_our_own() {
        let mut headers = HeaderMap::new();
        assert!(check_origin(&headers, "127.0.0.1:8080").is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(check_origin(&headers, "127.0.0.1:8080").is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_origin(&headers, "127.0.0.1:8080").is_err());
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers, "127.0.0.1:8080").is_err());
        for (site, allowed) in
            [("cross-site", false), ("same-site", false), ("same-origin", true), ("none", true)]
        {
            let mut fetch = HeaderMap::new();
            fetch.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(check_origin(&fetch, "127.0.0.1:8080").is_ok(), allowed, "{site}");
        }
    }

    #[test]
    fn a_foreign_referer_without_origin_is_refused() {
        let host = "127.0.0.1:8080";
        let with = |referer: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::REFERER, HeaderValue::from_static(referer));
            check_origin(&headers, host)
        };
        assert!(with("http://127.0.0.1:8080/").is_ok());
        assert!(with("http://127.0.0.1:8080?x=1").is_ok());
        for foreign in [
            "http://evil.example/",
            "http://127.0.0.1:8080.evil.example/",
            "http://127.0.0.1:9090/",
            "https://evil.example/?from=http://127.0.0.1:8080/",
            "garbage",
        ] {
            assert!(with(foreign).is_err(), "{foreign}");
        }
    }

    #[test]
    fn failures_past_the_free_ones_block_the_peer_for_the_window() {
        let failures = Failures::default();
        let (peer, other) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 0, 0, 1]));
        let start = Instant::now();
        for _ in 0..Failures::FREE - 1 {
            failures.record(peer, start);
        }
        assert_eq!(failures.blocked(peer, start), None, "still within the free failures");
        failures.record(peer, start);
        assert_eq!(failures.blocked(peer, start), Some(60));
        let later = start + Duration::from_secs(45);
        assert_eq!(failures.blocked(peer, later), Some(15));
        assert_eq!(failures.blocked(other, later), None, "other peers are not blocked");
        let after = start + Failures::WINDOW;
        assert_eq!(failures.blocked(peer, after), None, "the penalty ends with the window");
        failures.record(peer, after);
        assert_eq!(failures.blocked(peer, after), None, "a new window starts afresh");
    }

    #[test]
    fn failures_remember_a_bounded_number_of_peers() {
        let failures = Failures::default();
        let now = Instant::now();
        for n in 0..(Failures::MAX_PEERS as u32 + 100) {
            failures.record(IpAddr::from(n.to_be_bytes()), now);
        }
        assert_eq!(failures.len(), Failures::MAX_PEERS);
    }

    #[test]
    fn only_the_exact_github_hook_path_skips_the_token() {
        assert!(is_self_authenticated("/api/hooks/github"));
        for path in ["/api/hooks/github/", "/API/hooks/github", "/api/hooks", "/api/hooks/gitlab"] {
            assert!(!is_self_authenticated(path), "{path}");
        }
    }

    #[test]
    fn only_the_page_and_its_assets_are_public() {
        for path in ["/", "/ui/app.js", "/ui/api.js", "/ui/dom.js", "/ui/app.css"] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/api/tasks",
            "/API/tasks",
            "/apix",
            "/assets/app.js",
            "",
            "/ui/",
            "/ui",
            "/ui/other.js",
            "/ui/app.js/",
            "/UI/app.js",
            "/ui/../api/tasks",
            "/index.html",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }
}
