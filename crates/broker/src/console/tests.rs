use std::collections::BTreeMap;

use rivulet_metadata::NewTopic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::BrokerConfig;

#[test]
fn request_lines_parse_and_malformed_ones_are_refused() {
    let line = parse_request_line(b"GET /api/topics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(line, RequestLine { method: "GET", path: "/api/topics" });
    assert_eq!(parse_request_line(b"HEAD / HTTP/1.0\n\n").unwrap().method, "HEAD");
    for bad in [
        &b"GET /\r\n\r\n"[..],
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET http://elsewhere/ HTTP/1.1\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"G\xffT / HTTP/1.1\r\n\r\n",
        b" / HTTP/1.1\r\n\r\n",
        b"no line end",
        b"",
    ] {
        assert_eq!(parse_request_line(bad), Err(RequestError::Malformed), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn responses_carry_their_length_and_head_drops_the_body() {
    let response = Response::text("404 Not Found", "not found");
    let full = String::from_utf8(response.encode(false)).unwrap();
    assert!(full.starts_with("HTTP/1.1 404 Not Found\r\n"), "{full}");
    assert!(full.contains("Content-Length: 10\r\n"), "{full}");
    assert!(full.ends_with("\r\n\r\nnot found\n"), "{full}");
    let refused = String::from_utf8(Response::text("405 Method Not Allowed", "no").encode(false)).unwrap();
    assert!(refused.contains("\r\nAllow: GET, HEAD\r\n\r\nno\n"), "{refused}");
    let head = String::from_utf8(response.encode(true)).unwrap();
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    assert!(head.contains("Content-Length: 10\r\n"), "{head}");
}

/// Sends `request` raw and returns the status line and body.
async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer (and close) before a large request is fully written.
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// A real broker on a temporary directory, a topic, and the console on a free port:
/// the JSON documents describe the topic, the page and its script are served, and
/// requests the console does not serve get 4xx answers, not a dropped server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_the_page_and_documents_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let props: BTreeMap<String, String> = [
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", dir.path().to_str().unwrap()),
        ("node.id", "7"),
        ("rivulet.console.listener", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (config, _) = BrokerConfig::from_properties(props).unwrap();
    let broker = Broker::open(config).await.unwrap();
    let configs = [("retention.ms".to_string(), "3600000".to_string())].into_iter().collect();
    broker
        .create_topic(NewTopic {
            name: "console-orders".into(),
            partitions: 3,
            replication_factor: 1,
            configs,
            internal: false,
            assignment: vec![],
        })
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tokio::spawn(serve(listener, Arc::downgrade(&broker)));

    let (status, body) = exchange(address, b"GET /api/topics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["answered_by"]["node_id"], 7);
    let topic = doc["topics"].as_array().unwrap().iter().find(|t| t["name"] == "console-orders").unwrap();
    assert_eq!(topic["retention_ms"], 3_600_000);
    assert_eq!(topic["cleanup_policy"], "delete");
    let partitions = topic["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    assert_eq!(partitions[2]["partition"], 2);
    assert_eq!(partitions[2]["leader"], 7);
    assert_eq!(partitions[2]["isr"], serde_json::json!([7]));
    assert_eq!(partitions[2]["local"], true);
    assert_eq!(partitions[2]["log_end_offset"], 0);

    let (status, body) = exchange(address, b"GET /api/cluster HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["brokers"][0]["node_id"], 7);
    assert_eq!(doc["brokers"][0]["is_this_broker"], true);
    assert_eq!(doc["controller"], 7);

    for path in ["/api/groups", "/api/transactions", "/api/metrics"] {
        let (status, body) = exchange(address, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes()).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["answered_by"]["node_id"], 7, "{path}");
    }

    let (status, body) = exchange(address, b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("<script src=\"/console.js\""), "{body}");
    let (status, body) = exchange(address, b"GET /console.js HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("/api/topics"));
    let (status, body) = exchange(address, b"HEAD /api/topics HTTP/1.1\r\n\r\n").await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));

    assert_eq!(exchange(address, b"GET /nope HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 404 Not Found");
    assert_eq!(exchange(address, b"DELETE /api/topics HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(exchange(address, b"\x16\x03\x01 garbage\r\n\r\n").await.0, "HTTP/1.1 400 Bad Request");
    // Four times the limit: answered once the limit is passed, the rest drained so the
    // answer is not lost to a reset.
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(4 * MAX_REQUEST_HEAD_BYTES));
    assert_eq!(exchange(address, huge.as_bytes()).await.0, "HTTP/1.1 431 Request Header Fields Too Large");
    // A client that closes without a request gets nothing, and the server carries on.
    drop(TcpStream::connect(address).await.unwrap());
    assert_eq!(exchange(address, b"GET /api/cluster HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 200 OK");

    serving.abort();
    broker.shutdown();
}
