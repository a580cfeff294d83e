//! The console's JSON API: through `oneshot`, and over real HTTP against a
//! started sender and a loopback receiver.
#![cfg(feature = "console")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use webhook_guard::sender::console::Console;
use webhook_guard::sender::{
    AddressPolicy, EventFilter, MemoryStore, NewDestination, OutgoingEvent, Sender,
};
use webhook_guard::{Scheme, SecretSet, Verified, VerifyLayer};

use console_support::{HOSTILE_BODY, raw, serve, setup};

/// The console with no authentication of its own, as the tests call it.
fn open_console(sender: Sender<MemoryStore>) -> Router {
    Console::new(sender).allow_unauthenticated().router()
}

fn loopback_sender() -> Sender<MemoryStore> {
    Sender::builder(MemoryStore::new())
        .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
        .build()
        .unwrap()
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    if method != "GET" {
        req = req.header("content-type", "application/json");
    }
    let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, ct, v)
}

fn assert_problem(
    res: &(StatusCode, String, Value),
    status: StatusCode,
    anchor: &str,
    detail_has: &str,
) {
    assert_eq!(res.0, status, "{:?}", res.2);
    assert_eq!(res.1, "application/problem+json");
    assert!(
        res.2["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#{anchor}")),
        "{:?}",
        res.2
    );
    assert_eq!(res.2["status"], status.as_u16());
    let detail = res.2["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "{detail:?} lacks {detail_has:?}"
    );
}

#[tokio::test]
async fn secret_is_generated_and_shown_only_at_creation() {
    let app = open_console(loopback_sender());
    let created = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/hooks"})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{:?}", created.2);
    let secret = created.2["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(created.2["secretGenerated"], true);
    assert_eq!(created.2["destination"]["events"]["kind"], "all");
    let id = created.2["destination"]["id"].as_str().unwrap().to_owned();

    let other = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/b"})),
    )
    .await;
    assert_ne!(
        other.2["secret"], created.2["secret"],
        "each generated secret is fresh"
    );

    let list = call(&app, "GET", "/api/destinations", None).await;
    assert_eq!(list.0, StatusCode::OK);
    assert_eq!(list.2.as_array().unwrap().len(), 2);
    let one = call(&app, "GET", &format!("/api/destinations/{id}"), None).await;
    assert_eq!(one.0, StatusCode::OK);
    assert_eq!(one.2["enabled"], true);
    for shown in [list.2.to_string(), one.2.to_string()] {
        assert!(!shown.contains(&secret), "secret leaked: {shown}");
    }
}

#[tokio::test]
async fn given_secret_signs_and_is_not_returned_again() {
    let sender = loopback_sender();
    let app = open_console(sender.clone());
    let created = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/x", "secret": "operator-chosen-secret-0123456789", "events": ["kpi.*", "ingestion.completed"]})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED);
    assert_eq!(created.2["secret"], "operator-chosen-secret-0123456789");
    assert_eq!(created.2["secretGenerated"], false);
    assert_eq!(
        created.2["destination"]["events"],
        json!({"kind": "only", "types": ["kpi.*", "ingestion.completed"]})
    );
    let id = created.2["destination"]["id"].as_str().unwrap();
    // The sender holds the given secret.
    let stored = sender.destination(id).await.unwrap();
    assert_eq!(
        stored.secrets[0].expose_bytes(),
        b"operator-chosen-secret-0123456789"
    );
    let list = call(&app, "GET", "/api/destinations", None).await;
    assert!(
        !list
            .2
            .to_string()
            .contains("operator-chosen-secret-0123456789")
    );
}

#[tokio::test]
async fn bad_input_gets_specific_problems() {
    // Default address policy: internal addresses are refused.
    let app = open_console(Sender::builder(MemoryStore::new()).build().unwrap());
    let post = |body: Value| {
        let app = app.clone();
        async move { call(&app, "POST", "/api/destinations", Some(body)).await }
    };
    assert_problem(
        &post(json!({"url": "not a url"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-destination",
        "is not a URL",
    );
    assert_problem(
        &post(json!({"url": "ftp://example.com/x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-destination",
        "http or https",
    );
    // An internal literal, a name resolving to loopback and a name that
    // does not resolve get the very same answer, naming no address: the
    // console is no oracle for internal DNS.
    let mut refusals = Vec::new();
    for url in [
        "http://10.0.0.1/hooks",
        "http://127.0.0.1/hooks",
        "http://localhost/hooks",
        "http://no-such-host.invalid/hooks",
    ] {
        let res = post(json!({ "url": url })).await;
        assert_problem(
            &res,
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden-address",
            "must resolve to public addresses",
        );
        refusals.push(res.2);
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:#?}");
    for needle in [
        "10.0.0.1",
        "127.0.0.1",
        "localhost",
        "resolve:",
        "private",
        "loopback",
    ] {
        assert!(!refusals[0].to_string().contains(needle), "{}", refusals[0]);
    }
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "events": ["kpi.alrt"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-event-filter",
        "unknown event type `kpi.alrt`",
    );
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "events": ["nope.*"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-event-filter",
        "nope.*",
    );
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "events": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-event-filter",
        "empty",
    );
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "secret": ""})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "empty",
    );
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "secret": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "at least 24 bytes",
    );
    assert_problem(
        &post(json!({"url": "https://93.184.215.14/x", "colour": "red"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "colour",
    );
    assert_problem(
        &post(json!({"secret": "s"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "url",
    );

    let raw = app
        .clone()
        .oneshot(
            Request::post("/api/destinations")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Body::from("{\"url\":"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");

    assert_problem(
        &call(&app, "GET", "/api/deliveries?status=lost", None).await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "status",
    );
    assert_problem(
        &call(&app, "POST", "/api/destinations/dst_missing/test", None).await,
        StatusCode::NOT_FOUND,
        "not-found",
        "dst_missing",
    );
    assert_problem(
        &call(&app, "DELETE", "/api/destinations/dst_missing", None).await,
        StatusCode::NOT_FOUND,
        "not-found",
        "dst_missing",
    );
    assert_problem(
        &call(&app, "POST", "/api/dead-letters/dlv_missing/replay", None).await,
        StatusCode::NOT_FOUND,
        "not-found",
        "dlv_missing",
    );
    // Nothing was stored by any of the refused requests.
    assert_eq!(
        call(&app, "GET", "/api/destinations", None).await.2,
        json!([])
    );
}

#[tokio::test]
async fn custom_event_types_drive_validation_and_the_form() {
    let app = Console::new(loopback_sender())
        .event_types(["order.created", "order.paid"])
        .allow_unauthenticated()
        .router();
    let ok = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/", "events": ["order.*"]})),
    )
    .await;
    assert_eq!(ok.0, StatusCode::CREATED);
    let bad = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/", "events": ["kpi.alert"]})),
    )
    .await;
    assert_problem(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-event-filter",
        "order.created, order.paid",
    );
    let page = app
        .clone()
        .oneshot(
            Request::get("/")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains(r#"value="order.paid""#));
    assert!(!html.contains("kpi.alert"));
}

#[tokio::test]
async fn event_type_names_are_escaped_in_the_page() {
    let app = Console::new(loopback_sender())
        .event_types(["<img src=x onerror=alert(1)>"])
        .allow_unauthenticated()
        .router();
    let page = app
        .oneshot(
            Request::get("/")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[tokio::test]
async fn bearer_token_guards_the_api_but_not_the_page() {
    let console = Console::new(loopback_sender()).bearer_token("tok-123");
    assert!(!format!("{console:?}").contains("tok-123"), "{console:?}");
    let app = console.router();
    let req = |uri: &str, auth: Option<&str>| {
        let mut r = Request::get(uri).header("host", "localhost");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer tok-12"),
        Some("Bearer tok-1234"),
        Some("tok-123"),
        Some("Basic dG9rLTEyMw=="),
    ] {
        let res = app
            .clone()
            .oneshot(req("/api/destinations", auth))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("tok-123"));
    }
    let ok = app
        .clone()
        .oneshot(req("/api/destinations", Some("Bearer tok-123")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let page = app.clone().oneshot(req("/", None)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains(r#"data-token-required="true""#));
    assert!(!html.contains("tok-123"));
    let js = app.oneshot(req("/assets/console.js", None)).await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
}

#[tokio::test]
async fn page_works_under_a_path_prefix() {
    let app = Router::new().nest("/admin/webhooks", open_console(loopback_sender()));
    for path in ["/admin/webhooks", "/admin/webhooks/"] {
        let res = app
            .clone()
            .oneshot(
                Request::get(path)
                    .header("host", "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        if res.status() == StatusCode::NOT_FOUND {
            continue; // axum routes only one of the two spellings of a nest root
        }
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let html = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        assert!(
            html.contains(r#"data-base="/admin/webhooks/""#),
            "{path}: {html}"
        );
        assert!(html.contains(r#"src="/admin/webhooks/assets/console.js""#));
    }
    let first = app
        .clone()
        .oneshot(
            Request::get("/admin/webhooks")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let css = app
        .clone()
        .oneshot(
            Request::get("/admin/webhooks/assets/console.css")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let api = app
        .oneshot(
            Request::get("/admin/webhooks/api/dead-letters")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
}

async fn http_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method.clone(), url);
    if method != reqwest::Method::GET {
        req = req.header("content-type", "application/json");
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let bytes = res.bytes().await.unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, v)
}

async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, v) = http_json(client, reqwest::Method::GET, url, None).await;
        assert_eq!(status, StatusCode::OK);
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn whole_story_over_real_http() {
    let s = setup().await;
    let base = serve(Router::new().nest("/console", open_console(s.sender.clone()))).await;
    let api = |p: &str| format!("{base}/console/api/{p}");
    let client = reqwest::Client::new();
    use reqwest::Method;

    let hostile_url = format!("{}/flaky?<script>alert(1)</script>", s.receiver_url);
    let (st, ok) = http_json(
        &client,
        Method::POST,
        &api("destinations"),
        Some(json!({"url": format!("{}/ok", s.receiver_url)})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, flaky) = http_json(
        &client,
        Method::POST,
        &api("destinations"),
        Some(json!({"url": hostile_url, "events": ["kpi.alert"]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{flaky}");
    let ok_id = ok["destination"]["id"].as_str().unwrap().to_owned();
    let flaky_id = flaky["destination"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        flaky["destination"]["url"], hostile_url,
        "stored as given, escaped only on display"
    );

    // Test the good one: delivered, with its status code and response time.
    let (st, test) = http_json(
        &client,
        Method::POST,
        &api(&format!("destinations/{ok_id}/test")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(test["eventType"], "webhook.test");
    let q = format!("deliveries?destinationId={ok_id}");
    let page = wait_for(&client, &api(&q), "the test delivery", |v| {
        v["items"][0]["status"] == "delivered"
    })
    .await;
    let row = &page["items"][0];
    assert_eq!(row["lastAttempt"]["statusCode"], 200);
    assert_eq!(row["lastAttempt"]["responseBody"], "thanks");
    assert!(row["lastAttempt"]["durationMs"].is_u64());
    assert_eq!(row["destinationUrl"], format!("{}/ok", s.receiver_url));
    assert_eq!(
        s.receiver.ok_hits.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // Test the failing one: no retries, so it lands in the DLQ with the error.
    let (st, _) = http_json(
        &client,
        Method::POST,
        &api(&format!("destinations/{flaky_id}/test")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let dlq = wait_for(&client, &api("dead-letters"), "a dead letter", |v| {
        v["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let dead = &dlq["items"][0];
    assert_eq!(dead["destinationId"], flaky_id);
    assert_eq!(dead["lastAttempt"]["statusCode"], 500);
    assert_eq!(
        dead["lastAttempt"]["responseBody"], HOSTILE_BODY,
        "kept verbatim; the page shows it as text"
    );
    assert!(
        dead["lastError"].as_str().unwrap().contains("500"),
        "{dead}"
    );
    let dead_id = dead["id"].as_str().unwrap().to_owned();

    // The full record of one delivery.
    let (st, hist) = http_json(
        &client,
        Method::GET,
        &api(&format!("deliveries/{dead_id}")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(hist["attempts"].as_array().unwrap().len(), 1);

    // Replay it once the endpoint is healthy: delivered; the original is marked replayed.
    s.receiver.heal();
    let (st, replay) = http_json(
        &client,
        Method::POST,
        &api(&format!("dead-letters/{dead_id}/replay")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{replay}");
    assert_eq!(replay["replayOf"], dead_id.as_str());
    let replay_id = replay["id"].as_str().unwrap().to_owned();
    wait_for(
        &client,
        &api(&format!("deliveries/{replay_id}")),
        "the replay",
        |v| v["delivery"]["status"] == "delivered",
    )
    .await;
    let (_, again) = http_json(
        &client,
        Method::POST,
        &api(&format!("dead-letters/{dead_id}/replay")),
        None,
    )
    .await;
    assert_eq!(again["status"], 409, "{again}");
    let (_, dlq) = http_json(&client, Method::GET, &api("dead-letters"), None).await;
    assert_eq!(dlq["items"], json!([]));

    // Resend a delivered one; resend of a pending one is refused.
    let ok_delivery = row["id"].as_str().unwrap();
    let (st, resent) = http_json(
        &client,
        Method::POST,
        &api(&format!("deliveries/{ok_delivery}/resend")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{resent}");
    wait_for(&client, &api(&q), "the resend", |v| {
        v["items"].as_array().unwrap().len() == 2 && v["items"][0]["status"] == "delivered"
    })
    .await;

    // Paging: one per page, the cursor walks to the older one.
    let (_, p1) = http_json(&client, Method::GET, &api(&format!("{q}&limit=1")), None).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let cursor = p1["nextCursor"].as_i64().unwrap();
    let (_, p2) = http_json(
        &client,
        Method::GET,
        &api(&format!("{q}&limit=1&beforeSeq={cursor}")),
        None,
    )
    .await;
    assert_eq!(p2["items"][0]["id"], ok_delivery);

    // Replay all: two fresh failures, both replayed.
    s.receiver
        .healed
        .store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..2 {
        http_json(
            &client,
            Method::POST,
            &api(&format!("destinations/{flaky_id}/test")),
            None,
        )
        .await;
    }
    wait_for(&client, &api("dead-letters"), "two dead letters", |v| {
        v["items"].as_array().unwrap().len() == 2
    })
    .await;
    s.receiver.heal();
    let (st, summary) =
        http_json(&client, Method::POST, &api("dead-letters/replay-all"), None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(summary["replayed"].as_array().unwrap().len(), 2);
    assert_eq!(summary["skipped"], json!([]));

    // Disable, enable, delete.
    let (_, off) = http_json(
        &client,
        Method::PATCH,
        &api(&format!("destinations/{flaky_id}")),
        Some(json!({"enabled": false, "disabledReason": "maintenance"})),
    )
    .await;
    assert_eq!(off["enabled"], false);
    assert_eq!(off["disabledReason"], "maintenance");
    let (st, refused) = http_json(
        &client,
        Method::POST,
        &api(&format!("destinations/{flaky_id}/test")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("is disabled"),
        "{refused}"
    );
    let (_, on) = http_json(
        &client,
        Method::PATCH,
        &api(&format!("destinations/{flaky_id}")),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(on["enabled"], true);
    let (st, _) = http_json(
        &client,
        Method::DELETE,
        &api(&format!("destinations/{flaky_id}")),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = http_json(&client, Method::GET, &api("destinations"), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The page carries no stored data: everything user-controlled reaches
    // the browser as JSON and is put on the page as text.
    let html = client
        .get(format!("{base}/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("__injected"), "{html}");
    assert!(!html.contains("/flaky"), "{html}");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn destinations_added_in_rust_show_up_in_the_api() {
    let sender = loopback_sender();
    sender
        .add_destination(
            NewDestination::new("http://127.0.0.1:9/r", "rust-side-secret-0123456789abcdef")
                .id("dst_rust"),
        )
        .await
        .unwrap();
    let app = open_console(sender);
    let one = call(&app, "GET", "/api/destinations/dst_rust", None).await;
    assert_eq!(one.0, StatusCode::OK);
    assert_eq!(one.2["paused"], false);
    assert!(
        !one.2
            .to_string()
            .contains("rust-side-secret-0123456789abcdef")
    );
}

#[tokio::test]
async fn rotating_a_secret_shows_the_new_one_once_and_keeps_the_old_for_the_overlap() {
    let sender = loopback_sender();
    let app = open_console(sender.clone());
    let created = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/r", "secret": "old-secret-0123456789abcdef"})),
    )
    .await;
    let id = created.2["destination"]["id"].as_str().unwrap().to_owned();

    let rotated = call(
        &app,
        "POST",
        &format!("/api/destinations/{id}/rotate-secret"),
        Some(json!({"overlapSeconds": 3600})),
    )
    .await;
    assert_eq!(rotated.0, StatusCode::OK, "{:?}", rotated.2);
    assert_eq!(rotated.2["secretGenerated"], true);
    let new_secret = rotated.2["secret"].as_str().unwrap().to_owned();
    assert_eq!(new_secret.len(), 64);
    let secrets = rotated.2["destination"]["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(secrets[0]["expiresAt"].is_null());
    assert!(secrets[1]["expiresAt"].is_i64());
    let stored = sender.destination(&id).await.unwrap();
    assert_eq!(stored.secrets[0].expose_bytes(), new_secret.as_bytes());
    assert_eq!(
        stored.secrets[1].expose_bytes(),
        b"old-secret-0123456789abcdef"
    );
    let shown = call(&app, "GET", &format!("/api/destinations/{id}"), None).await;
    assert!(!shown.2.to_string().contains(&new_secret));
    assert!(!rotated.2["destination"].to_string().contains("old-secret"));

    let given = call(
        &app,
        "POST",
        &format!("/api/destinations/{id}/rotate-secret"),
        Some(json!({"secret": "third-secret-0123456789abcdef"})),
    )
    .await;
    assert_eq!(given.2["secret"], "third-secret-0123456789abcdef");
    assert_eq!(given.2["secretGenerated"], false);
    assert_problem(
        &call(
            &app,
            "POST",
            &format!("/api/destinations/{id}/rotate-secret"),
            Some(json!({"secret": ""})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "empty",
    );
    // A secret an operator types must be long enough to resist guessing.
    let short = call(
        &app,
        "POST",
        &format!("/api/destinations/{id}/rotate-secret"),
        Some(json!({"secret": "x"})),
    )
    .await;
    assert_problem(
        &short,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "at least 24 bytes",
    );
    assert_eq!(sender.destination(&id).await.unwrap().secrets.len(), 3);
    assert_problem(
        &call(
            &app,
            "POST",
            "/api/destinations/dst_nope/rotate-secret",
            Some(json!({})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
        "dst_nope",
    );
}

#[tokio::test]
async fn scheme_is_chosen_at_creation_and_secrets_come_in_its_format() {
    let sender = loopback_sender();
    let app = open_console(sender.clone());
    let create = |body: Value| {
        let app = app.clone();
        async move { call(&app, "POST", "/api/destinations", Some(body)).await }
    };

    // Standard Webhooks: a generated `whsec_<base64>` secret, and the sender
    // signs with the decoded bytes.
    let standard = create(json!({"url": "http://127.0.0.1:9/s", "scheme": "standard"})).await;
    assert_eq!(standard.0, StatusCode::CREATED, "{:?}", standard.2);
    assert_eq!(standard.2["destination"]["scheme"], "standard");
    assert_eq!(standard.2["secretGenerated"], true);
    let secret = standard.2["secret"].as_str().unwrap().to_owned();
    let b64 = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(key.len(), 32);
    let id = standard.2["destination"]["id"].as_str().unwrap().to_owned();
    let stored = sender.destination(&id).await.unwrap();
    assert_eq!(stored.scheme.as_str(), "standard");
    assert_eq!(stored.secrets[0].expose_bytes(), key.as_slice());
    let shown = call(&app, "GET", &format!("/api/destinations/{id}"), None).await;
    assert_eq!(shown.2["scheme"], "standard");
    assert!(!shown.2.to_string().contains(b64));

    // Rotation generates in the destination's scheme too.
    let rotated = call(
        &app,
        "POST",
        &format!("/api/destinations/{id}/rotate-secret"),
        Some(json!({})),
    )
    .await;
    assert_eq!(rotated.0, StatusCode::OK, "{:?}", rotated.2);
    let new_secret = rotated.2["secret"].as_str().unwrap();
    let new_key = Scheme::standard().parse_secret(new_secret).unwrap();
    assert!(new_secret.starts_with("whsec_"));
    let stored = sender.destination(&id).await.unwrap();
    assert_eq!(stored.secrets[0].expose_bytes(), new_key.expose_bytes());
    assert_eq!(stored.secrets[1].expose_bytes(), key.as_slice());

    // A given `whsec_` secret is decoded the same way; an alias is stored
    // by the scheme's name.
    let given = create(json!({
        "url": "http://127.0.0.1:9/g",
        "scheme": "svix",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }))
    .await;
    assert_eq!(given.0, StatusCode::CREATED, "{:?}", given.2);
    assert_eq!(given.2["destination"]["scheme"], "standard");
    assert_eq!(given.2["secret"], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let gid = given.2["destination"]["id"].as_str().unwrap();
    assert_eq!(
        sender.destination(gid).await.unwrap().secrets[0].expose_bytes(),
        base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
    );

    // Schemes keyed with the string itself get hex, signed as given.
    for scheme in ["native-body-only", "github", "stripe", "slack", "shopify"] {
        let made = create(json!({"url": "http://127.0.0.1:9/h", "scheme": scheme})).await;
        assert_eq!(made.0, StatusCode::CREATED, "{scheme}: {:?}", made.2);
        assert_eq!(made.2["destination"]["scheme"], scheme);
        let secret = made.2["secret"].as_str().unwrap();
        assert_eq!(secret.len(), 64, "{scheme}");
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{scheme}");
        let did = made.2["destination"]["id"].as_str().unwrap();
        assert_eq!(
            sender.destination(did).await.unwrap().secrets[0].expose_bytes(),
            secret.as_bytes()
        );
    }
    let native = create(json!({"url": "http://127.0.0.1:9/n"})).await;
    assert_eq!(native.2["destination"]["scheme"], "native");

    // Refusals: an unknown scheme names the accepted ones; a secret the
    // scheme cannot read is refused before anything is stored.
    let before = sender.destinations().await.unwrap().len();
    let unknown = create(json!({"url": "http://127.0.0.1:9/u", "scheme": "hmac-sha1"})).await;
    assert_problem(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-scheme",
        "unknown scheme `hmac-sha1`",
    );
    assert!(
        unknown.2["detail"]
            .as_str()
            .unwrap()
            .contains("native, native-body-only, standard, github, stripe, slack, shopify"),
        "{:?}",
        unknown.2
    );
    assert_problem(
        &create(json!({"url": "http://127.0.0.1:9/u", "scheme": "standard", "secret": "whsec_not base64!"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "base64",
    );
    assert_problem(
        &create(json!({"url": "http://127.0.0.1:9/u", "scheme": 7})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-input",
        "scheme",
    );
    assert_eq!(sender.destinations().await.unwrap().len(), before);
}

/// A receiver on loopback that verifies with `layer` and counts what passes.
async fn verifying_receiver(
    listener: tokio::net::TcpListener,
    layer: VerifyLayer,
) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/hook",
            axum::routing::post(move |_: Verified| {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            }),
        )
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    hits
}

#[tokio::test]
async fn generated_standard_secret_pasted_into_a_receiver_verifies_a_real_delivery() {
    let s = setup().await;
    let base = serve(open_console(s.sender.clone())).await;
    let client = reqwest::Client::new();
    use reqwest::Method;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let (st, created) = http_json(
        &client,
        Method::POST,
        &format!("{base}/api/destinations"),
        Some(json!({"url": hook, "scheme": "standard"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["destination"]["id"].as_str().unwrap().to_owned();

    // The receiver is configured the way its operator would: the secret
    // string exactly as the console showed it, read by the scheme.
    let scheme = Scheme::standard();
    let secret = scheme
        .parse_secret(created["secret"].as_str().unwrap())
        .unwrap();
    let hits = verifying_receiver(
        listener,
        VerifyLayer::new(SecretSet::single(secret).unwrap()).scheme(scheme),
    )
    .await;

    let (st, test) = http_json(
        &client,
        Method::POST,
        &format!("{base}/api/destinations/{id}/test"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{test}");
    let delivery = test["id"].as_str().unwrap();
    let done = wait_for(
        &client,
        &format!("{base}/api/deliveries/{delivery}"),
        "the test delivery to finish",
        |v| v["delivery"]["status"] != "pending",
    )
    .await;
    assert_eq!(done["delivery"]["status"], "delivered", "{done}");
    assert_eq!(done["attempts"][0]["statusCode"], 200, "{done}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn patch_changes_the_event_filter_for_the_next_publish() {
    let s = setup().await;
    let base = serve(open_console(s.sender.clone())).await;
    let client = reqwest::Client::new();
    use reqwest::Method;
    let patch = |id: &str, body: Value| {
        let client = client.clone();
        let url = format!("{base}/api/destinations/{id}");
        async move { http_json(&client, Method::PATCH, &url, Some(body)).await }
    };

    let (st, created) = http_json(
        &client,
        Method::POST,
        &format!("{base}/api/destinations"),
        Some(json!({"url": format!("{}/ok", s.receiver_url), "events": ["kpi.alert"]})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["destination"]["id"].as_str().unwrap().to_owned();
    let completed = |n: u64| OutgoingEvent::new("ingestion.completed", &json!({"n": n})).unwrap();
    // Before: not subscribed (and the destination list is now cached).
    assert!(s.sender.publish(completed(1)).await.unwrap().is_empty());

    let (st, changed) = patch(&id, json!({"events": ["ingestion.*"]})).await;
    assert_eq!(st, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["events"],
        json!({"kind": "only", "types": ["ingestion.*"]})
    );
    assert_eq!(changed["enabled"], true, "enabled is left alone");
    // At once: the next publish goes to it, and it arrives.
    assert_eq!(s.sender.publish(completed(2)).await.unwrap().len(), 1);
    let alert = OutgoingEvent::new("kpi.alert", &json!({})).unwrap();
    assert!(s.sender.publish(alert).await.unwrap().is_empty());
    wait_for(
        &client,
        &format!("{base}/api/deliveries?destinationId={id}"),
        "the delivery after the change",
        |v| {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["status"] == "delivered")
        },
    )
    .await;
    assert_eq!(s.receiver.ok_hits.load(Ordering::SeqCst), 1);

    // `null`: every event.
    let (st, all) = patch(&id, json!({"events": null})).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    assert_eq!(all["events"], json!({"kind": "all"}));
    let other = OutgoingEvent::new("dashboard.ready", &json!({})).unwrap();
    assert_eq!(s.sender.publish(other).await.unwrap().len(), 1);

    // Both at once.
    let (st, both) = patch(&id, json!({"events": ["kpi.alert"], "enabled": false})).await;
    assert_eq!(st, StatusCode::OK, "{both}");
    assert_eq!(
        both["events"],
        json!({"kind": "only", "types": ["kpi.alert"]})
    );
    assert_eq!(both["enabled"], false);

    // Refusals leave the destination as it was, even the valid half.
    let rejected = [
        (
            json!({"events": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-event-filter",
            "empty",
        ),
        (
            json!({"events": ["kpi.alrt"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-event-filter",
            "unknown event type `kpi.alrt`",
        ),
        (
            json!({"events": ["nope.*"], "enabled": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-event-filter",
            "nope.*",
        ),
        (
            json!({"events": "kpi.alert"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "events",
        ),
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
            "enabled",
        ),
    ];
    for (body, status, kind, detail) in rejected {
        let (st, p) = patch(&id, body.clone()).await;
        assert_eq!(st, status, "{body}: {p}");
        assert!(
            p["type"].as_str().unwrap().ends_with(&format!("#{kind}")),
            "{body}: {p}"
        );
        assert!(
            p["detail"].as_str().unwrap().contains(detail),
            "{body}: {p}"
        );
    }
    let kept = s.sender.destination(&id).await.unwrap();
    assert_eq!(kept.events, EventFilter::only(["kpi.alert"]));
    assert!(!kept.enabled);
    let (st, p) = patch("dst_missing", json!({"events": ["kpi.alert"]})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("dst_missing"));
    s.handle.shutdown().await;
}

/// A started console with one dead letter (a test event the flaky
/// endpoint refused); returns the setup, the console's base URL and the
/// dead letter's id.
async fn console_with_a_dead_letter() -> (console_support::Setup, String, String) {
    let s = setup().await;
    let base = serve(open_console(s.sender.clone())).await;
    let flaky = s
        .sender
        .add_destination(NewDestination::new(
            format!("{}/flaky", s.receiver_url),
            "flaky-destination-key-0123456789",
        ))
        .await
        .unwrap();
    s.sender.send_test_event(&flaky.id).await.unwrap();
    let dlq = wait_for(
        &reqwest::Client::new(),
        &format!("{base}/api/dead-letters"),
        "a dead letter",
        |v| v["items"].as_array().unwrap().len() == 1,
    )
    .await;
    let id = dlq["items"][0]["id"].as_str().unwrap().to_owned();
    (s, base, id)
}

/// Every delivery, newest first, as `(status, id)`.
async fn delivery_statuses(
    sender: &Sender<MemoryStore>,
) -> Vec<(webhook_guard::sender::DeliveryStatus, String)> {
    let query = webhook_guard::sender::DeliveryQuery::default();
    let page = sender.deliveries(&query).await.unwrap();
    page.items.into_iter().map(|d| (d.status, d.id)).collect()
}

#[tokio::test]
async fn a_cross_site_form_post_to_replay_all_replays_nothing() {
    let (s, base, dead) = console_with_a_dead_letter().await;
    let before = delivery_statuses(&s.sender).await;
    let replay_all = format!("{base}/api/dead-letters/replay-all");
    let own_origin = base.clone();
    // What a browser sends for an HTML form on another site, and variants
    // a page could produce; each is refused before anything runs.
    let refused: [&[(&str, &str)]; 6] = [
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &[
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ],
        &[("origin", "null"), ("content-type", "application/json")],
        &[
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/json"),
        ],
        &[
            ("sec-fetch-site", "same-site"),
            ("content-type", "application/json"),
        ],
        &[
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/json"),
        ],
    ];
    for headers in refused {
        let res = raw(reqwest::Method::POST, &replay_all, headers, "").await;
        assert_problem(
            &res,
            StatusCode::FORBIDDEN,
            "cross-site-request",
            "another site",
        );
    }
    let replay_one = format!("{base}/api/dead-letters/{dead}/replay");
    let res = raw(
        reqwest::Method::POST,
        &replay_one,
        &[
            ("origin", "http://localhost.evil.example"),
            ("content-type", "application/json"),
        ],
        "",
    )
    .await;
    assert_eq!(res.0, StatusCode::FORBIDDEN, "{:?}", res.2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        delivery_statuses(&s.sender).await,
        before,
        "nothing replayed"
    );

    // The console's own page (same origin) may.
    let ok = raw(
        reqwest::Method::POST,
        &replay_all,
        &[
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/json"),
        ],
        "",
    )
    .await;
    assert_eq!(ok.0, StatusCode::ACCEPTED, "{:?}", ok.2);
    assert_eq!(ok.2["replayed"].as_array().unwrap().len(), 1);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn a_request_for_another_host_is_refused() {
    let s = setup().await;
    let base = serve(open_console(s.sender.clone())).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    // A page on a DNS name rebound to 127.0.0.1 is "same origin" to the
    // browser; only the Host it sends gives it away.
    let rebound = format!("evil.example:{port}");
    let create = raw(
        reqwest::Method::POST,
        &format!("{base}/api/destinations"),
        &[
            ("host", rebound.as_str()),
            ("origin", &format!("http://{rebound}")),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/json"),
        ],
        &json!({"url": format!("{}/ok", s.receiver_url)}).to_string(),
    )
    .await;
    assert_problem(
        &create,
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected-request",
        "does not answer for `evil.example",
    );
    assert!(
        !create.2.to_string().contains("secret\":"),
        "{:?}",
        create.2
    );
    assert!(s.sender.destinations().await.unwrap().is_empty());
    for path in ["api/destinations", "api/dead-letters", ""] {
        let res = raw(
            reqwest::Method::GET,
            &format!("{base}/{path}"),
            &[("host", rebound.as_str())],
            "",
        )
        .await;
        assert_eq!(res.0, StatusCode::MISDIRECTED_REQUEST, "/{path}");
    }
    // The loopback names are served on any port.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".into(),
    ] {
        let res = raw(
            reqwest::Method::GET,
            &format!("{base}/api/destinations"),
            &[("host", host.as_str())],
            "",
        )
        .await;
        assert_eq!(res.0, StatusCode::OK, "{host}");
    }
    s.handle.shutdown().await;
}

#[tokio::test]
async fn configured_hosts_replace_the_loopback_names() {
    let sender = loopback_sender();
    let base = serve(
        Console::new(sender)
            .allowed_hosts(["console.example.com"])
            .unwrap()
            .allow_unauthenticated()
            .router(),
    )
    .await;
    let get = |host: &'static str| {
        let url = format!("{base}/api/destinations");
        async move { raw(reqwest::Method::GET, &url, &[("host", host)], "").await }
    };
    assert_eq!(get("console.example.com").await.0, StatusCode::OK);
    let refused = get("localhost").await;
    assert_problem(
        &refused,
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected-request",
        "does not answer for `localhost`",
    );
    // A page on a rebound name can read the answer: it names no host the
    // console does serve.
    assert!(
        !refused.2.to_string().contains("console.example.com"),
        "{:?}",
        refused.2
    );
    let err = Console::new(loopback_sender())
        .allowed_hosts(["https://console.example.com"])
        .unwrap_err();
    assert!(err.to_string().contains("allowed_hosts"), "{err}");
}

#[tokio::test]
async fn a_change_that_does_not_say_json_gets_415() {
    let (s, base, dead) = console_with_a_dead_letter().await;
    let before = delivery_statuses(&s.sender).await;
    let d = s.sender.destinations().await.unwrap().remove(0);
    let create_body = json!({"url": format!("{}/ok", s.receiver_url)}).to_string();
    let changes = [
        (
            reqwest::Method::POST,
            "api/destinations".to_owned(),
            create_body.as_str(),
        ),
        (
            reqwest::Method::POST,
            "api/dead-letters/replay-all".into(),
            "",
        ),
        (
            reqwest::Method::POST,
            format!("api/dead-letters/{dead}/replay"),
            "",
        ),
        (
            reqwest::Method::POST,
            format!("api/destinations/{}/test", d.id),
            "",
        ),
        (
            reqwest::Method::PATCH,
            format!("api/destinations/{}", d.id),
            r#"{"enabled":false}"#,
        ),
        (
            reqwest::Method::DELETE,
            format!("api/destinations/{}", d.id),
            "",
        ),
    ];
    for (method, path, body) in &changes {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let headers: Vec<(&str, &str)> = content_type
                .map(|ct| ("content-type", ct))
                .into_iter()
                .collect();
            let res = raw(method.clone(), &format!("{base}/{path}"), &headers, body).await;
            assert_problem(
                &res,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "application/json",
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(delivery_statuses(&s.sender).await, before, "nothing sent");
    let still = s.sender.destinations().await.unwrap();
    assert_eq!(still.len(), 1, "nothing registered or deleted");
    assert!(still[0].enabled, "nothing disabled");

    // With a parameter, it is still JSON.
    let res = raw(
        reqwest::Method::DELETE,
        &format!("{base}/api/destinations/{}", d.id),
        &[("content-type", "Application/JSON; charset=utf-8")],
        "",
    )
    .await;
    assert_eq!(res.0, StatusCode::NO_CONTENT, "{:?}", res.2);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn the_apps_own_auth_layer_guards_page_and_api_after_the_host_check() {
    use axum::middleware::{self, Next};
    async fn require_admin(
        req: axum::extract::Request,
        next: Next,
    ) -> Result<axum::response::Response, StatusCode> {
        if req.headers().get("x-admin").is_some_and(|v| v == "yes") {
            Ok(next.run(req).await)
        } else {
            Err(StatusCode::FORBIDDEN)
        }
    }
    let base = serve(
        Console::new(loopback_sender())
            .auth_layer(middleware::from_fn(require_admin))
            .router(),
    )
    .await;
    for path in ["", "api/destinations"] {
        let url = format!("{base}/{path}");
        let denied = raw(reqwest::Method::GET, &url, &[], "").await;
        assert_eq!(denied.0, StatusCode::FORBIDDEN, "/{path}");
        let ok = raw(reqwest::Method::GET, &url, &[("x-admin", "yes")], "").await;
        assert_eq!(ok.0, StatusCode::OK, "/{path}");
        let rebound = raw(
            reqwest::Method::GET,
            &url,
            &[("x-admin", "yes"), ("host", "evil.example")],
            "",
        )
        .await;
        assert_eq!(rebound.0, StatusCode::MISDIRECTED_REQUEST, "/{path}");
    }
    let page = raw(reqwest::Method::GET, &base, &[("x-admin", "yes")], "").await;
    assert!(
        page.2
            .as_str()
            .unwrap()
            .contains(r#"data-token-required="false""#)
    );
}

/// The health API and its script sit behind the same checks as the rest:
/// the token for the API, the host check for both; the script is served
/// like the console's own, without a token.
#[tokio::test]
async fn health_api_needs_the_token_and_a_console_host() {
    let app = Console::new(loopback_sender())
        .bearer_token("tok-123")
        .router();
    let req = |uri: &str, host: &str, auth: Option<&str>| {
        let mut r = Request::get(uri).header("host", host);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.body(Body::empty()).unwrap()
    };
    let status = |r: Request<Body>| {
        let app = app.clone();
        async move { app.oneshot(r).await.unwrap().status() }
    };
    let denied = status(req("/api/health", "localhost", None)).await;
    assert_eq!(denied, StatusCode::UNAUTHORIZED);
    let rebound = status(req("/api/health", "evil.example", Some("Bearer tok-123"))).await;
    assert_eq!(rebound, StatusCode::MISDIRECTED_REQUEST);
    let ok = app
        .clone()
        .oneshot(req("/api/health", "localhost", Some("Bearer tok-123")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body = ok.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["nowMs"].is_i64(), "{json}");
    assert_eq!(json["destinations"], serde_json::json!([]));
    let script = app
        .clone()
        .oneshot(req("/assets/health.js", "localhost", None))
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
}
