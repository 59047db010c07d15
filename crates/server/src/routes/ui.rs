//! The dashboard: one HTML page and its scripts and styles, compiled into the binary
//! with `include_str!` and served as `&'static str`, so serving it allocates nothing
//! at start-up and nothing per request but the response head.
//!
//! The page and its assets hold no data, so they are served without the API token
//! (see `security::is_public`); everything they show comes from `/api/*`, which needs
//! it. The page reads the token from its URL fragment (`/#token=…`).
//!
//! Every answer here says exactly what it is (`Content-Type`), is never sniffed, never
//! sends a referrer, and carries the dashboard's Content-Security-Policy
//! ([`CONTENT_SECURITY_POLICY`]): scripts, styles and connections from this origin
//! only, nothing inline. The page repeats the policy in a `<meta>` tag, so it holds in
//! the browser even where a layer outside this module rewrites the header.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::state::AppState;

/// The dashboard's Content-Security-Policy. `index.html` carries the same policy
/// (less `frame-ancestors`, which a `<meta>` policy cannot set) and a router test
/// keeps the two equal.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file: where it is served, its type, its text.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its contents.
    pub body: &'static str,
}

macro_rules! ui_file {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name))
    };
}

/// The page itself, served at `/`.
pub const INDEX: Asset =
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: ui_file!("index.html") };

/// The stylesheet.
pub const APP_CSS: Asset = Asset {
    path: "/ui/app.css",
    content_type: "text/css; charset=utf-8",
    body: ui_file!("app.css"),
};

/// The main module: views, the live event stream, the forms.
pub const APP_JS: Asset = Asset {
    path: "/ui/app.js",
    content_type: "text/javascript; charset=utf-8",
    body: ui_file!("app.js"),
};

/// The API module: the token, `fetch` with it, the event stream reader.
pub const API_JS: Asset = Asset {
    path: "/ui/api.js",
    content_type: "text/javascript; charset=utf-8",
    body: ui_file!("api.js"),
};

/// DOM helpers and formatting (no `innerHTML` anywhere).
pub const DOM_JS: Asset = Asset {
    path: "/ui/dom.js",
    content_type: "text/javascript; charset=utf-8",
    body: ui_file!("dom.js"),
};

/// The page's scripts and styles, each at its own exact path. Only these paths (and
/// `/`) are public.
pub const ASSETS: &[Asset] = &[APP_CSS, APP_JS, API_JS, DOM_JS];

/// Whether `path` is the page or one of its assets (exact match).
pub fn is_ui_path(path: &str) -> bool {
    path == INDEX.path || ASSETS.iter().any(|asset| asset.path == path)
}

/// The `GET` route serving `asset`.
pub fn route(asset: Asset) -> MethodRouter<AppState> {
    get(move || async move { serve(asset) })
}

fn serve(asset: Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Revalidate every time: a new binary must never run with an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_under_ui_and_distinct() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(asset.path.starts_with("/ui/"), "{}", asset.path);
            assert!(!asset.body.is_empty(), "{}", asset.path);
            assert!(ASSETS[i + 1..].iter().all(|other| other.path != asset.path));
        }
    }

    #[test]
    fn the_page_repeats_the_policy_in_a_meta_tag() {
        let meta_policy = CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "");
        assert!(
            INDEX.body.contains(&format!("content=\"{meta_policy}\"")),
            "index.html must carry: {meta_policy}"
        );
    }

    #[test]
    fn assets_stay_small() {
        let total: usize = INDEX.body.len() + ASSETS.iter().map(|a| a.body.len()).sum::<usize>();
        assert!(total < 120 * 1024, "the dashboard is {total} bytes; keep it under 120 KB");
    }
}
