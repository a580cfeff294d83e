//! How to test your webhook handlers: build signed requests with the
//! `testing` feature and send them through your router with `oneshot`.
//!
//! Run the tests of this example with
//! `cargo test --features testing --example testing_handlers`,
//! or run it with `cargo run --features testing --example testing_handlers`.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use webhook_guard::event::Event;
use webhook_guard::{SecretSet, Verified, VerifyLayer, Webhook};

/// The handler under test: counts rows of completed ingestions, accepts
/// everything else (unknown types included) without work.
async fn on_event(verified: Verified, Webhook(event): Webhook<Event>) -> (StatusCode, String) {
    match event {
        Event::IngestionCompleted(done) => (
            StatusCode::OK,
            format!(
                "{}: {} rows into {}",
                verified.id(),
                done.rows_ingested,
                done.table
            ),
        ),
        Event::IngestionFailed(failed) => (StatusCode::OK, format!("job {} failed", failed.job_id)),
        other => (
            StatusCode::ACCEPTED,
            format!("ignored {}", other.event_type()),
        ),
    }
}

/// The application's router, exactly as `main` builds it.
fn app(layer: VerifyLayer) -> Router {
    Router::new()
        .route("/webhooks", post(on_event))
        .layer(layer)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Duration;
    use time::macros::datetime;
    use tower::ServiceExt;
    use webhook_guard::event::{Envelope, IngestionCompleted};
    use webhook_guard::testing::signed_request;

    let secrets = SecretSet::single("whsec-for-tests")?;
    let event = Envelope::new(
        "tenant_abc123",
        datetime!(2025-01-15 10:30 UTC),
        IngestionCompleted::new("job_xyz", "sales_data", 15_234, Duration::from_millis(3200)),
    );
    let req = signed_request(&webhook_guard::Scheme::native(), &secrets, &event)?;
    let res = app(VerifyLayer::new(secrets)).oneshot(req).await?;
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024).await?;
    println!("{status} {}", String::from_utf8_lossy(&body));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::to_bytes;
    use http::StatusCode;
    use serde_json::json;
    use time::macros::datetime;
    use tower::ServiceExt;
    use webhook_guard::event::{Envelope, Event, IngestionCompleted};
    use webhook_guard::testing::{FixedClock, SignedRequest};
    use webhook_guard::{Scheme, SecretSet, VerifyLayer};

    use super::app;

    const NOW: i64 = 1_736_937_000; // 2025-01-15T10:30:00Z

    fn secrets() -> SecretSet {
        SecretSet::single("whsec-for-tests").unwrap()
    }

    /// The receiver on a fixed clock, so tests never depend on the wall clock.
    fn test_app() -> axum::Router {
        app(VerifyLayer::new(secrets()).clock(FixedClock::at(NOW)))
    }

    async fn body_text(res: axum::response::Response) -> String {
        String::from_utf8(to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn completed_ingestion_is_counted() {
        let event = Envelope::new(
            "tenant_abc123",
            datetime!(2025-01-15 10:30 UTC),
            IngestionCompleted::new("job_xyz", "sales_data", 15_234, Duration::from_millis(3200)),
        );
        let req = SignedRequest::new(&Scheme::native(), &secrets())
            .id("evt_1")
            .timestamp(NOW)
            .json(&event)
            .unwrap();
        let res = test_app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_text(res).await, "evt_1: 15234 rows into sales_data");
    }

    #[tokio::test]
    async fn unknown_event_types_are_accepted() {
        // Any JSON works as the body: here a type this version does not know.
        let body = json!({
            "event": "model.trained", "timestamp": "2025-01-15T10:30:00Z",
            "tenantId": "tenant_abc123", "data": {"modelId": "m_1"}
        });
        let req = SignedRequest::new(&Scheme::native(), &secrets())
            .timestamp(NOW)
            .json(&body)
            .unwrap();
        let res = test_app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(body_text(res).await, "ignored model.trained");
    }

    #[tokio::test]
    async fn a_payload_of_the_wrong_shape_is_422() {
        let body = json!({"event": "ingestion.completed", "data": {"jobId": "j"}});
        let req = SignedRequest::new(&Scheme::native(), &secrets())
            .timestamp(NOW)
            .json(&body)
            .unwrap();
        let res = test_app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: serde_json::Value = serde_json::from_str(&body_text(res).await).unwrap();
        assert_eq!(problem["path"], "data");
    }

    #[tokio::test]
    async fn a_request_signed_with_another_secret_is_401() {
        let other = SecretSet::single("someone-else").unwrap();
        let req = SignedRequest::new(&Scheme::native(), &other)
            .timestamp(NOW)
            .json(&Event::unknown("x", None))
            .unwrap();
        let res = test_app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
