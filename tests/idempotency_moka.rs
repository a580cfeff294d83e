//! Idempotency with the in-process moka store, through real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use support::{scenarios, scope_scenarios};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use webhook_guard::idempotency::{
    Begin, Idempotency, IdempotencyLayer, IdempotencyStore, MokaStore,
};
use webhook_guard::{ConfigError, FixedClock, ReplayWindow, Scheme, Verified, Verifier, Verify};

fn layer() -> IdempotencyLayer {
    IdempotencyLayer::new(MokaStore::new(10_000))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_call_the_handler_once() {
    scenarios::concurrent_deliveries_call_once(vec![layer()]).await;
}

#[tokio::test]
async fn failed_handler_is_retried_and_processed_once() {
    scenarios::failed_handler_is_retried(layer()).await;
}

#[tokio::test]
async fn done_ttl_expires() {
    scenarios::done_ttl_expires(layer()).await;
}

#[tokio::test]
async fn done_outlives_the_lease() {
    scenarios::done_outlives_the_lease(layer()).await;
}

#[tokio::test]
async fn lease_expires_after_a_crash() {
    scenarios::lease_expires_after_crash(layer()).await;
}

#[tokio::test]
async fn scopes_isolate() {
    scenarios::scopes_isolate(layer()).await;
}

#[tokio::test]
async fn panicking_handler_is_retried() {
    scenarios::panicking_handler_is_retried(layer()).await;
}

#[tokio::test]
async fn cancelled_delivery_is_retried() {
    scenarios::cancelled_delivery_is_retried(layer()).await;
}

#[tokio::test]
async fn duplicate_waits_for_in_flight() {
    scenarios::duplicate_waits_for_in_flight(layer()).await;
}

#[tokio::test]
async fn unsigned_headers_do_not_change_the_key() {
    scenarios::unsigned_headers_do_not_change_the_key(layer()).await;
}

#[tokio::test]
async fn percent_encoded_paths_are_one_route() {
    scope_scenarios::percent_encoded_paths_are_one_route(layer()).await;
}

#[tokio::test]
async fn query_string_does_not_change_the_key() {
    scope_scenarios::query_string_does_not_change_the_key(layer()).await;
}

#[tokio::test]
async fn nested_tenants_keep_their_keys_apart() {
    scope_scenarios::nested_tenants_keep_their_keys_apart(layer()).await;
}

#[tokio::test]
async fn shared_scope_keeps_senders_apart() {
    scope_scenarios::shared_scope_keeps_senders_apart(layer()).await;
}

#[tokio::test]
async fn one_secret_under_two_nests() {
    scope_scenarios::one_secret_under_two_nests(layer()).await;
}

#[tokio::test]
async fn unrouted_requests_share_one_scope() {
    scope_scenarios::unrouted_requests_share_one_scope(layer()).await;
}

#[tokio::test]
async fn a_rotation_keeps_one_identity_per_key_list() {
    scope_scenarios::a_rotation_keeps_one_identity_per_key_list(layer()).await;
}

#[tokio::test]
async fn tenant_keeps_the_keys_across_rotation() {
    scope_scenarios::tenant_keeps_the_keys_across_rotation(layer()).await;
}

/// `service` behind the verifying and idempotency layers over `store`, with
/// no axum routing.
fn unrouted<S>(store: &MokaStore, service: S) -> Verify<Idempotency<S>> {
    ServiceBuilder::new()
        .layer(support::verify_layer())
        .layer(IdempotencyLayer::new(store.clone()))
        .service(service)
}

/// The store key of the event `id` from [`support::signed`] when the layer
/// runs outside axum routing: the fixed scope, the identity of the secret
/// that verified it, the id.
fn unrouted_key(id: &str) -> String {
    let verified = Verifier::new(Scheme::native(), support::secrets())
        .replay_window(ReplayWindow::new().clock(FixedClock::at(support::NOW)))
        .verify(
            &support::signed(id),
            bytes::Bytes::from_static(support::BODY),
        )
        .unwrap();
    let verifier = verified.verifier().as_str();
    assert!(verifier.starts_with("hmac:"), "{verifier}");
    format!("10:(unrouted):{}:{verifier}:{id}", verifier.len())
}

/// The layer writes exactly the key [`unrouted_key`] names, so the tests
/// below that look keys up by it look at the right one.
#[tokio::test]
async fn unrouted_key_is_the_one_the_layer_writes() {
    let store = MokaStore::new(100);
    let svc = unrouted(
        &store,
        service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("processed")))
        }),
    );
    let res = svc.oneshot(signed_request("evt_key")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let begun = store
        .begin(&unrouted_key("evt_key"), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(begun, Begin::Done);
}

fn signed_request(id: &str) -> Request<Body> {
    let mut req = Request::post("/webhooks")
        .body(Body::from(support::BODY))
        .unwrap();
    req.headers_mut().extend(support::signed(id));
    req
}

#[tokio::test]
async fn inner_service_error_releases_the_key() {
    let store = MokaStore::new(100);
    let svc = unrouted(
        &store,
        service_fn(|_req: Request<Body>| async {
            Err::<Response<Body>, _>(std::io::Error::other("backend unreachable"))
        }),
    );
    let err = svc
        .clone()
        .oneshot(signed_request("evt_err"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "backend unreachable");
    // Released: the next delivery may begin it.
    let key = unrouted_key("evt_err");
    assert!(matches!(
        store.begin(&key, Duration::from_secs(1)).await.unwrap(),
        Begin::New(_)
    ));
}

#[tokio::test]
async fn panic_is_resumed_after_release() {
    let store = MokaStore::new(100);
    let svc = unrouted(
        &store,
        service_fn(|_req: Request<Body>| async {
            if true {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }),
    );
    let caught = AssertUnwindSafe(svc.oneshot(signed_request("evt_boom")))
        .catch_unwind()
        .await;
    let payload = caught.expect_err("the panic reaches the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"handler bug"));
    assert!(matches!(
        store
            .begin(&unrouted_key("evt_boom"), Duration::from_secs(1))
            .await
            .unwrap(),
        Begin::New(_)
    ));
}

#[tokio::test]
async fn dropped_response_future_releases_the_key() {
    let store = MokaStore::new(100);
    let svc = unrouted(
        &store,
        service_fn(|_req: Request<Body>| async {
            std::future::pending::<Result<Response<Body>, Infallible>>().await
        }),
    );
    let key = unrouted_key("evt_drop");
    let fut = svc.oneshot(signed_request("evt_drop"));
    // Run it until the handler is pending, then drop it.
    let timed_out = tokio::time::timeout(Duration::from_millis(100), fut).await;
    assert!(timed_out.is_err());
    // The release runs on a spawned task.
    let mut begun = Begin::InFlight;
    for _ in 0..50 {
        begun = store.begin(&key, Duration::from_secs(1)).await.unwrap();
        if matches!(begun, Begin::New(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(begun, Begin::New(_)), "{begun:?}");
}

#[tokio::test]
async fn without_verify_layer_answers_500_naming_it() {
    let calls = support::Calls::default();
    let c = calls.clone();
    let app = axum::Router::new()
        .route(
            "/webhooks",
            axum::routing::post(move || {
                c.hit();
                async { "processed" }
            }),
        )
        // Wrong order: idempotency runs first and finds nothing verified.
        .layer(support::verify_layer())
        .layer(layer());
    let res = app.oneshot(signed_request("evt_order")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("VerifyLayer must run before it"), "{body}");
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn verified_reaches_the_handler_unchanged() {
    let app = scenarios::app(layer(), |v: Verified| async move { v.id().to_owned() });
    let res = app.oneshot(signed_request("evt_echo")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
    assert_eq!(&body[..], b"evt_echo");
}

#[tokio::test]
async fn only_the_lease_owner_can_finish_it() {
    let store = MokaStore::new(100);
    scenarios::only_the_lease_owner_can_finish_it(&store, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_begins_have_one_winner() {
    scenarios::concurrent_begins_have_one_winner(vec![Arc::new(MokaStore::new(100))]).await;
}

#[tokio::test]
async fn capacity_bounds_the_number_of_keys() {
    let store = MokaStore::new(1_000);
    for i in 0..20_000 {
        let key = format!("evt_{i}");
        let Begin::New(token) = store.begin(&key, Duration::from_secs(60)).await.unwrap() else {
            panic!("distinct keys are new")
        };
        assert!(
            store
                .complete(&key, token, Duration::from_secs(60))
                .await
                .unwrap()
        );
    }
    store.run_pending_tasks().await;
    assert!(store.entry_count() <= 1_000, "{}", store.entry_count());
    assert!(store.entry_count() >= 900, "{}", store.entry_count());
}

#[test]
fn sub_millisecond_settings_are_refused() {
    let err = layer().lease(Duration::ZERO).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::InvalidSetting {
            setting: "lease",
            ..
        }
    ));
    let err = layer().done_ttl(Duration::from_micros(10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid setting `done_ttl`: 10µs is shorter than the smallest allowed value of 1 ms"
    );
}

#[test]
fn debug_shows_settings() {
    let dbg = format!("{:?}", layer());
    assert!(dbg.contains("MokaStore"), "{dbg}");
    assert!(dbg.contains("done_ttl: 86400s"), "{dbg}");
}
