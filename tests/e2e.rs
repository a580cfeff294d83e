//! End to end: a real axum server on a loopback port behind `VerifyLayer`,
//! real HTTP/1.1 requests from reqwest and from python3's urllib, the system
//! clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, StatusCode};
use http_body::{Frame, SizeHint};
use tower::util::MapRequestLayer;
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
    addr: SocketAddr,
    seen: Seen,
    read: Arc<AtomicUsize>,
    client: reqwest::Client,
}

async fn start() -> Server {
    start_with(VerifyLayer::new(SecretSet::single(SECRET).unwrap()).body_limit(LIMIT)).await
}

/// A server behind `layer`, which counts the request body bytes it reads
/// (in `Server::read`).
async fn start_with(layer: VerifyLayer) -> Server {
    let seen = Seen::default();
    let state = seen.clone();
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
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
        .layer(layer)
        .layer(MapRequestLayer::new(move |req: http::Request<Body>| {
            let read = counter.clone();
            req.map(|inner| Body::new(CountingBody { inner, read }))
        }));
    // A receive buffer of a size a real network path holds in flight: the
    // loopback's own grows to many MiB and would take a whole oversized
    // body before the server answers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(256 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url: format!("http://{addr}/webhooks"),
        addr,
        seen,
        read,
        // Loopback only: never through a proxy from the environment.
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// A request body that counts the bytes read from it.
struct CountingBody {
    inner: Body,
    read: Arc<AtomicUsize>,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            self.read
                .fetch_add(data.map_or(0, Bytes::len), Ordering::SeqCst);
        }
        Poll::Ready(frame)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

// ---------------------------------------------------------------------------
// A 413 reaches clients that write the whole request before reading.

/// 2 MiB: over `LIMIT`, far more than a socket takes before the server must
/// read, and within the default drain cap.
const OVERSIZED: usize = 2 * 1024 * 1024;

/// Python's `http.client`, which writes the whole request (headers, then the
/// body with `sendall`) before it reads the answer. Prints the status and
/// the body, or the error class and message.
const PYTHON_WRITE_FIRST: &str = r#"
import http.client, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection(host, port, timeout=20)
try:
    conn.request("POST", "/webhooks", body=b"x" * size, headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    print(res.status)
    print(res.read().decode())
except OSError as err:
    print(type(err).__name__)
    print(err)
"#;

#[tokio::test]
async fn python_client_that_writes_first_reads_the_413() {
    let server = start().await;
    let out = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_WRITE_FIRST, "127.0.0.1"])
        .arg(server.addr.port().to_string())
        .arg(OVERSIZED.to_string())
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = stdout.split_once('\n').unwrap();
    assert_eq!(status, "413", "{stdout}");
    assert!(body.contains("2097152 bytes (Content-Length)"), "{body}");
    assert_eq!(server.calls(), 0);
    // The whole body was read (and thrown away), nothing more.
    assert_eq!(server.read.load(Ordering::SeqCst), OVERSIZED);
}

/// Writes `head` and then `body` in pieces on a fresh connection (stopping
/// at the first write error), then reads until the server closes. Returns
/// the bytes written, the write error if any, and what was read (or the
/// read error).
fn write_then_read(
    addr: SocketAddr,
    head: &str,
    body: impl Iterator<Item = Vec<u8>>,
) -> (usize, Option<io::Error>, io::Result<Vec<u8>>) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut written = 0;
    let mut write_error = conn.write_all(head.as_bytes()).err();
    for piece in body {
        if write_error.is_some() {
            break;
        }
        match conn.write_all(&piece) {
            Ok(()) => written += piece.len(),
            Err(err) => write_error = Some(err),
        }
    }
    let mut response = Vec::new();
    let read = conn.read_to_end(&mut response).map(|_| response);
    (written, write_error, read)
}

fn head(extra: &str) -> String {
    format!(
        "POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Connection: close\r\n{extra}\r\n"
    )
}

/// `total` bytes as chunked transfer coding in 64 KiB chunks, with the end.
fn chunked_pieces(total: usize) -> impl Iterator<Item = Vec<u8>> {
    const CHUNK: usize = 64 * 1024;
    (0..total.div_ceil(CHUNK))
        .map(move |i| {
            let len = CHUNK.min(total - i * CHUNK);
            let mut piece = format!("{len:x}\r\n").into_bytes();
            piece.extend(std::iter::repeat_n(b'x', len));
            piece.extend_from_slice(b"\r\n");
            piece
        })
        .chain(std::iter::once(b"0\r\n\r\n".to_vec()))
}

fn assert_413(read: io::Result<Vec<u8>>) {
    let response = read.unwrap_or_else(|e| panic!("the 413 was lost: {e}"));
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("limit"), "{text}");
}

#[tokio::test]
async fn rust_client_that_writes_first_reads_the_413() {
    let server = start().await;
    let addr = server.addr;
    // With a length ...
    let (written, write_error, read) = tokio::task::spawn_blocking(move || {
        let head = head(&format!("Content-Length: {OVERSIZED}\r\n"));
        write_then_read(addr, &head, std::iter::once(vec![b'x'; OVERSIZED]))
    })
    .await
    .unwrap();
    assert!(write_error.is_none(), "{write_error:?}");
    assert_eq!(written, OVERSIZED);
    assert_413(read);
    // ... and chunked, where the limit is found while reading.
    let (written, write_error, read) = tokio::task::spawn_blocking(move || {
        let head = head("Transfer-Encoding: chunked\r\n");
        write_then_read(addr, &head, chunked_pieces(OVERSIZED))
    })
    .await
    .unwrap();
    assert!(write_error.is_none(), "{write_error:?}");
    assert!(written > OVERSIZED, "{written}");
    assert_413(read);
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a_body_far_over_the_drain_cap_is_cut_off() {
    const CAP: usize = 256 * 1024;
    let layer = VerifyLayer::new(SecretSet::single(SECRET).unwrap())
        .body_limit(LIMIT)
        .drain_rejected_body(CAP, Duration::from_secs(5));
    let server = start_with(layer).await;
    let addr = server.addr;
    // An endless chunked body (stopped at 256 MiB): the server reads the
    // limit and the cap, then closes, and the client's writes fail.
    let offered = 256 * 1024 * 1024;
    let (written, write_error, _) = tokio::task::spawn_blocking(move || {
        write_then_read(
            addr,
            &head("Transfer-Encoding: chunked\r\n"),
            chunked_pieces(offered),
        )
    })
    .await
    .unwrap();
    assert!(write_error.is_some(), "the server read all {written} bytes");
    assert!(written < offered / 4, "{written}");
    let read = server.read.load(Ordering::SeqCst);
    assert!(
        read <= LIMIT + CAP + 64 * 1024,
        "the server read {read} bytes"
    );
    assert!(read > LIMIT + CAP / 2, "the server read only {read} bytes");

    // A declared length beyond the cap is not read at all.
    server.read.store(0, Ordering::SeqCst);
    let (_, write_error, _) = tokio::task::spawn_blocking(move || {
        let head = head(&format!("Content-Length: {offered}\r\n"));
        write_then_read(addr, &head, (0..4096).map(|_| vec![b'x'; 64 * 1024]))
    })
    .await
    .unwrap();
    assert!(write_error.is_some());
    assert_eq!(server.read.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_client_is_dropped_after_the_drain_time() {
    let cap = Duration::from_secs(1);
    let layer = VerifyLayer::new(SecretSet::single(SECRET).unwrap())
        .body_limit(LIMIT)
        .drain_rejected_body(4 * 1024 * 1024, cap);
    let server = start_with(layer).await;
    let addr = server.addr;
    let (answered, closed) = tokio::task::spawn_blocking(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let start = Instant::now();
        conn.write_all(head(&format!("Content-Length: {OVERSIZED}\r\n")).as_bytes())
            .unwrap();
        // The answer comes at once, before the body ...
        let mut status = [0; 12];
        conn.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 413");
        let answered = start.elapsed();
        // ... then one byte every 50 ms keeps the drain busy until its time
        // is up and the server closes the connection.
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if conn.write_all(b"x").is_err() || start.elapsed() > Duration::from_secs(15) {
                return (answered, start.elapsed());
            }
        }
    })
    .await
    .unwrap();
    assert!(answered < cap / 2, "answered after {answered:?}");
    assert!(closed >= cap, "closed after {closed:?}");
    assert!(closed < cap * 4, "closed after {closed:?}");
}

#[tokio::test]
async fn expect_100_continue_gets_the_413_without_sending_the_body() {
    let server = start().await;
    let addr = server.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let head = head(&format!(
            "Content-Length: {OVERSIZED}\r\nExpect: 100-continue\r\n"
        ));
        conn.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        conn.read_to_end(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(server.read.load(Ordering::SeqCst), 0);
}
