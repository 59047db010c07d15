//! The OpenAPI document and the router list the same routes, and every route answers.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use openloom_server::{OPENAPI_JSON, ROUTES};
use serde_json::Value;

use crate::common::*;

fn document_routes() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(served.len(), ROUTES.len(), "ROUTES has duplicates");
    let table: BTreeSet<(String, String)> = openloom_server::routes::route_table()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(table, served, "the router's table and ROUTES differ");
    let documented = document_routes();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "routes missing from docs/openapi.json: {missing:?}");
    assert!(extra.is_empty(), "documented routes the server lacks: {extra:?}");
}

#[tokio::test]
async fn every_route_answers_with_its_method() {
    let fx = Fixture::new().await;
    for (method, path) in ROUTES {
        let uri =
            path.replace("{id}", if path.contains("sessions") { "ses_none" } else { "task_none" });
        let method: Method = method.parse().expect("method");
        let reply = if method == Method::GET && uri == "/api/events" {
            // A stream: only the head matters here.
            let response = tower::ServiceExt::oneshot(fx.app.clone(), request(method, &uri, None))
                .await
                .expect("router");
            assert_eq!(response.status(), StatusCode::OK);
            continue;
        } else {
            fx.call(request(method.clone(), &uri, None)).await
        };
        assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {}", reply.text);
        let detail = reply.json["detail"].as_str().unwrap_or("");
        assert!(!detail.starts_with("no route"), "{method} {uri} is not routed: {}", reply.text);
        assert_ne!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {uri}: {}",
            reply.text
        );
    }
    let unknown = fx.get("/api/nope").await;
    assert!(unknown.error(StatusCode::NOT_FOUND).starts_with("no route"));
    fx.call(request(Method::PUT, "/api/tasks", None)).await.error(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_document_is_served() {
    let fx = Fixture::new().await;
    let reply = fx.get("/api/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["info"]["title"], "OpenLoom API");
}
