//! End to end: a real axum server on a loopback port behind `VerifyLayer`,
//! real HTTP/1.1 requests from reqwest and from python3's urllib, the system
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, StatusCode};
use webhook_guard::problem::PROBLEM_JSON;
use webhook_guard::{Message, Scheme, SecretSet, Verified, VerifyLayer};

const SECRET: &str = "e2e-secret-a41f";
const LIMIT: usize = 64 * 1024;
const PLATFORM_BODY: &str = r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    let secrets = SecretSet::single(SECRET).unwrap();
    Scheme::native()
        .sign(&secrets, &Message::new(id, ts, body))
        .unwrap()
}

/// What the handler saw.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<(String, Bytes)>>>,
}

struct Server {
    url: String,
    seen: Seen,
    client: reqwest::Client,
}

async fn start() -> Server {
    let seen = Seen::default();
    let state = seen.clone();
    let app = Router::new()
        .route(
            "/webhooks",
            post(move |verified: Verified, body: Bytes| {
                let state = state.clone();
                async move {
                    state.calls.fetch_add(1, Ordering::SeqCst);
                    state
                        .bodies
                        .lock()
                        .unwrap()
                        .push((verified.id().to_owned(), body.clone()));
                    body
                }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()).body_limit(LIMIT));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url: format!("http://{addr}/webhooks"),
        seen,
        // Loopback only: never through a proxy from the environment.
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl Server {
    fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }

    async fn post(&self, headers: HeaderMap, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(&self.url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// Checks a problem response and returns its JSON.
async fn problem(res: reqwest::Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()[http::header::CONTENT_TYPE], PROBLEM_JSON);
    let text = res.text().await.unwrap();
    assert!(!text.contains(SECRET), "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn valid_delivery_reaches_the_handler_byte_for_byte() {
    let server = start().await;
    let ts = now();
    let res = server
        .post(
            sign("evt_e2e_1", ts, PLATFORM_BODY.as_bytes()),
            PLATFORM_BODY,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), PLATFORM_BODY.as_bytes());
    assert_eq!(server.calls(), 1);
    let (id, body) = server.seen.bodies.lock().unwrap()[0].clone();
    assert_eq!(id, "evt_e2e_1");
    assert_eq!(body, PLATFORM_BODY.as_bytes());

    // Binary bodies too.
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let res = server
        .post(sign("evt_e2e_2", ts, &binary), binary.clone())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), binary);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn tampered_body_is_401() {
    let server = start().await;
    let headers = sign("evt_e2e_t", now(), PLATFORM_BODY.as_bytes());
    let tampered = PLATFORM_BODY.replace("15234", "15235");
    let res = server.post(headers, tampered).await;
    let json = problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(json["type"].as_str().unwrap().ends_with("InvalidSignature"));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn stale_delivery_is_401() {
    let server = start().await;
    let headers = sign("evt_e2e_s", now() - 3600, PLATFORM_BODY.as_bytes());
    let res = server.post(headers, PLATFORM_BODY).await;
    let json = problem(res, StatusCode::UNAUTHORIZED).await;
    assert!(json["type"].as_str().unwrap().ends_with("TimestampTooOld"));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn content_length_over_the_limit_is_413() {
    let server = start().await;
    let body = vec![b'z'; LIMIT + 1];
    let headers = sign("evt_e2e_big", now(), &body);
    let res = server.post(headers, body).await;
    let json = problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("(Content-Length)"),
        "{json}"
    );
    assert_eq!(server.calls(), 0);
}

/// A chunked body (no Content-Length) of `chunks` chunks of `size` bytes;
/// counts how many chunks the client has pulled.
fn chunked(chunks: usize, size: usize, pulled: Arc<AtomicUsize>) -> (reqwest::Body, Vec<u8>) {
    let data: Vec<Bytes> = (0..chunks)
        .map(|i| Bytes::from(vec![(i % 251) as u8; size]))
        .collect();
    let whole = data.concat();
    let body = reqwest::Body::wrap_stream(stream::iter(data.into_iter().map(move |c| {
        pulled.fetch_add(1, Ordering::SeqCst);
        Ok::<_, io::Error>(c)
    })));
    (body, whole)
}

#[tokio::test]
async fn chunked_body_under_the_limit_is_200() {
    let server = start().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    let (body, whole) = chunked(15, 4096, pulled.clone());
    assert!(whole.len() < LIMIT);
    let res = server.post(sign("evt_e2e_c", now(), &whole), body).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), whole);
    assert_eq!(pulled.load(Ordering::SeqCst), 15);
    assert_eq!(server.seen.bodies.lock().unwrap()[0].1, whole);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413_and_not_read_to_the_end() {
    let server = start().await;
    let pulled = Arc::new(AtomicUsize::new(0));
    // 32 MiB offered against a 64 KiB limit: far more than the socket
    // buffers between client and server hold.
    let (chunks, size) = (2048, 16 * 1024);
    let (body, whole) = chunked(chunks, size, pulled.clone());
    let headers = sign("evt_e2e_stream", now(), &whole);
    let res = server.post(headers, body).await;
    let json = problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 65536 bytes"),
        "{json}"
    );
    assert_eq!(server.calls(), 0);
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(pulled < chunks, "the client sent all {pulled} chunks");
}

/// A sender that shares no code with this crate: Python's `hmac` and
/// `urllib`. Prints the status, then the response body as hex.
const PYTHON_SENDER: &str = r#"
import hashlib, hmac, sys, time, urllib.error, urllib.request
url, secret, tamper, body = sys.argv[1], sys.argv[2].encode(), sys.argv[3], bytes.fromhex(sys.argv[4])
ts = str(int(time.time()))
event_id = "evt_py_" + ts
sig = hmac.new(secret, event_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).hexdigest()
if tamper == "tamper":
    body = body.replace(b"15234", b"15235")
req = urllib.request.Request(url, data=body, method="POST", headers={
    "Content-Type": "application/json",
    "X-Webhook-Id": event_id,
    "X-Webhook-Timestamp": ts,
    "X-Webhook-Signature": "sha256=" + sig,
})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(req, timeout=10) as res:
        print(res.status)
        print(res.read().hex())
except urllib.error.HTTPError as err:
    print(err.code)
    print(err.read().hex())
"#;

async fn python_post(url: &str, tamper: bool, body: &[u8]) -> (u16, Vec<u8>) {
    let out = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_SENDER, url, SECRET])
        .arg(if tamper { "tamper" } else { "keep" })
        .arg(hex::encode(body))
        .output()
        .await
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let status = lines.next().unwrap().parse().unwrap();
    let body = hex::decode(lines.next().unwrap_or("")).unwrap();
    (status, body)
}

#[tokio::test]
async fn python_urllib_sender_is_accepted() {
    let server = start().await;
    let (status, echoed) = python_post(&server.url, false, PLATFORM_BODY.as_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&echoed));
    assert_eq!(echoed, PLATFORM_BODY.as_bytes());
    assert_eq!(server.calls(), 1);
    let (id, body) = server.seen.bodies.lock().unwrap()[0].clone();
    assert!(id.starts_with("evt_py_"), "{id}");
    assert_eq!(body, PLATFORM_BODY.as_bytes());

    let (status, problem) = python_post(&server.url, true, PLATFORM_BODY.as_bytes()).await;
    assert_eq!(status, 401);
    let json: serde_json::Value = serde_json::from_slice(&problem).unwrap();
    assert!(json["type"].as_str().unwrap().ends_with("InvalidSignature"));
    assert_eq!(server.calls(), 1);
}
