//! Which deliveries share an idempotency key. Only configuration (the route
//! template, a fixed scope) and authenticated data (the verifier's identity,
//! the signed id) may count, never what a client can vary without the
//! secret: the path's spelling, the part a `nest` strips, the query string.
//! Every store runs these, over real HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::post;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use tower::{Layer as _, service_fn};
use webhook_guard::idempotency::IdempotencyLayer;
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

use super::scenarios::counting;
use super::{Answer, BODY, Calls, NOW, client, deliver_body, deliver_with, serve};

/// Another event, to show a route still processes new events.
const OTHER_BODY: &[u8] = br#"{"event":"kpi.alert","timestamp":"2023-11-14T22:13:20Z","tenantId":"tenant_abc123","data":{}}"#;

fn secret(text: &str) -> SecretSet {
    SecretSet::single(text).expect("secret")
}

fn verify(secrets: &SecretSet, scheme: &Scheme) -> VerifyLayer {
    VerifyLayer::new(secrets.clone())
        .scheme(scheme.clone())
        .clock(FixedClock::at(NOW))
}

fn sign(scheme: &Scheme, secrets: &SecretSet, id: &str, body: &[u8]) -> HeaderMap {
    scheme
        .sign(secrets, &Message::new(id, NOW, body))
        .expect("sign")
}

/// One sender's receiver: `POST /webhooks` behind its own verifier.
fn receiver(layer: IdempotencyLayer, verify: VerifyLayer, calls: &Calls) -> Router {
    Router::new()
        .route("/webhooks", post(counting(calls, Duration::ZERO)))
        .layer(layer)
        .layer(verify)
}

async fn send(addr: SocketAddr, path: &str, headers: HeaderMap) -> Answer {
    deliver_with(&client(), addr, path, headers)
        .await
        .expect("delivery")
}

/// A receiver of GitHub-scheme deliveries at the route `/hooks/{source}`,
/// served on loopback.
async fn github_hooks<H, T>(layer: IdempotencyLayer, handler: H) -> SocketAddr
where
    H: Handler<T, ()>,
    T: 'static,
{
    let app = Router::new()
        .route("/hooks/{source}", post(handler))
        .layer(layer)
        .layer(verify(&github_secret(), &Scheme::github()));
    serve(app).await
}

fn github_secret() -> SecretSet {
    secret("github-hook-secret")
}

/// A captured GitHub delivery of `body`.
fn github_delivery(body: &[u8]) -> HeaderMap {
    sign(&Scheme::github(), &github_secret(), "delivery-1", body)
}

fn assert_duplicate(a: &Answer, what: &str) {
    assert!(a.status == 200 && a.duplicate, "{what}: {a:?}");
}

/// Sends delivery `headers(i)` to the `i`th path: the first is processed,
/// every other is answered as a duplicate.
async fn only_the_first_is_processed(
    addr: SocketAddr,
    paths: &[&str],
    headers: impl Fn(usize) -> HeaderMap,
) {
    for (i, path) in paths.iter().enumerate() {
        let a = send(addr, path, headers(i)).await;
        if i == 0 {
            assert!(a.processed(), "{path}: {a:?}");
        } else {
            assert_duplicate(&a, path);
        }
    }
}

/// One captured GitHub delivery (no signed timestamp, so nothing else stops
/// a replay) sent to four spellings of one route runs the handler once.
pub async fn percent_encoded_paths_are_one_route(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let handler = move |uri: Uri| async move {
        c.hit();
        s.lock().expect("lock").push(uri.path().to_owned());
        "processed"
    };
    let addr = github_hooks(layer, handler).await;
    let spellings = [
        "/hooks/github",
        "/hooks/%67ithub",
        "/hooks/g%69thub",
        "/hooks/%67%69thub",
    ];
    only_the_first_is_processed(addr, &spellings, |_| github_delivery(BODY)).await;
    assert_eq!(calls.get(), 1);
    // The encoded spelling reaches the router as sent: a new event sent
    // that way is processed, and the handler sees the path as spelled.
    let other = github_delivery(OTHER_BODY);
    let a = deliver_body(&client(), addr, "/hooks/%67ithub", other, OTHER_BODY)
        .await
        .expect("delivery");
    assert!(a.processed(), "{a:?}");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen, ["/hooks/github", "/hooks/%67ithub"]);
}

/// Neither the query string nor unsigned headers are part of the key.
pub async fn query_string_does_not_change_the_key(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let addr = github_hooks(layer, counting(&calls, Duration::ZERO)).await;
    let paths = [
        "/hooks/github",
        "/hooks/github?",
        "/hooks/github?attempt=2",
        "/hooks/github?attempt=3&x-github-delivery=other",
    ];
    only_the_first_is_processed(addr, &paths, |i| {
        let mut headers = github_delivery(BODY);
        let value = HeaderValue::from_str(&format!("replay-{i}")).expect("value");
        for name in ["x-github-delivery", "x-github-event", "x-request-id"] {
            headers.insert(name, value.clone());
        }
        headers
    })
    .await;
    assert_eq!(calls.get(), 1);
}

/// Two tenants `nest`ed under `/a` and `/b` with their own secrets and one
/// shared store. `nest` strips the prefix, so both handlers see the path
/// `/webhooks`; tenant A sends tenant B's predictable next id first, signed
/// with A's own secret. B's genuine event must still be processed.
pub async fn nested_tenants_keep_their_keys_apart(layer: IdempotencyLayer) {
    let native = Scheme::native();
    let (secret_a, secret_b) = (secret("tenant-a-secret"), secret("tenant-b-secret"));
    let (calls_a, calls_b) = (Calls::default(), Calls::default());
    let app = Router::new()
        .nest(
            "/a",
            receiver(layer.clone(), verify(&secret_a, &native), &calls_a),
        )
        .nest("/b", receiver(layer, verify(&secret_b, &native), &calls_b));
    let addr = serve(app).await;
    let forged = sign(&native, &secret_a, "evt_b_42", BODY);
    assert_eq!(send(addr, "/b/webhooks", forged).await.status, 401);
    forgery_first_then_genuine(
        (addr, "/a/webhooks", &secret_a),
        (addr, "/b/webhooks", &secret_b),
        "evt_b_42",
    )
    .await;
    assert_eq!((calls_a.get(), calls_b.get()), (1, 1));
}

/// Sender A signs sender B's predictable next `id` with A's own secret and
/// sends it to A's route first. B's genuine event must then be processed at
/// B's route, and B's retry answered as a duplicate.
async fn forgery_first_then_genuine(
    (a_addr, a_path, secret_a): (SocketAddr, &str, &SecretSet),
    (b_addr, b_path, secret_b): (SocketAddr, &str, &SecretSet),
    id: &str,
) {
    let native = Scheme::native();
    let forged = sign(&native, secret_a, id, BODY);
    assert!(send(a_addr, a_path, forged).await.processed());
    let genuine = sign(&native, secret_b, id, BODY);
    let a = send(b_addr, b_path, genuine.clone()).await;
    assert!(a.processed(), "B's event after A's forgery: {a:?}");
    assert_duplicate(&send(b_addr, b_path, genuine).await, "B's retry");
}

/// Two receivers (as two services) with one fixed scope and one store:
/// the scope alone does not merge senders, the verifier's identity keeps
/// them apart.
pub async fn shared_scope_keeps_senders_apart(layer: IdempotencyLayer) {
    let native = Scheme::native();
    let layer = layer.scope("webhooks");
    let (secret_a, secret_b) = (secret("tenant-a-secret"), secret("tenant-b-secret"));
    let (calls_a, calls_b) = (Calls::default(), Calls::default());
    let a_addr = serve(receiver(
        layer.clone(),
        verify(&secret_a, &native),
        &calls_a,
    ))
    .await;
    let b_addr = serve(receiver(layer, verify(&secret_b, &native), &calls_b)).await;
    forgery_first_then_genuine(
        (a_addr, "/webhooks", &secret_a),
        (b_addr, "/webhooks", &secret_b),
        "evt_b_7",
    )
    .await;
    assert_eq!((calls_a.get(), calls_b.get()), (1, 1));
}

/// One secret under two `nest`s: the route templates `/a/webhooks` and
/// `/b/webhooks` differ, so one event is processed once at each (and each
/// retry is a duplicate). Routes that must deduplicate together share a
/// fixed scope.
pub async fn one_secret_under_two_nests(layer: IdempotencyLayer) {
    let (secrets, native) = (secret("shared-secret"), Scheme::native());
    let calls = Calls::default();
    let nests = |layer: &IdempotencyLayer, first: &str, second: &str| {
        Router::new()
            .nest(
                first,
                receiver(layer.clone(), verify(&secrets, &native), &calls),
            )
            .nest(
                second,
                receiver(layer.clone(), verify(&secrets, &native), &calls),
            )
    };
    let by_route = serve(nests(&layer, "/a", "/b")).await;
    let shared = serve(nests(&layer.scope("orders"), "/c", "/d")).await;
    let event = sign(&native, &secrets, "evt_shared", BODY);

    for path in ["/a/webhooks", "/b/webhooks"] {
        assert!(
            send(by_route, path, event.clone()).await.processed(),
            "{path}"
        );
        assert_duplicate(&send(by_route, path, event.clone()).await, path);
    }
    assert_eq!(calls.get(), 2);
    assert!(send(shared, "/c/webhooks", event.clone()).await.processed());
    assert_duplicate(&send(shared, "/d/webhooks", event).await, "/d/webhooks");
    assert_eq!(calls.get(), 3);
}

/// Without an axum route template (here a tower stack behind
/// `nest_service`) every request shares one scope: the path after the
/// prefix, in any spelling, does not make a new key.
pub async fn unrouted_requests_share_one_scope(layer: IdempotencyLayer) {
    let calls = Calls::default();
    let c = calls.clone();
    let handler = service_fn(move |_req: Request<Body>| {
        c.hit();
        async { Ok::<_, Infallible>(Response::new(Body::from("processed"))) }
    });
    let stack = verify(&github_secret(), &Scheme::github()).layer(layer.layer(handler));
    let addr = serve(Router::new().nest_service("/hooks", stack)).await;
    let paths = [
        "/hooks/github",
        "/hooks/%67ithub",
        "/hooks/other",
        "/hooks/a/b?c=d",
    ];
    only_the_first_is_processed(addr, &paths, |_| github_delivery(BODY)).await;
    assert_eq!(calls.get(), 1);
}

/// The default identity is the fingerprint of the verifier's whole key
/// list, not of the secret that matched: during a rotation, a delivery is a
/// duplicate whichever secret verifies it, so removing one signature from a
/// captured delivery signed with both does not make a new event. A retry
/// that straddles the redeploy adding the new secret carries another
/// identity and is processed once more; that is the documented cost of the
/// default (a tenant name avoids it).
pub async fn a_rotation_keeps_one_identity_per_key_list(layer: IdempotencyLayer) {
    let native = Scheme::native();
    let old = secret("old-secret");
    let both = SecretSet::new(["new-secret", "old-secret"]).expect("secrets");
    let calls = Calls::default();
    // Before and after the redeploy that adds the new secret: one store.
    let before = serve(receiver(layer.clone(), verify(&old, &native), &calls)).await;
    let after = serve(receiver(layer, verify(&both, &native), &calls)).await;
    let signed_old = sign(&native, &old, "evt_rotation", BODY);
    let signed_both = sign(&native, &both, "evt_rotation", BODY);

    assert!(
        send(before, "/webhooks", signed_old.clone())
            .await
            .processed()
    );
    assert_duplicate(
        &send(before, "/webhooks", signed_old.clone()).await,
        "before",
    );
    assert!(
        send(after, "/webhooks", signed_both.clone())
            .await
            .processed()
    );
    let all = signed_both["x-webhook-signature"].to_str().expect("ascii");
    for one in all.split(',') {
        let mut stripped = signed_both.clone();
        stripped.insert(
            "x-webhook-signature",
            HeaderValue::from_str(one).expect("value"),
        );
        assert_duplicate(&send(after, "/webhooks", stripped).await, one);
    }
    assert_duplicate(&send(after, "/webhooks", signed_old).await, "old secret");
    assert_eq!(calls.get(), 2);
}

/// A verifier named with a tenant keeps one identity across the whole
/// rotation: a retry signed with the new secret is still a duplicate.
pub async fn tenant_keeps_the_keys_across_rotation(layer: IdempotencyLayer) {
    let native = Scheme::native();
    let (old, new) = (secret("old-secret"), secret("new-secret"));
    let both = SecretSet::new(["new-secret", "old-secret"]).expect("secrets");
    let named = |secrets: &SecretSet| verify(secrets, &native).tenant("acme").expect("tenant");
    let calls = Calls::default();
    let before = serve(receiver(layer.clone(), named(&old), &calls)).await;
    let during = serve(receiver(layer.clone(), named(&both), &calls)).await;
    let after = serve(receiver(layer, named(&new), &calls)).await;

    assert!(
        send(before, "/webhooks", sign(&native, &old, "evt_t", BODY))
            .await
            .processed()
    );
    let retry = sign(&native, &new, "evt_t", BODY);
    assert_duplicate(&send(during, "/webhooks", retry.clone()).await, "during");
    assert_duplicate(&send(after, "/webhooks", retry).await, "after");
    assert_eq!(calls.get(), 1);
}

/// What a store holds after [`percent_encoded_paths_are_one_route`]: two
/// keys (each `prefix` then the store's own key), each naming the route
/// template and the verifier's key fingerprint, none the path as the client
/// spelled it.
pub fn assert_keys_name_the_route_template(keys: &[String], prefix: &str) {
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let rest = key
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix("15:/hooks/{source}:37:hmac:"))
            .unwrap_or_else(|| panic!("{key}"));
        let (fingerprint, id) = rest.split_at(32);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert!(id.starts_with(":sha256:"), "{key}");
        assert!(!key.contains('%') && !key.contains("github"), "{key}");
    }
}
