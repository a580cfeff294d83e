//! The `testing` feature: signed requests built in one line pass `VerifyLayer`,
//! for every scheme, and tampering with them is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::post;
use http::{HeaderName, HeaderValue, StatusCode};
use time::macros::datetime;
use tower::ServiceExt;
use webhook_guard::event::{Envelope, Event, IngestionCompleted};
use webhook_guard::testing::{FixedClock, SignedRequest, SignedRequestError, signed_request};
use webhook_guard::{Scheme, SecretSet, Verified, VerifyErrorKind, VerifyLayer, Webhook};

const NOW: i64 = 1_736_937_000; // 2025-01-15T10:30:00Z

fn event() -> Envelope {
    Envelope::new(
        "tenant_1",
        datetime!(2025-01-15 10:30 UTC),
        IngestionCompleted::new("job_1", "sales", 10, std::time::Duration::from_millis(5)),
    )
}

async fn handler(v: Verified, Webhook(event): Webhook<Event>) -> String {
    format!("{} {}", v.id(), event.event_type())
}

fn app(scheme: Scheme, secrets: &SecretSet, clock: Option<i64>) -> Router {
    let mut layer = VerifyLayer::new(secrets.clone()).scheme(scheme);
    if let Some(now) = clock {
        layer = layer.clock(FixedClock::at(now));
    }
    Router::new().route("/webhooks", post(handler)).layer(layer)
}

async fn text(res: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn one_line_request_passes_with_the_wall_clock() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let req = signed_request(&Scheme::native(), &secrets, &event()).unwrap();
    assert_eq!(req.headers()["content-type"], "application/json");
    let res = app(Scheme::native(), &secrets, None)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.ends_with(" ingestion.completed"));
}

#[tokio::test]
async fn every_scheme_signs_through_the_same_builder() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let names = webhook_guard::scheme::SCHEME_NAMES
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        let scheme = Scheme::from_name(name).unwrap();
        // The envelope's own timestamp is NOW, which body-only mode checks.
        let req = SignedRequest::new(&scheme, &secrets)
            .id("evt_kit")
            .timestamp(NOW)
            .json(&event())
            .unwrap();
        let res = app(scheme.clone(), &secrets, Some(NOW + 10))
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let body = text(res).await;
        assert!(body.ends_with(" ingestion.completed"), "{name}: {body}");
    }
}

#[tokio::test]
async fn ids_are_fresh_unless_chosen() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let scheme = Scheme::native();
    let a = signed_request(&scheme, &secrets, &event()).unwrap();
    let b = signed_request(&scheme, &secrets, &event()).unwrap();
    assert_ne!(a.headers()["x-webhook-id"], b.headers()["x-webhook-id"]);
    let c = SignedRequest::new(&scheme, &secrets)
        .id("evt_same")
        .json(&event())
        .unwrap();
    let res = app(scheme, &secrets, None).oneshot(c).await.unwrap();
    assert_eq!(text(res).await, "evt_same ingestion.completed");
}

#[tokio::test]
async fn stale_wrong_secret_and_tampered_requests_are_refused() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let scheme = Scheme::native();
    let router = app(scheme.clone(), &secrets, Some(NOW));

    let stale = SignedRequest::new(&scheme, &secrets)
        .timestamp(NOW - 301)
        .json(&event())
        .unwrap();
    let res = router.clone().oneshot(stale).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions()
            .get::<webhook_guard::VerifyError>()
            .unwrap()
            .kind(),
        VerifyErrorKind::TimestampTooOld
    );

    let other = SecretSet::single("not-the-secret").unwrap();
    let forged = SignedRequest::new(&scheme, &other)
        .timestamp(NOW)
        .json(&event())
        .unwrap();
    let res = router.clone().oneshot(forged).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let tampered = SignedRequest::new(&scheme, &secrets)
        .timestamp(NOW)
        .header(
            HeaderName::from_static("x-webhook-id"),
            HeaderValue::from_static("evt_other"),
        )
        .json(&event())
        .unwrap();
    let res = router.oneshot(tampered).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn raw_bytes_and_uris() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let scheme = Scheme::native();
    let req = SignedRequest::new(&scheme, &secrets)
        .uri("/hooks/in?source=test")
        .timestamp(NOW)
        .bytes(&b"{\"event\":\"x.y\"}"[..])
        .unwrap();
    assert_eq!(req.uri(), "/hooks/in?source=test");
    assert!(req.headers().get("content-type").is_none());
    let router = Router::new()
        .route("/hooks/in", post(handler))
        .layer(VerifyLayer::new(secrets.clone()).clock(FixedClock::at(NOW)));
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.ends_with(" x.y"));
}

#[test]
fn signing_failures_are_errors_not_panics() {
    let secrets = SecretSet::single("kit-secret").unwrap();
    let err = SignedRequest::new(&Scheme::native(), &secrets)
        .id("has space")
        .json(&event())
        .unwrap_err();
    assert!(matches!(err, SignedRequestError::Sign(_)), "{err}");
    let err = SignedRequest::new(&Scheme::native(), &secrets)
        .uri("not a uri")
        .json(&event())
        .unwrap_err();
    assert!(matches!(err, SignedRequestError::Http(_)), "{err}");
    let not_json = std::collections::BTreeMap::from([(vec![1u8], 1u8)]);
    let err = signed_request(&Scheme::native(), &secrets, &not_json).unwrap_err();
    assert!(matches!(err, SignedRequestError::Serialize(_)), "{err}");
}
