//! Helpers shared by the integration tests: fixtures, a client for a mock server.

use std::time::Duration;

use openloom_core::SessionRef;
use openloom_opencode::{OpencodeClient, Settings};
use wiremock::MockServer;
use wiremock::ResponseTemplate;

/// The password used wherever a test needs one; asserted absent from outputs.
pub const PASSWORD: &str = "pa55-w0rd-never-shown";

/// A captured response body from `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("fixture {path}: {err}"))
}

/// Settings for `server` with timeouts short enough for tests.
pub fn settings(server: &MockServer) -> Settings {
    let mut settings = Settings::new(server.uri());
    settings.connect_timeout = Duration::from_secs(2);
    settings.request_timeout = Duration::from_secs(5);
    settings.prompt_timeout = Duration::from_secs(5);
    settings.event_reconnect_initial = Duration::from_millis(20);
    settings.event_reconnect_max = Duration::from_millis(100);
    settings
}

pub fn client(server: &MockServer) -> OpencodeClient {
    OpencodeClient::new(settings(server)).expect("valid settings")
}

/// A JSON response exactly as OpenCode sends it (`Content-Type: application/json`).
pub fn json_body(body: impl AsRef<str>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_ref().as_bytes().to_vec(), "application/json")
}

/// An error response with OpenCode's JSON body.
pub fn json_error(status: u16, body: impl AsRef<str>) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(body.as_ref().as_bytes().to_vec(), "application/json")
}

/// The web UI page OpenCode answers unknown routes with (200, HTML).
pub fn html_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture("root.html").into_bytes(), "text/html")
}

pub fn session_ref(id: &str, directory: &str) -> SessionRef {
    SessionRef { id: id.to_owned(), directory: directory.to_owned() }
}

/// What [`raw_server`] does with a connection once its body is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AfterBody {
    /// Keep it open and silent.
    HoldOpen,
    /// Close it (a dropped connection).
    Close,
}

/// A loopback server wiremock cannot play: every connection gets `head` (status
/// line and headers, chunked encoding) and then `chunk` over and over, up to
/// `total` bytes; then `after` says whether it is held open or closed.
pub async fn raw_server(
    head: &'static str,
    chunk: &'static [u8],
    total: usize,
    after: AfterBody,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            // Read the request head first: hyper rejects an answer that comes before it.
            let mut request = Vec::new();
            let mut byte = [0_u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                match socket.read(&mut byte).await {
                    Ok(1) => request.extend_from_slice(&byte),
                    _ => return,
                }
            }
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            let mut sent = 0;
            let mut result = socket.write_all(head.as_bytes()).await;
            while result.is_ok() && sent < total {
                result = socket.write_all(&framed).await;
                sent += chunk.len();
            }
            if after == AfterBody::HoldOpen {
                open.push(socket);
            }
        }
    });
    (format!("http://{address}"), server)
}
