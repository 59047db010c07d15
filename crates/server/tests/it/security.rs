//! Host, Origin and token checks, startup refusal, and the folder browser's bounds.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use openloom_server::{Error, Server, ServerConfig, ServerParts};
use serde_json::json;

use crate::common::*;

fn with_headers(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

#[tokio::test]
async fn foreign_origins_cannot_change_state() {
    let fx = Fixture::new().await;
    let body = json!({"prompt": "x", "workspace": fx.ws()});
    let evil = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("origin", "http://evil.example")],
            Some(body.clone()),
        ))
        .await;
    evil.error(StatusCode::FORBIDDEN);
    let null = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("origin", "null")],
            Some(body.clone()),
        ))
        .await;
    null.error(StatusCode::FORBIDDEN);
    let cross = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("sec-fetch-site", "cross-site")],
            Some(body.clone()),
        ))
        .await;
    cross.error(StatusCode::FORBIDDEN);
    // Another port of localhost is the same site, not the same origin.
    let same_site = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("sec-fetch-site", "same-site")],
            Some(body.clone()),
        ))
        .await;
    same_site.error(StatusCode::FORBIDDEN);
    let delete = fx
        .call(with_headers(
            Method::DELETE,
            "/api/tasks/task_x",
            &[("host", HOST), ("origin", "http://evil.example")],
            None,
        ))
        .await;
    delete.error(StatusCode::FORBIDDEN);
    assert!(fx.get("/api/tasks").await.json["tasks"].as_array().expect("tasks").is_empty());

    let own = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("origin", &format!("http://{HOST}"))],
            Some(body),
        ))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
}

#[tokio::test]
async fn no_cors_headers_are_ever_sent() {
    let fx = Fixture::new().await;
    let get = fx
        .call(with_headers(
            Method::GET,
            "/api/tasks",
            &[("host", HOST), ("origin", "http://evil.example")],
            None,
        ))
        .await;
    assert_eq!(get.status, StatusCode::OK);
    let preflight = fx
        .call(with_headers(
            Method::OPTIONS,
            "/api/tasks",
            &[
                ("host", HOST),
                ("origin", "http://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        ))
        .await;
    assert!(preflight.status.is_client_error(), "{}", preflight.status);
    for reply in [get, preflight] {
        assert!(
            !reply.headers.keys().any(|k| k.as_str().starts_with("access-control-")),
            "{:?}",
            reply.headers
        );
    }
}

#[tokio::test]
async fn no_page_may_frame_ours_and_nothing_is_sniffed() {
    let fx = Fixture::new().await;
    let index = fx.get("/").await;
    let refused =
        fx.call(with_headers(Method::GET, "/", &[("host", "rebind.attacker.example")], None)).await;
    for reply in [index, refused, fx.get("/api/tasks").await] {
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        let policy = reply.headers["content-security-policy"].to_str().unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn foreign_hosts_are_refused_as_dns_rebinding() {
    let fx = Fixture::new().await;
    for host in ["rebind.attacker.example:38080", "127.0.0.1:1", "localhost"] {
        let reply = fx.call(with_headers(Method::GET, "/api/tasks", &[("host", host)], None)).await;
        reply.error(StatusCode::MISDIRECTED_REQUEST);
    }
    let index = fx
        .call(with_headers(Method::GET, "/", &[("host", "rebind.attacker.example:38080")], None))
        .await;
    assert_eq!(index.status, StatusCode::MISDIRECTED_REQUEST);
    let missing = fx.call(with_headers(Method::GET, "/api/tasks", &[], None)).await;
    missing.error(StatusCode::MISDIRECTED_REQUEST);
    for host in ["localhost:38080", "[::1]:38080", HOST] {
        let reply = fx.call(with_headers(Method::GET, "/api/tasks", &[("host", host)], None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text);
    }
}

#[tokio::test]
async fn a_configured_token_is_required_for_the_api_but_not_the_index() {
    let fx = Fixture::with_config(test_config().with_token("correct-horse-battery")).await;
    let none = fx.get("/api/tasks").await;
    none.error(StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers.get(header::WWW_AUTHENTICATE).expect("challenge"), "Bearer");
    let wrong = fx
        .call(with_headers(
            Method::GET,
            "/api/tasks",
            &[("host", HOST), ("authorization", "Bearer correct-horse-battery!")],
            None,
        ))
        .await;
    wrong.error(StatusCode::UNAUTHORIZED);
    let basic = fx
        .call(with_headers(
            Method::GET,
            "/api/tasks",
            &[("host", HOST), ("authorization", "Basic correct-horse-battery")],
            None,
        ))
        .await;
    basic.error(StatusCode::UNAUTHORIZED);
    let right = fx
        .call(with_headers(
            Method::GET,
            "/api/tasks",
            &[("host", HOST), ("authorization", "Bearer correct-horse-battery")],
            None,
        ))
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    let create = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("authorization", "Bearer correct-horse-battery")],
            Some(json!({"prompt": "x", "workspace": fx.ws()})),
        ))
        .await;
    assert_eq!(create.status, StatusCode::OK, "{}", create.text);
    let index = fx.get("/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.text.contains("/ui/app.js"), "{}", index.text);
    fx.get("/api/openapi.json").await.error(StatusCode::UNAUTHORIZED);
    // Default deny: paths other than the index need the token, routed or not.
    for path in ["/API/tasks", "/nope", "/api", "/api/events", "/api/state"] {
        fx.get(path).await.error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_foreign_referer_without_origin_cannot_change_state() {
    let fx = Fixture::new().await;
    let body = json!({"prompt": "x", "workspace": fx.ws()});
    let referred = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("referer", "http://evil.example/page")],
            Some(body.clone()),
        ))
        .await;
    assert!(referred.error(StatusCode::FORBIDDEN).contains("referred by another page"));
    let own = format!("http://{HOST}/");
    let ours = fx
        .call(with_headers(
            Method::POST,
            "/api/tasks",
            &[("host", HOST), ("referer", own.as_str())],
            Some(body),
        ))
        .await;
    assert_eq!(ours.status, StatusCode::OK, "{}", ours.text);
}

#[tokio::test]
async fn repeated_wrong_tokens_are_answered_429_until_the_penalty_ends() {
    let fx = Fixture::with_config(token_config()).await;
    let attempt = |token: &'static str| {
        let authorization = format!("Bearer {token}");
        fx.call(with_headers(
            Method::GET,
            "/api/tasks",
            &[("host", HOST), ("authorization", authorization.as_str())],
            None,
        ))
    };
    for _ in 0..10 {
        attempt("wrong-guess-0123456789").await.error(StatusCode::UNAUTHORIZED);
    }
    let blocked = attempt("wrong-guess-0123456789").await;
    assert!(blocked.error(StatusCode::TOO_MANY_REQUESTS).contains("wait"), "{}", blocked.text);
    let retry: u64 =
        blocked.headers[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // While blocked, not even the right token is compared: the answer tells nothing.
    attempt(TOKEN).await.error(StatusCode::TOO_MANY_REQUESTS);
    // The public page stays reachable.
    assert_eq!(fx.get("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_server_without_a_long_token_refuses_to_start() {
    let fx = Fixture::new().await;
    let parts = ServerParts {
        harness: fx.state.harness().clone(),
        recent: fx.state.recent().clone(),
        outbox: fx.state.outbox().clone(),
        client: fx.state.client().clone(),
        metrics: fx.state.metrics().clone(),
        others: Vec::new(),
    };
    let waived =
        ServerConfig { no_token: true, ..ServerConfig::new("0.0.0.0:0".parse().expect("addr")) };
    let error = Server::bind(waived, parts.clone()).await.expect_err("must refuse");
    assert!(matches!(error, Error::InsecureBind { .. }), "{error}");
    assert!(error.to_string().contains("OPENLOOM_API_TOKEN"), "{error}");
    let plain = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    let error = Server::bind(plain, parts.clone()).await.expect_err("no token, no opt-out");
    assert!(error.to_string().contains("--no-token"), "{error}");
    let short = ServerConfig::new("127.0.0.1:0".parse().expect("addr")).with_token("a");
    let error = Server::bind(short, parts.clone()).await.expect_err("a short token");
    assert!(error.to_string().contains("fewer than the 16"), "{error}");
    let with_token =
        ServerConfig::new("0.0.0.0:0".parse().expect("addr")).with_token("long-random-token");
    let server = Server::bind(with_token, parts).await.expect("a token makes it safe");
    assert_ne!(server.local_addr().port(), 0);
}

#[tokio::test]
async fn browse_lists_folders_inside_the_roots_only() {
    let fx = Fixture::new().await;
    std::fs::create_dir_all(fx.workspace.join("src")).expect("mkdir");
    std::fs::create_dir_all(fx.workspace.join(".git")).expect("mkdir");
    std::fs::write(fx.workspace.join("file.txt"), "x").expect("write");
    std::os::unix::fs::symlink(&fx.outside, fx.workspace.join("escape")).expect("symlink");

    let listing = fx.get(&format!("/api/browse?path={}", fx.ws())).await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text);
    let names: Vec<&str> = listing.json["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["src"], "hidden folders, files and escaping symlinks are not listed");
    assert_eq!(listing.json["parent"], path_text(&fx.root));
    let at_root = fx.get(&format!("/api/browse?path={}", path_text(&fx.root))).await;
    assert_eq!(at_root.json["parent"], serde_json::Value::Null, "cannot navigate above the root");

    // Every refusal is the same answer, naming only the path as asked: never where a
    // symlink leads, nor whether a path outside exists.
    let dotdot = format!("{}/project/../..", path_text(&fx.root));
    for asked in [
        dotdot,
        format!("{}/escape", fx.ws()),
        "/etc".to_owned(),
        "/no/such/dir".to_owned(),
        format!("{}/nope", fx.ws()),
        format!("{}/file.txt", fx.ws()),
    ] {
        let refused = fx.get(&format!("/api/browse?path={asked}")).await;
        refused.error(StatusCode::FORBIDDEN);
        let detail = refused.json["detail"].as_str().expect("detail");
        assert_eq!(
            detail.replace(&asked, "<asked>"),
            "<asked> is not a folder this server may list: it must be an existing, readable \
             directory inside the allowed workspace roots",
            "{asked}"
        );
        assert!(!detail.contains(&path_text(&fx.outside)), "the target is not named: {detail}");
    }

    // Without a path: the newest recent workspace still allowed, else the first root.
    let default = fx.get("/api/browse").await;
    assert_eq!(default.json["path"], path_text(&fx.root), "{}", default.text);
    let recent = fx.state.recent();
    let now = chrono::Utc::now();
    recent.record_workspace(&fx.ws(), now).await.expect("record");
    // Recorded before the roots were narrowed, say: skipped, not a 403.
    let outside = path_text(&fx.outside);
    recent.record_workspace(&outside, now + chrono::Duration::seconds(1)).await.expect("record");
    let default = fx.get("/api/browse").await;
    assert_eq!(default.status, StatusCode::OK, "{}", default.text);
    assert_eq!(default.json["path"], fx.ws(), "{}", default.text);
}

#[tokio::test]
async fn recent_workspaces_can_be_forgotten_by_query_or_body() {
    let fx = Fixture::new().await;
    fx.create_prompt_task("x").await;
    let missing = fx.delete("/api/workspaces/recent").await;
    missing.error(StatusCode::BAD_REQUEST);
    let by_query = fx.delete(&format!("/api/workspaces/recent?path={}", fx.ws())).await;
    assert_eq!(by_query.json["removed"], true, "{}", by_query.text);
    fx.create_prompt_task("y").await;
    let by_body = fx
        .call(request(Method::DELETE, "/api/workspaces/recent", Some(json!({"path": fx.ws()}))))
        .await;
    assert_eq!(by_body.json["removed"], true, "{}", by_body.text);
    let again = fx
        .call(request(Method::DELETE, "/api/workspaces/recent", Some(json!({"path": fx.ws()}))))
        .await;
    assert_eq!(again.json["removed"], false);
    let bad = fx
        .call(request(Method::DELETE, "/api/workspaces/recent", Some(json!({"paths": []}))))
        .await;
    bad.error(StatusCode::BAD_REQUEST);
    assert!(
        fx.get("/api/workspaces/recent").await.json["workspaces"]
            .as_array()
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn the_folder_picker_is_unsupported_on_a_server() {
    let fx = Fixture::new().await;
    let reply = fx.post_empty("/api/pick-folder").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"ok": false, "unsupported": true}));
}
