//! Behaviour every idempotency store must show, end to end: a real axum
//! server on loopback, real HTTP deliveries signed with the native scheme.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::post;
use http::{HeaderValue, Request, StatusCode};
use tokio::sync::{Barrier, Notify};
use tower::ServiceExt;
use webhook_guard::idempotency::{Begin, FailMode, IdempotencyLayer, IdempotencyStore};
use webhook_guard::{Message, Scheme};

use super::{
    BODY, Calls, NOW, client, deliver, deliver_with, secrets, serve, signed, verify_layer,
};

pub fn app<H, T>(layer: IdempotencyLayer, handler: H) -> Router
where
    H: Handler<T, ()>,
    T: 'static,
{
    Router::new()
        .route("/webhooks", post(handler))
        .layer(layer)
        .layer(verify_layer())
}

/// A handler that counts calls and takes `delay` to process.
pub fn counting(calls: &Calls, delay: Duration) -> impl Handler<((),), ()> {
    let calls = calls.clone();
    move || {
        let calls = calls.clone();
        async move {
            calls.hit();
            tokio::time::sleep(delay).await;
            "processed"
        }
    }
}

/// 64 deliveries of one event at the same instant, spread over one server
/// per layer (several layers = several receiver instances sharing a store):
/// exactly one handler call, every other answer a 200 duplicate or a 409.
pub async fn concurrent_deliveries_call_once(layers: Vec<IdempotencyLayer>) {
    const N: usize = 64;
    let calls = Calls::default();
    let mut addrs = Vec::new();
    for layer in layers {
        addrs.push(serve(app(layer, counting(&calls, Duration::from_millis(50)))).await);
    }
    let barrier = Arc::new(Barrier::new(N));
    let client = client();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let barrier = barrier.clone();
            let client = client.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                deliver(&client, addr, "/webhooks", "evt_concurrent")
                    .await
                    .expect("delivery")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    assert_eq!(calls.get(), 1, "handler calls for one event: {answers:?}");
    assert_eq!(answers.iter().filter(|a| a.processed()).count(), 1);
    for a in answers.iter().filter(|a| !a.processed()) {
        assert!(a.duplicate, "{a:?}");
        match a.status {
            200 => assert!(a.body.contains(r#""duplicate":true"#), "{a:?}"),
            409 => {
                assert_eq!(a.retry_after.as_deref(), Some("5"), "{a:?}");
                assert!(a.body.contains("in flight"), "{a:?}");
            }
            other => panic!("unexpected status {other}: {a:?}"),
        }
    }
    // Once the first delivery finished, every instance answers a duplicate.
    for addr in addrs {
        let a = deliver(&client, addr, "/webhooks", "evt_concurrent")
            .await
            .expect("delivery");
        assert!(a.status == 200 && a.duplicate, "{a:?}");
    }
    assert_eq!(calls.get(), 1);
}

/// The handler fails the first time: the key is released, the retry is
/// processed, and a third delivery is a duplicate.
pub async fn failed_handler_is_retried(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let c = calls.clone();
    let addr = serve(app(layer, move || {
        let c = c.clone();
        async move {
            if c.hit() == 1 {
                (StatusCode::INTERNAL_SERVER_ERROR, "database down")
            } else {
                (StatusCode::OK, "processed")
            }
        }
    }))
    .await;
    let client = client();
    let first = deliver(&client, addr, "/webhooks", "evt_fail")
        .await
        .expect("1");
    assert_eq!((first.status, first.duplicate), (500, false), "{first:?}");
    let retry = deliver(&client, addr, "/webhooks", "evt_fail")
        .await
        .expect("2");
    assert!(retry.processed(), "{retry:?}");
    let again = deliver(&client, addr, "/webhooks", "evt_fail")
        .await
        .expect("3");
    assert!(again.status == 200 && again.duplicate, "{again:?}");
    assert_eq!(calls.get(), 2, "called twice, processed once");
}

/// After the done TTL the same event is processed again.
pub async fn done_ttl_expires(layer: IdempotencyLayer) {
    let layer = layer.done_ttl(Duration::from_millis(400)).expect("ttl");
    let calls = Calls::default();
    let addr = serve(app(layer, counting(&calls, Duration::ZERO))).await;
    let client = client();
    assert!(
        deliver(&client, addr, "/webhooks", "evt_ttl")
            .await
            .expect("1")
            .processed()
    );
    let dup = deliver(&client, addr, "/webhooks", "evt_ttl")
        .await
        .expect("2");
    assert!(dup.duplicate, "{dup:?}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = deliver(&client, addr, "/webhooks", "evt_ttl")
        .await
        .expect("3");
    assert!(after.processed(), "{after:?}");
    assert_eq!(calls.get(), 2);
}

/// A done key lives for the done TTL, not for the (shorter) lease it was
/// created with.
pub async fn done_outlives_the_lease(layer: IdempotencyLayer) {
    let layer = layer.lease(Duration::from_millis(300)).expect("lease");
    let calls = Calls::default();
    let addr = serve(app(layer, counting(&calls, Duration::ZERO))).await;
    let client = client();
    assert!(
        deliver(&client, addr, "/webhooks", "evt_long")
            .await
            .expect("1")
            .processed()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = deliver(&client, addr, "/webhooks", "evt_long")
        .await
        .expect("2");
    assert!(later.status == 200 && later.duplicate, "{later:?}");
    assert_eq!(calls.get(), 1);
}

/// A receiver "crashes" while handling an event: its response future is
/// leaked, so nothing releases the key. Deliveries get 409 until the lease
/// expires, then the next one is processed.
pub async fn lease_expires_after_crash(layer: IdempotencyLayer) {
    let layer = layer.lease(Duration::from_millis(500)).expect("lease");
    let started = Arc::new(Notify::new());
    let s = started.clone();
    let crashing = app(layer.clone(), move || {
        let s = s.clone();
        async move {
            s.notify_one();
            std::future::pending::<&'static str>().await
        }
    });
    let mut req = Request::post("/webhooks")
        .body(Body::from(BODY))
        .expect("request");
    req.headers_mut().extend(signed("evt_crash"));
    let mut in_flight = Box::pin(crashing.oneshot(req));
    tokio::select! {
        res = &mut in_flight => panic!("the crashing handler returned: {res:?}"),
        () = started.notified() => {}
    }
    // The process dies here: no drop guard, no release.
    std::mem::forget(in_flight);

    let calls = Calls::default();
    let addr = serve(app(layer, counting(&calls, Duration::ZERO))).await;
    let client = client();
    let blocked = deliver(&client, addr, "/webhooks", "evt_crash")
        .await
        .expect("1");
    assert_eq!(
        (blocked.status, blocked.duplicate),
        (409, true),
        "{blocked:?}"
    );
    assert_eq!(calls.get(), 0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = deliver(&client, addr, "/webhooks", "evt_crash")
        .await
        .expect("2");
    assert!(after.processed(), "{after:?}");
    assert_eq!(calls.get(), 1);
}

/// The same event id in different scopes is processed once per scope; the
/// default scope is the route template; a fixed scope overrides it.
pub async fn scopes_isolate(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let handler = counting(&calls, Duration::ZERO);
    let by_path = Router::new()
        .route("/a", post(handler.clone()))
        .route("/b", post(handler.clone()))
        .layer(layer.clone())
        .layer(verify_layer());
    let tenant_a = app(layer.clone().scope("tenant_a"), handler.clone());
    let tenant_b = app(layer.clone().scope("tenant_b"), handler.clone());
    let shared = Router::new()
        .route("/x", post(handler.clone()))
        .route("/y", post(handler))
        .layer(layer.scope("shared"))
        .layer(verify_layer());
    let by_path = serve(by_path).await;
    let tenant_a = serve(tenant_a).await;
    let tenant_b = serve(tenant_b).await;
    let shared = serve(shared).await;
    let client = client();
    let id = "evt_scoped";
    for (addr, path) in [
        (by_path, "/a"),
        (by_path, "/b"),
        (tenant_a, "/webhooks"),
        (tenant_b, "/webhooks"),
        (shared, "/x"),
    ] {
        let a = deliver(&client, addr, path, id).await.expect("delivery");
        assert!(a.processed(), "{path}: {a:?}");
    }
    assert_eq!(calls.get(), 5);
    for (addr, path) in [
        (by_path, "/a"),
        (by_path, "/b"),
        (tenant_a, "/webhooks"),
        (tenant_b, "/webhooks"),
        (shared, "/x"),
        (shared, "/y"),
    ] {
        let a = deliver(&client, addr, path, id).await.expect("delivery");
        assert!(a.status == 200 && a.duplicate, "{path}: {a:?}");
    }
    assert_eq!(calls.get(), 5);
}

/// A panic in the handler releases the key: the connection fails, the
/// retry is processed.
pub async fn panicking_handler_is_retried(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let c = calls.clone();
    let addr = serve(app(layer, move || {
        let c = c.clone();
        async move {
            assert!(c.hit() != 1, "handler panics on the first delivery");
            "processed"
        }
    }))
    .await;
    let client = client();
    let first = deliver(&client, addr, "/webhooks", "evt_panic").await;
    assert!(
        first.is_err(),
        "a panicking handler gives no response: {first:?}"
    );
    let retry = deliver(&client, addr, "/webhooks", "evt_panic")
        .await
        .expect("2");
    assert!(retry.processed(), "{retry:?}");
    assert_eq!(calls.get(), 2);
}

/// A client that gives up (timeout, disconnect) cancels the handler; the
/// key is released so the retry is processed.
pub async fn cancelled_delivery_is_retried(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let c = calls.clone();
    let addr = serve(app(layer, move || {
        let c = c.clone();
        async move {
            if c.hit() == 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            "processed"
        }
    }))
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let first = deliver(&impatient, addr, "/webhooks", "evt_cancel").await;
    assert!(first.is_err(), "{first:?}");
    // The server notices the closed connection and drops the handler; the
    // release runs on a spawned task. Retry like a sender would.
    let client = client();
    let mut last = None;
    for _ in 0..40 {
        let a = deliver(&client, addr, "/webhooks", "evt_cancel")
            .await
            .expect("retry");
        if a.processed() {
            last = Some(a);
            break;
        }
        assert_eq!(a.status, 409, "{a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last.is_some(),
        "the key was not released after the client went away"
    );
    assert_eq!(calls.get(), 2);
}

/// With `wait_for_in_flight`, a concurrent duplicate waits for the first
/// delivery and gets the 200 duplicate answer instead of a 409.
pub async fn duplicate_waits_for_in_flight(layer: IdempotencyLayer) {
    let layer = layer.wait_for_in_flight(Duration::from_secs(3));
    let calls = Calls::default();
    let addr = serve(app(layer, counting(&calls, Duration::from_millis(300)))).await;
    let client = client();
    let first = tokio::spawn({
        let client = client.clone();
        async move { deliver(&client, addr, "/webhooks", "evt_wait").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = deliver(&client, addr, "/webhooks", "evt_wait")
        .await
        .expect("2");
    let first = first.await.expect("task").expect("1");
    assert!(first.processed(), "{first:?}");
    assert!(second.status == 200 && second.duplicate, "{second:?}");
    assert_eq!(calls.get(), 1);
}

/// Schemes without a signed id (native body-only, GitHub, Shopify): the key
/// is the hash of the signed body, so the unsigned delivery-id headers an
/// attacker can add or vary do not make a replay look new.
pub async fn unsigned_headers_do_not_change_the_key(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let schemes = [
        ("/body-only", Scheme::native_body_only()),
        ("/github", Scheme::github()),
        ("/shopify", Scheme::shopify()),
    ];
    let client = client();
    for (path, scheme) in schemes {
        let router = Router::new()
            .route(path, post(counting(&calls, Duration::ZERO)))
            .layer(layer.clone())
            .layer(verify_layer().scheme(scheme.clone()));
        let addr = serve(router).await;
        let before = calls.get();
        let headers = scheme
            .sign(&secrets(), &Message::new("unused", NOW, BODY))
            .expect("sign");
        for i in 0..5 {
            let mut h = headers.clone();
            let fake = HeaderValue::from_str(&format!("attacker_{i}")).expect("value");
            for name in [
                "x-webhook-id",
                "webhook-id",
                "x-github-delivery",
                "x-shopify-event-id",
            ] {
                h.insert(name, fake.clone());
            }
            let a = deliver_with(&client, addr, path, h)
                .await
                .expect("delivery");
            assert_eq!(a.processed(), i == 0, "{path}, delivery {i}: {a:?}");
        }
        assert_eq!(calls.get(), before + 1, "{path}");
    }
}

/// Store level: a lease that expired and was taken over can no longer be
/// completed or released by its former owner; a done key can be neither
/// completed again nor released. `first` and `second` share their keys (two
/// instances of a shared store, or one in-process store twice).
pub async fn only_the_lease_owner_can_finish_it(
    first: &dyn IdempotencyStore,
    second: &dyn IdempotencyStore,
) {
    let short = Duration::from_millis(150);
    let long = Duration::from_secs(60);
    let Begin::New(old) = first.begin("k", short).await.expect("begin") else {
        panic!("new key")
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let Begin::New(new) = second.begin("k", long).await.expect("begin") else {
        panic!("an expired lease is free")
    };
    assert_ne!(old, new);
    assert!(!first.release("k", old).await.expect("release"));
    assert!(!first.complete("k", old, long).await.expect("complete"));
    assert_eq!(
        first.begin("k", short).await.expect("begin"),
        Begin::InFlight
    );
    assert!(second.complete("k", new, long).await.expect("complete"));
    assert_eq!(first.begin("k", short).await.expect("begin"), Begin::Done);
    // A done key cannot be released, not even by its former owner, nor
    // completed twice.
    assert!(!second.release("k", new).await.expect("release"));
    assert!(!second.complete("k", new, long).await.expect("complete"));
    assert_eq!(first.begin("k", short).await.expect("begin"), Begin::Done);
}

/// Store level: 32 begins of one key at the same instant, spread over the
/// given stores (instances sharing their keys): exactly one wins.
pub async fn concurrent_begins_have_one_winner(stores: Vec<Arc<dyn IdempotencyStore>>) {
    const N: usize = 32;
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.begin("race", Duration::from_secs(60)).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task").expect("begin") {
            Begin::New(_) => won += 1,
            Begin::InFlight => {}
            Begin::Done => panic!("nothing completed the key"),
        }
    }
    assert_eq!(won, 1);
}

/// The store goes down (`down` stops it) under a fail-closed layer: a
/// delivery gets 503 with `Retry-After` and the handler is not called.
/// Returns the server and its call count, to go on after the store is back.
pub async fn store_down_answers_503(
    layer: IdempotencyLayer,
    down: impl FnOnce(),
) -> (SocketAddr, Calls) {
    let calls = Calls::default();
    let addr = serve(app(layer, counting(&calls, Duration::ZERO))).await;
    down();
    let client = client();
    for _ in 0..2 {
        let a = deliver(&client, addr, "/webhooks", "evt_down")
            .await
            .expect("delivery");
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.retry_after.as_deref(), Some("5"));
        assert!(a.body.contains("was not processed"), "{a:?}");
    }
    assert_eq!(calls.get(), 0);
    (addr, calls)
}

/// The store goes down under a fail-open layer: every delivery is
/// processed, without deduplication.
pub async fn store_down_fails_open(layer: IdempotencyLayer, down: impl FnOnce()) {
    let calls = Calls::default();
    let layer = layer.fail_mode(FailMode::Open);
    let addr = serve(app(layer, counting(&calls, Duration::ZERO))).await;
    down();
    let client = client();
    for _ in 0..2 {
        let a = deliver(&client, addr, "/webhooks", "evt_open")
            .await
            .expect("delivery");
        assert!(a.processed(), "{a:?}");
    }
    assert_eq!(calls.get(), 2);
}
