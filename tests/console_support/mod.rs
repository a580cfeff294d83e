//! A sender, a receiver that answers as told, and the console, all on
//! loopback: shared by the console's API and browser tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use webhook_guard::sender::{AddressPolicy, MemoryStore, RetryPolicy, Sender, SenderHandle};

/// The body the failing endpoint answers with: markup that must never run.
pub(crate) const HOSTILE_BODY: &str = "<script>window.__injected = 1; alert('xss')</script><img src=x onerror=\"window.__injected = 2\">";

/// A receiver with `/ok` (200) and `/flaky` (500 with [`HOSTILE_BODY`]
/// until [`Receiver::heal`]).
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) healed: Arc<AtomicBool>,
    pub(crate) ok_hits: Arc<AtomicUsize>,
    pub(crate) flaky_hits: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }
}

async fn ok(State(r): State<Receiver>) -> (StatusCode, &'static str) {
    r.ok_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, "thanks")
}

async fn flaky(State(r): State<Receiver>) -> (StatusCode, &'static str) {
    r.flaky_hits.fetch_add(1, Ordering::SeqCst);
    if r.healed.load(Ordering::SeqCst) {
        (StatusCode::OK, "recovered")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, HOSTILE_BODY)
    }
}

/// Serves `app` on 127.0.0.1 (a free port); returns `http://127.0.0.1:port`.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub(crate) struct Setup {
    pub(crate) sender: Sender<MemoryStore>,
    pub(crate) handle: SenderHandle,
    pub(crate) receiver: Receiver,
    pub(crate) receiver_url: String,
}

/// A started sender that may reach loopback, with no retries (a failed
/// attempt goes straight to the dead letter queue), and a receiver.
pub(crate) async fn setup() -> Setup {
    let receiver = Receiver::default();
    let app = Router::new()
        .route("/ok", post(ok))
        .route("/flaky", post(flaky))
        .with_state(receiver.clone());
    let receiver_url = serve(app).await;
    let sender = Sender::builder(MemoryStore::new())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .retry(RetryPolicy::none())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let handle = sender.start();
    Setup {
        sender,
        handle,
        receiver,
        receiver_url,
    }
}

/// Sends `method url` with exactly these extra headers and `body`;
/// returns the status, the content type and the body as JSON (or as a
/// JSON string when it is not JSON).
pub(crate) async fn raw(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.body(body.to_owned()).send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = res.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, ct, v)
}
