//! The request guard every route sits behind: `Host` (DNS rebinding), `Origin`
//! (cross-site writes) and the bearer token, in that order.
//!
//! The API sends no CORS headers at all, so a browser page from another origin can
//! neither read our answers nor send a JSON body without a preflight we refuse. The
//! `Origin` check closes what remains: a cross-site form or `fetch` that changes
//! state. Without a token, this is what limits task creation (which can run
//! commands through executable checks) to same-origin pages and local tools.

use axum::extract::{Request, State};
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
    if let Some(token) = &config.api_token {
        if !is_public(request.uri().path()) && !bearer_matches(headers, token.expose()) {
            return Err(Error::Unauthorized);
        }
    }
    Ok(())
}

/// Paths served without the token: the dashboard page and its exact asset paths,
/// which hold no data. Everything else needs it, so a route added later (or a path
/// spelled differently, `/API/tasks`, `/ui/other.js`) is protected by default.
fn is_public(path: &str) -> bool {
    crate::routes::ui::is_ui_path(path)
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
/// without `Origin` (curl, the CLI) pass; `Origin: null` (sandboxed frames, some
/// redirects) does not. `Sec-Fetch-Site`, when a browser sends it, must say
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
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
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
