//! The console's JSON API: through `oneshot`, and over real HTTP against a
//! started sender and a loopback receiver.
#![cfg(feature = "console")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use webhook_guard::sender::console::{self, Console};
use webhook_guard::sender::{AddressPolicy, MemoryStore, NewDestination, Sender};

use console_support::{HOSTILE_BODY, serve, setup};

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
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
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
    let app = console::router(loopback_sender());
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
    let app = console::router(sender.clone());
    let created = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/x", "secret": "operator-chosen-secret", "events": ["kpi.*", "ingestion.completed"]})),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED);
    assert_eq!(created.2["secret"], "operator-chosen-secret");
    assert_eq!(created.2["secretGenerated"], false);
    assert_eq!(
        created.2["destination"]["events"],
        json!({"kind": "only", "types": ["kpi.*", "ingestion.completed"]})
    );
    let id = created.2["destination"]["id"].as_str().unwrap();
    // The sender holds the given secret.
    let stored = sender.destination(id).await.unwrap();
    assert_eq!(stored.secrets[0].expose_bytes(), b"operator-chosen-secret");
    let list = call(&app, "GET", "/api/destinations", None).await;
    assert!(!list.2.to_string().contains("operator-chosen-secret"));
}

#[tokio::test]
async fn bad_input_gets_specific_problems() {
    // Default address policy: internal addresses are refused.
    let app = console::router(Sender::builder(MemoryStore::new()).build().unwrap());
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
    assert_problem(
        &post(json!({"url": "http://10.0.0.1/hooks"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "forbidden-address",
        "10.0.0.1",
    );
    assert_problem(
        &post(json!({"url": "http://127.0.0.1/hooks"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "forbidden-address",
        "127.0.0.1",
    );
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
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
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
        .router();
    let page = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
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
    let app = Console::new(loopback_sender())
        .bearer_token("tok-123")
        .router();
    let req = |uri: &str, auth: Option<&str>| {
        let mut r = Request::get(uri);
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
    let app = Router::new().nest("/admin/webhooks", console::router(loopback_sender()));
    for path in ["/admin/webhooks", "/admin/webhooks/"] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
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
        .oneshot(Request::get("/admin/webhooks").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let css = app
        .clone()
        .oneshot(
            Request::get("/admin/webhooks/assets/console.css")
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
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
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
    let base = serve(Router::new().nest("/console", console::router(s.sender.clone()))).await;
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
            NewDestination::new("http://127.0.0.1:9/r", "rust-side-secret").id("dst_rust"),
        )
        .await
        .unwrap();
    let app = console::router(sender);
    let one = call(&app, "GET", "/api/destinations/dst_rust", None).await;
    assert_eq!(one.0, StatusCode::OK);
    assert_eq!(one.2["paused"], false);
    assert!(!one.2.to_string().contains("rust-side-secret"));
}

#[tokio::test]
async fn rotating_a_secret_shows_the_new_one_once_and_keeps_the_old_for_the_overlap() {
    let sender = loopback_sender();
    let app = console::router(sender.clone());
    let created = call(
        &app,
        "POST",
        "/api/destinations",
        Some(json!({"url": "http://127.0.0.1:9/r", "secret": "old-secret"})),
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
    assert_eq!(stored.secrets[1].expose_bytes(), b"old-secret");
    let shown = call(&app, "GET", &format!("/api/destinations/{id}"), None).await;
    assert!(!shown.2.to_string().contains(&new_secret));
    assert!(!rotated.2["destination"].to_string().contains("old-secret"));

    let given = call(
        &app,
        "POST",
        &format!("/api/destinations/{id}/rotate-secret"),
        Some(json!({"secret": "third"})),
    )
    .await;
    assert_eq!(given.2["secret"], "third");
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
