//! A verifying receiver on loopback whose first requests fail, for tests
//! that watch a sender deliver and retry.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use webhook_guard::{SecretSet, Verified, VerifyLayer};

/// Every verified request, in order: its headers and its `Verified`.
pub(crate) type Seen = Arc<Mutex<Vec<(HeaderMap, Verified)>>>;

/// Serves `POST /hook` on 127.0.0.1:0 behind a `VerifyLayer` with
/// `secret`. The first `fail_first` verified requests get a 503, the rest
/// a 200. Returns the URL and what it saw.
pub(crate) async fn flaky_receiver(secret: &str, fail_first: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, verified: Verified| {
                let s = Arc::clone(&s);
                async move {
                    let mut seen = s.lock().unwrap();
                    seen.push((headers, verified));
                    if seen.len() <= fail_first {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .layer(VerifyLayer::new(SecretSet::single(secret).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}
