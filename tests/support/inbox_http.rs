//! An inbox over real HTTP, for the inbox tests: served behind
//! `VerifyLayer` on loopback, fed native-scheme deliveries signed now.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use http::HeaderMap;
use webhook_guard::inbox::{Inbox, InboxStore};
use webhook_guard::{Message, Scheme, SecretSet, VerifyLayer};

/// The secret the served inboxes verify with.
pub const SECRET: &str = "inbox-test-secret-of-at-least-24-bytes";

/// Serves `inbox` behind `VerifyLayer` (with [`SECRET`]) on a free loopback
/// port until the test ends; returns the webhook URL.
pub async fn serve_inbox<S: InboxStore>(inbox: &Inbox<S>) -> String {
    let app = Router::new()
        .route("/webhooks", post(|| async { "the inbox answers" }))
        .layer(inbox.layer())
        .layer(VerifyLayer::new(SecretSet::single(SECRET).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/webhooks")
}

/// The native-scheme headers of `body` sent now as event `id`.
pub fn signed_now(id: &str, body: &str) -> HeaderMap {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Scheme::native()
        .sign(
            &SecretSet::single(SECRET).unwrap(),
            &Message::new(id, i64::try_from(now).unwrap(), body.as_bytes()),
        )
        .unwrap()
}
