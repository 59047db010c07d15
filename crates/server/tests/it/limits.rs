//! Real-socket limits: the connection cap, the header-read timeout, the event-stream
//! cap, and another Unix user against the token.

use std::time::{Duration, Instant};

use openloom_core::TaskQuery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// One `GET path` on a fresh connection; the status code and the whole answer.
async fn get_once(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// True once the server closed `stream` (end of file or a reset, after whatever it
/// answered), within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await.is_ok()
}

#[tokio::test]
async fn idle_and_slowloris_connections_past_the_cap_leave_the_server_answering() {
    let fx = Fixture::new().await;
    let mut config = token_config();
    config.max_connections = 8;
    config.header_timeout = Duration::from_secs(1);
    let server = fx.serve(config).await;
    let addr = server.addr;

    // Twenty connections that send nothing, ten that send a header byte at a time.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let slowloris = tokio::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..10 {
            streams.push(TcpStream::connect(addr).await.expect("connect"));
        }
        for byte in b"GET /api/tasks HTTP/1.1\r\nHost: x".iter().cycle().take(40) {
            for stream in &mut streams {
                let _ = stream.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Past the cap: told at once, not left waiting on accept.
    let started = Instant::now();
    let (status, answer) =
        tokio::time::timeout(Duration::from_secs(2), get_once(addr, "/api/tasks", TOKEN))
            .await
            .expect("a connection past the cap is answered, not stalled");
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains("\"busy\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    // The header timeout frees the slots: the server answers again within seconds.
    let started = Instant::now();
    loop {
        let (status, answer) = get_once(addr, "/api/tasks", TOKEN).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5), "still refused after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
    for stream in &mut idle {
        assert!(closed_within(stream, Duration::from_secs(3)).await, "idle connection kept open");
    }
    slowloris.abort();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let fx = Fixture::new().await;
    let mut config = token_config();
    config.header_timeout = Duration::from_millis(500);
    let server = fx.serve(config).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /api/tasks HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buffer = vec![0u8; 64 * 1024];
    let read = stream.read(&mut buffer).await.expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    // Kept alive for a next request, but not for ever.
    let started = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await, "never closed");
    assert!(started.elapsed() >= Duration::from_millis(300), "closed too early");
}

#[tokio::test]
async fn event_streams_past_their_cap_are_answered_busy() {
    let fx = Fixture::new().await;
    let mut config = token_config();
    config.max_event_streams = 2;
    let server = fx.serve(config).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/events", server.addr);
    let open = || http.get(&url).bearer_auth(TOKEN).send();
    let first = open().await.expect("connect");
    let second = open().await.expect("connect");
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open().await.expect("connect");
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: serde_json::Value = third.json().await.expect("json");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("2 event streams")), "{body}");
    // A plain request is not held up by the streams.
    let (status, _) = get_once(server.addr, "/api/tasks", TOKEN).await;
    assert_eq!(status, 200);
    drop(first);
    let started = Instant::now();
    loop {
        let again = open().await.expect("connect");
        if again.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

/// Runs `curl` as `nobody` (another Unix user than the tests'), returning the HTTP
/// status it got. `setpriv` is part of util-linux; without it this fails rather
/// than skipping, so CI cannot pass without testing the second user.
pub fn curl_as_nobody(args: &[&str]) -> String {
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "curl", "-s"])
        .args(["-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(args)
        .output()
        .expect("setpriv (util-linux) and curl must be installed to test a second Unix user");
    assert!(
        output.status.success(),
        "setpriv/curl failed (the tests must run as root to switch users): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn another_unix_user_can_neither_create_nor_read_tasks_without_the_token() {
    let fx = Fixture::new().await;
    let server = fx.serve(token_config()).await;
    let base = format!("http://{}", server.addr);
    let spec = serde_json::json!({
        "spec": format!("name: x\nworkspace: {}\ngoal: g\nchecks:\n  - run: \"id > /tmp/pwned\"\n", fx.ws())
    })
    .to_string();
    let tasks = format!("{base}/api/tasks");
    let (post, get, with_token) = tokio::task::spawn_blocking(move || {
        let post = curl_as_nobody(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &spec,
            &tasks,
        ]);
        let get = curl_as_nobody(&[&tasks]);
        let authorization = format!("Authorization: Bearer {TOKEN}");
        let with_token = curl_as_nobody(&["-H", &authorization, &tasks]);
        (post, get, with_token)
    })
    .await
    .expect("join");
    assert_eq!(post, "401", "a task created by another user");
    assert_eq!(get, "401", "tasks read by another user");
    assert_eq!(with_token, "200", "the other user reaches the port: the token is what stops it");
    let stored = fx.state.store().list_tasks(&TaskQuery::newest(10)).await.expect("list");
    assert!(stored.is_empty(), "{stored:?}");
}

#[tokio::test]
async fn today_s_load_still_passes_under_the_caps() {
    let fx = Fixture::new().await;
    for n in 0..20 {
        fx.create_prompt_task(&format!("task {n}")).await;
    }
    let server = fx.serve(token_config()).await;
    let base = format!("http://{}", server.addr);

    // 100 event streams, half of which are never read.
    let mut streams = Vec::new();
    let mut readers = Vec::new();
    for n in 0..100 {
        let response = reqwest::Client::new()
            .get(format!("{base}/api/events"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("connect");
        assert_eq!(response.status(), 200, "stream {n}");
        if n % 2 == 0 {
            streams.push(response);
        } else {
            readers.push(tokio::spawn(async move {
                let mut body = response.bytes_stream();
                while let Some(Ok(_)) = futures::StreamExt::next(&mut body).await {}
            }));
        }
    }
    // 2 x 100 keep-alive clients, each with its own connection.
    let mut workers = Vec::new();
    for path in ["/api/tasks", "/api/state"] {
        for _ in 0..100 {
            let url = format!("{base}{path}");
            workers.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut errors = 0;
                for _ in 0..10 {
                    match client.get(&url).bearer_auth(TOKEN).send().await {
                        Ok(reply) if reply.status() == 200 => {
                            let _ = reply.bytes().await;
                        }
                        _ => errors += 1,
                    }
                }
                errors
            }));
        }
    }
    // A plain request meanwhile is not held up.
    let started = Instant::now();
    let (status, _) = get_once(server.addr, "/api/tasks?limit=1", TOKEN).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let mut errors = 0;
    for worker in workers {
        errors += worker.await.expect("worker");
    }
    assert_eq!(errors, 0, "requests failed under load");
    for reader in readers {
        reader.abort();
    }
    drop(streams);
}
