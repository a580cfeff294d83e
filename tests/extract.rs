//! The extractors over real HTTP: typed events, the user's own types, raw
//! bytes, and the 400/422/500 problem responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;
use webhook_guard::event::{Envelope, Event};
use webhook_guard::extract::{VerifiedBytes, Webhook};
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, Verified, VerifyLayer};

const NOW: i64 = 1_736_937_000;
const SECRET: &str = "extract-test-secret";

/// A platform whose events look like `{"id","event_type","payload","timestamp"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "event_type", content = "payload", rename_all = "snake_case")]
enum OtherPlatform {
    OrderPaid { order_id: String, amount_cents: u64 },
    OrderRefunded { order_id: String },
}

async fn typed(Webhook(event): Webhook<Event>) -> String {
    match event {
        Event::IngestionCompleted(done) => {
            format!(
                "completed {} {} {}",
                done.job_id, done.table, done.rows_ingested
            )
        }
        Event::Unknown { event, data } => format!("unknown {event} {}", data.is_some()),
        other => format!("other {}", other.event_type()),
    }
}

async fn envelope(v: Verified, Webhook(env): Webhook<Envelope>) -> String {
    format!(
        "{} {} {} {}",
        v.id(),
        env.tenant_id,
        env.timestamp.unix_timestamp(),
        env.event_type()
    )
}

async fn own(Webhook(event): Webhook<OtherPlatform>) -> String {
    match event {
        OtherPlatform::OrderPaid {
            order_id,
            amount_cents,
        } => format!("paid {order_id} {amount_cents}"),
        OtherPlatform::OrderRefunded { order_id } => format!("refunded {order_id}"),
    }
}

async fn raw(VerifiedBytes(bytes): VerifiedBytes, v: Verified) -> Vec<u8> {
    assert_eq!(&bytes, v.body());
    bytes.to_vec()
}

async fn serve() -> String {
    let secrets = SecretSet::single(SECRET).unwrap();
    let verified = Router::new()
        .route("/typed", post(typed))
        .route("/envelope", post(envelope))
        .route("/own", post(own))
        .route("/raw", post(raw))
        .layer(VerifyLayer::new(secrets).clock(FixedClock::at(NOW)));
    let app = verified.route("/unguarded", post(typed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn post_signed(base: &str, path: &str, body: &[u8]) -> reqwest::Response {
    let secrets = SecretSet::single(SECRET).unwrap();
    let headers = Scheme::native()
        .sign(&secrets, &Message::new("evt_42", NOW, body))
        .unwrap();
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn problem(res: reqwest::Response) -> Value {
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{res:?}"
    );
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

const COMPLETED: &[u8] = br#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;

#[tokio::test]
async fn typed_handlers_get_variants_and_unknown_types() {
    let base = serve().await;
    let res = post_signed(&base, "/typed", COMPLETED).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        "completed job_xyz sales_data 15234"
    );

    let unknown = br#"{"event":"model.trained","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"x":1},"newTopLevel":true}"#;
    let res = post_signed(&base, "/typed", unknown).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "unknown model.trained true");

    let res = post_signed(&base, "/envelope", COMPLETED).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        "evt_42 tenant_abc123 1736937000 ingestion.completed"
    );
}

#[tokio::test]
async fn users_own_types_work_too() {
    let base = serve().await;
    let body = br#"{"id":"o_1","event_type":"order_paid","payload":{"order_id":"o_1","amount_cents":1250},"timestamp":1736937000}"#;
    let res = post_signed(&base, "/own", body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "paid o_1 1250");

    let body = br#"{"id":"o_1","event_type":"order_lost","payload":{}}"#;
    let res = post_signed(&base, "/own", body).await;
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown variant `order_lost`"),
        "{p}"
    );
}

#[tokio::test]
async fn raw_bytes_are_the_verified_bytes() {
    let base = serve().await;
    let body = b"\x00\xffnot json at all";
    let res = post_signed(&base, "/raw", body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(&res.bytes().await.unwrap()[..], body);
}

#[tokio::test]
async fn syntax_errors_are_400_with_position() {
    let base = serve().await;
    for (body, want) in [
        (&b"{\"event\":"[..], "EOF while parsing"),
        (b"{\"event\" \"x\"}", "expected `:`"),
        (b"{\"event\":\"x\"} trailing", "trailing characters"),
        (b"", "EOF while parsing"),
        // A shape error comes first, but the body is not JSON at all: 400.
        (
            br#"{"event":"kpi.alert","data":0{"kpiId":"k"}}"#,
            "expected `,` or `}`",
        ),
    ] {
        let res = post_signed(&base, "/typed", body).await;
        assert_eq!(res.status(), 400, "{body:?}");
        let p = problem(res).await;
        assert_eq!(p["status"], 400);
        assert_eq!(
            p["type"],
            "https://docs.rs/webhook-guard/latest/webhook_guard/extract/struct.InvalidJson.html"
        );
        assert!(p["detail"].as_str().unwrap().contains(want), "{p}");
        assert!(p["line"].as_u64().unwrap() >= 1, "{p}");
        assert!(p["column"].is_u64(), "{p}");
    }
}

#[tokio::test]
async fn shape_errors_are_422_with_the_json_path() {
    let base = serve().await;
    for (body, path, want) in [
        (
            &br#"{"event":"ingestion.completed","data":{"jobId":"j","table":"t","rowsIngested":"many","duration":1}}"#[..],
            "data.rowsIngested",
            "invalid type: string \"many\", expected u64",
        ),
        (
            br#"{"event":"ingestion.completed","data":{"jobId":"j","table":"t","rowsIngested":1}}"#,
            "data",
            "missing field `duration`",
        ),
        (br#"{"data":{}}"#, ".", "missing field `event`"),
        (br#"{"event":["x"]}"#, "event", "the event type as a string"),
    ] {
        let res = post_signed(&base, "/typed", body).await;
        assert_eq!(res.status(), 422);
        let p = problem(res).await;
        assert_eq!(p["status"], 422);
        assert_eq!(
            p["type"],
            "https://docs.rs/webhook-guard/latest/webhook_guard/extract/struct.InvalidPayload.html"
        );
        assert_eq!(p["path"], path, "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{detail}");
        assert!(detail.contains(&format!("`{path}`")), "{detail}");
    }
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_500_naming_it() {
    let base = serve().await;
    let res = reqwest::Client::new()
        .post(format!("{base}/unguarded"))
        .body(COMPLETED.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let p = problem(res).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("`VerifyLayer` is not applied"),
        "{p}"
    );
}

#[tokio::test]
async fn forged_requests_never_reach_the_extractor() {
    let base = serve().await;
    let mut body = COMPLETED.to_vec();
    let secrets = SecretSet::single(SECRET).unwrap();
    let headers = Scheme::native()
        .sign(&secrets, &Message::new("evt_42", NOW, &body))
        .unwrap();
    body[30] ^= 1;
    let res = reqwest::Client::new()
        .post(format!("{base}/typed"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let p = problem(res).await;
    assert!(!p.to_string().contains(SECRET));
}

#[tokio::test]
async fn paths_are_reported_when_data_comes_before_event() {
    let base = serve().await;
    let body = br#"{"data":{"kpiId":"k","value":"high","threshold":1},"event":"kpi.alert"}"#;
    let res = post_signed(&base, "/typed", body).await;
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert_eq!(p["path"], "data.value", "{p}");
    assert_eq!(
        p["detail"],
        "the webhook payload does not have the expected shape at `data.value`: \
         invalid type: string \"high\", expected f64",
    );
}
