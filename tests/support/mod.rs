//! Test support: real axum servers on loopback, signed deliveries, and the
//! scenarios every idempotency store must pass.
#![allow(dead_code, unreachable_pub)]

pub mod postgres_server;
pub mod redis_server;
pub mod scenarios;
pub mod scope_scenarios;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use http::HeaderMap;
use webhook_guard::idempotency::DUPLICATE_HEADER;
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

/// The instant every test server believes it is.
pub const NOW: i64 = 1_700_000_000;
pub const BODY: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2023-11-14T22:13:20Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz"}}"#;

pub fn secrets() -> SecretSet {
    SecretSet::single("idempotency-test-secret").expect("secret")
}

pub fn verify_layer() -> VerifyLayer {
    VerifyLayer::new(secrets()).clock(FixedClock::at(NOW))
}

/// Headers of a native-scheme delivery of event `id`.
pub fn signed(id: &str) -> HeaderMap {
    Scheme::native()
        .sign(&secrets(), &Message::new(id, NOW, BODY))
        .expect("sign")
}

/// Serves `router` on 127.0.0.1:0 until the test ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

/// Counts handler calls.
#[derive(Clone, Default, Debug)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    /// Records a call; returns how many there were including this one.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a delivery got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub duplicate: bool,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn processed(&self) -> bool {
        self.status == 200 && !self.duplicate
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// POSTs the signed event `id` to `http://{addr}{path}`.
pub async fn deliver(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    id: &str,
) -> reqwest::Result<Answer> {
    deliver_with(client, addr, path, signed(id)).await
}

pub async fn deliver_with(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
) -> reqwest::Result<Answer> {
    deliver_body(client, addr, path, headers, BODY).await
}

/// POSTs `body` with `headers` to `http://{addr}{path}`; `path` is sent as
/// written (percent-encoding included).
pub async fn deliver_body(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
    body: &'static [u8],
) -> reqwest::Result<Answer> {
    let res = client
        .post(format!("http://{addr}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let duplicate = res
        .headers()
        .get(DUPLICATE_HEADER)
        .is_some_and(|v| v == "true");
    let retry_after = res
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = res.text().await?;
    Ok(Answer {
        status,
        duplicate,
        retry_after,
        body,
    })
}
