//! The dashboard's page and assets: served with their types and the security headers,
//! without a token (they hold no data) while `/api/*` still needs it; nothing else
//! under `/ui/` exists.

use axum::http::{Method, StatusCode, header};
use openloom_server::routes::ui::{ASSETS, CONTENT_SECURITY_POLICY, INDEX};
use openloom_server::{OPENAPI_JSON, ROUTES};

use crate::common::*;

const TOKEN: &str = "dashboard-token-123";

fn header_text(reply: &Reply, name: header::HeaderName) -> String {
    reply
        .headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_owned()
}

/// The checks every page and asset answer passes.
fn assert_served(reply: &Reply, path: &str, content_type: &str, body: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    assert_eq!(header_text(reply, header::CONTENT_TYPE), content_type, "{path}");
    assert_eq!(reply.text, body, "{path} serves its embedded file");
    assert_eq!(header_text(reply, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
    assert_eq!(header_text(reply, header::REFERRER_POLICY), "no-referrer", "{path}");
    assert_eq!(header_text(reply, header::X_FRAME_OPTIONS), "DENY", "{path}");
    let csp = header_text(reply, header::CONTENT_SECURITY_POLICY);
    assert_eq!(csp, CONTENT_SECURITY_POLICY, "{path}: the whole policy, in the header");
}

#[tokio::test]
async fn the_page_and_each_asset_are_served_with_their_type_and_security_headers() {
    let fx = Fixture::new().await;
    let index = fx.get("/").await;
    assert_served(&index, "/", "text/html; charset=utf-8", INDEX.body);
    // The page enforces the whole policy itself (a <meta> policy), nothing inline.
    let meta = CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "");
    assert!(index.text.contains(&format!("content=\"{meta}\"")), "{}", index.text);
    for forbidden in ["<style", " style=", " onclick=", " onload=", "<script>", "javascript:"] {
        assert!(!index.text.contains(forbidden), "index.html has inline {forbidden}");
    }
    let expected = [
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/api.js", "text/javascript; charset=utf-8"),
        ("/ui/dom.js", "text/javascript; charset=utf-8"),
    ];
    assert_eq!(ASSETS.len(), expected.len(), "a new asset needs a line here");
    // Every asset is reachable from the page: linked by it, or imported by app.js.
    let app = ASSETS.iter().find(|a| a.path == "/ui/app.js").expect("app.js");
    assert!(index.text.contains("href=\"/ui/app.css\""), "the page links its stylesheet");
    assert!(index.text.contains("src=\"/ui/app.js\""), "the page loads app.js");
    assert!(app.body.contains("from './api.js'") && app.body.contains("from './dom.js'"));
    for (path, content_type) in expected {
        let asset = ASSETS.iter().find(|a| a.path == path).expect("asset listed");
        assert_served(&fx.get(path).await, path, content_type, asset.body);
        assert!(ROUTES.contains(&("GET", path)), "{path} is in ROUTES");
        assert!(OPENAPI_JSON.contains(&format!("\"{path}\"")), "{path} is in openapi.json");
    }
}

#[test]
fn no_script_builds_html_from_strings() {
    for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]
        {
            assert!(!asset.body.contains(forbidden), "{} uses {forbidden}", asset.path);
        }
    }
}

#[tokio::test]
async fn the_page_needs_no_token_but_the_api_does() {
    let fx = Fixture::with_config(test_config().with_token(TOKEN)).await;
    assert_served(&fx.get("/").await, "/", "text/html; charset=utf-8", INDEX.body);
    for asset in ASSETS {
        assert_served(&fx.get(asset.path).await, asset.path, asset.content_type, asset.body);
    }
    for path in ["/api/state", "/api/tasks", "/api/events", "/ui/", "/ui/nope.js", "/index.html"] {
        fx.get(path).await.error(StatusCode::UNAUTHORIZED);
    }
    let authorized = fx
        .call(
            axum::http::Request::builder()
                .method(Method::GET)
                .uri("/api/state")
                .header(header::HOST, HOST)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(authorized.status, StatusCode::OK, "{}", authorized.text);
}

#[tokio::test]
async fn unknown_asset_paths_are_404_and_assets_take_only_get() {
    let fx = Fixture::new().await;
    for path in ["/ui/nope.js", "/ui/", "/ui/app.js/x", "/ui/APP.JS", "/index.html", "/app.js"] {
        fx.get(path).await.error(StatusCode::NOT_FOUND);
    }
    fx.post_empty("/ui/app.js").await.error(StatusCode::METHOD_NOT_ALLOWED);
    fx.post_empty("/").await.error(StatusCode::METHOD_NOT_ALLOWED);
}
