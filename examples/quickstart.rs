//! The tour: `cargo run --example quickstart`.
//!
//! Starts a webhook receiver on a free local port, then plays the sender:
//! signs requests with [`Scheme::native`] and sends them over real HTTP, one
//! case per thing the receiver must get right. Prints one line per case and
//! exits with status 0 only when every answer was the expected one.
//!
//! To add a case, add an entry to [`cases`]; to add a capability to the
//! receiver, add a layer in [`receiver`].

use std::process::ExitCode;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use tower::ServiceBuilder;
use webhook_guard::problem::PROBLEM_JSON;
use webhook_guard::{
    Clock, Message, Scheme, SecretSet, SignError, SystemClock, Verified, VerifyLayer,
};

/// The secret both sides share. In real use it comes from configuration.
const SECRET: &str = "quickstart-secret";

/// Largest body the receiver accepts here (the default is 1 MiB).
const BODY_LIMIT: usize = 64 * 1024;

/// The receiver: `POST /webhooks` behind its layers, which run top to bottom.
fn receiver(secrets: SecretSet) -> Router {
    Router::new()
        .route("/webhooks", post(on_webhook))
        .layer(ServiceBuilder::new().layer(VerifyLayer::new(secrets).body_limit(BODY_LIMIT)))
}

/// Runs only for authentic, fresh requests.
async fn on_webhook(verified: Verified) -> String {
    format!(
        "handled {} ({} bytes)",
        verified.id(),
        verified.body().len()
    )
}

/// One request and the status the receiver must answer it with.
struct Case {
    /// What is sent, in a few words.
    what: String,
    expect: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// An event as a data platform would send it.
fn event(rows: u64) -> Vec<u8> {
    format!(
        r#"{{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{{"jobId":"job_xyz","table":"sales_data","rowsIngested":{rows},"duration":3200}}}}"#
    )
    .into_bytes()
}

/// An event of about `size` bytes: one with a long `attachment` field.
fn large_event(size: usize) -> Vec<u8> {
    format!(
        r#"{{"event":"analysis.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{{"attachment":"{}"}}}}"#,
        "x".repeat(size)
    )
    .into_bytes()
}

/// Every case, signed at `now` (unix seconds) with `secrets`.
fn cases(secrets: &SecretSet, now: i64) -> Result<Vec<Case>, SignError> {
    let native = Scheme::native();
    let body = event(15_234);
    let sign = |id: &str, ts: i64, body: &[u8]| native.sign(secrets, &Message::new(id, ts, body));

    let large = large_event(100 * 1024);
    Ok(vec![
        Case {
            what: "a correctly signed ingestion.completed event".into(),
            expect: StatusCode::OK,
            headers: sign("evt_001", now, &body)?,
            body: body.clone(),
        },
        Case {
            what: "the same event with rowsIngested changed after signing".into(),
            expect: StatusCode::UNAUTHORIZED,
            headers: sign("evt_002", now, &body)?,
            body: event(99_999),
        },
        Case {
            what: "a correctly signed event stamped 10 minutes ago (a replay)".into(),
            expect: StatusCode::UNAUTHORIZED,
            headers: sign("evt_003", now - 600, &body)?,
            body: body.clone(),
        },
        Case {
            what: format!(
                "a correctly signed {} KiB analysis.completed event (the limit is {} KiB)",
                large.len() / 1024,
                BODY_LIMIT / 1024
            ),
            expect: StatusCode::PAYLOAD_TOO_LARGE,
            headers: sign("evt_004", now, &large)?,
            body: large,
        },
    ])
}

/// What came back.
struct Outcome {
    status: StatusCode,
    /// The handler's answer, or the problem's `title: detail`.
    said: String,
}

async fn send(client: &reqwest::Client, url: &str, case: &Case) -> Result<Outcome, String> {
    let response = client
        .post(url)
        .headers(case.headers.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(case.body.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let body: Bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?;
    let said = if is_problem {
        let problem: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("bad problem document: {e}"))?;
        format!(
            "{}: {}",
            problem["title"].as_str().unwrap_or("(no title)"),
            problem["detail"].as_str().unwrap_or("(no detail)")
        )
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    Ok(Outcome { status, said })
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let secrets = SecretSet::single(SECRET)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, receiver(secrets.clone())).into_future());
    println!("webhook-guard quickstart");
    println!(
        "receiver on {url}: native scheme, 5 min replay window, {} KiB body limit\n",
        BODY_LIMIT / 1024
    );

    let client = reqwest::Client::new();
    let cases = cases(&secrets, SystemClock.now_unix())?;
    let mut passed = 0;
    for case in &cases {
        let (ok, got) = match send(&client, &url, case).await {
            Ok(outcome) => (
                outcome.status == case.expect,
                format!("got {}: {}", outcome.status, outcome.said),
            ),
            Err(e) => (false, e),
        };
        passed += usize::from(ok);
        println!("{} {}", if ok { "✓" } else { "✗" }, case.what);
        println!("    expected {}, {got}", case.expect.as_u16());
    }

    println!();
    if passed == cases.len() {
        println!("all {passed} cases answered as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} of {} cases did NOT answer as expected",
            cases.len() - passed,
            cases.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
