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
use webhook_guard::idempotency::{DUPLICATE_HEADER, IdempotencyLayer};
use webhook_guard::problem::PROBLEM_JSON;
use webhook_guard::{
    Clock, Event, Message, Scheme, SecretSet, SignError, SystemClock, Verified, VerifyLayer,
    Webhook,
};

/// The secret both sides share. In real use it comes from configuration.
const SECRET: &str = "quickstart-secret";

/// Largest body the receiver accepts here (the default is 1 MiB).
const BODY_LIMIT: usize = 64 * 1024;

/// The receiver: `POST /webhooks` behind its layers, which run top to bottom.
fn receiver(secrets: SecretSet) -> Router {
    Router::new().route("/webhooks", post(on_webhook)).layer(
        ServiceBuilder::new()
            .layer(VerifyLayer::new(secrets).body_limit(BODY_LIMIT))
            .layer(IdempotencyLayer::in_memory()),
    )
}

/// Runs only for authentic, fresh, first-seen events, with the body already
/// decoded into the typed [`Event`].
async fn on_webhook(verified: Verified, Webhook(event): Webhook<Event>) -> String {
    let what = match &event {
        Event::IngestionCompleted(e) => format!(
            "IngestionCompleted: job {} loaded {} rows into {} in {:?}",
            e.job_id, e.rows_ingested, e.table, e.duration
        ),
        Event::Unknown { event, .. } => {
            format!("Unknown event type `{event}`, accepted so delivery never fails")
        }
        other => other.event_type().to_owned(),
    };
    format!("handled {}: {what}", verified.id())
}

/// One request and the status the receiver must answer it with.
struct Case {
    /// What is sent, in a few words.
    what: String,
    expect: StatusCode,
    /// Whether the receiver must answer it as a redelivery, without calling
    /// the handler.
    duplicate: bool,
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
    let unknown = br#"{"event":"model.trained","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"modelId":"m_1"}}"#.to_vec();
    Ok(vec![
        Case {
            what: "a correctly signed ingestion.completed event".into(),
            expect: StatusCode::OK,
            duplicate: false,
            headers: sign("evt_001", now, &body)?,
            body: body.clone(),
        },
        Case {
            what: "the same event delivered again (a sender retry)".into(),
            expect: StatusCode::OK,
            duplicate: true,
            headers: sign("evt_001", now, &body)?,
            body: body.clone(),
        },
        Case {
            what: "an event type this receiver does not know yet (model.trained)".into(),
            expect: StatusCode::OK,
            duplicate: false,
            headers: sign("evt_005", now, &unknown)?,
            body: unknown.clone(),
        },
        Case {
            what: "the same event with rowsIngested changed after signing".into(),
            expect: StatusCode::UNAUTHORIZED,
            duplicate: false,
            headers: sign("evt_002", now, &body)?,
            body: event(99_999),
        },
        Case {
            what: "a correctly signed event stamped 10 minutes ago (a replay)".into(),
            expect: StatusCode::UNAUTHORIZED,
            duplicate: false,
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
            duplicate: false,
            headers: sign("evt_004", now, &large)?,
            body: large,
        },
    ])
}

/// What came back.
struct Outcome {
    status: StatusCode,
    /// `X-Webhook-Duplicate: true` was set: the handler was not called.
    duplicate: bool,
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
    let duplicate = response
        .headers()
        .get(DUPLICATE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"true");
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
    Ok(Outcome {
        status,
        duplicate,
        said,
    })
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let secrets = SecretSet::single(SECRET)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, receiver(secrets.clone())).into_future());
    println!("webhook-guard quickstart");
    println!(
        "receiver on {url}: native scheme, 5 min replay window, {} KiB body limit, in-memory dedup\n",
        BODY_LIMIT / 1024
    );

    let client = reqwest::Client::new();
    let cases = cases(&secrets, SystemClock.now_unix())?;
    let mut passed = 0;
    for case in &cases {
        let (ok, got) = match send(&client, &url, case).await {
            Ok(outcome) => (
                outcome.status == case.expect && outcome.duplicate == case.duplicate,
                format!(
                    "got {}{}: {}",
                    outcome.status,
                    if outcome.duplicate {
                        " (duplicate, handler not called)"
                    } else {
                        ""
                    },
                    outcome.said
                ),
            ),
            Err(e) => (false, e),
        };
        passed += usize::from(ok);
        println!("{} {}", if ok { "✓" } else { "✗" }, case.what);
        println!(
            "    expected {}{}, {got}",
            case.expect.as_u16(),
            if case.duplicate { " (duplicate)" } else { "" }
        );
    }

    let (inbox_passed, inbox_total) = inbox_tour::run(&client).await?;
    let (sender_passed, sender_total) = sender_tour::run().await?;
    passed += inbox_passed + sender_passed;
    let total = cases.len() + inbox_total + sender_total;

    println!();
    if passed == total {
        println!("all {passed} cases answered as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} of {} cases did NOT answer as expected",
            total - passed,
            total
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Processing later: an [`Inbox`](webhook_guard::inbox::Inbox) stores each
/// verified event in SQLite and answers at once; workers run the handler
/// separately and retry what fails.
#[cfg(feature = "inbox")]
mod inbox_tour {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::{Router, routing::post};
    use webhook_guard::inbox::{Inbox, InboxEvent, RetryPolicy, SqliteInboxStore};
    use webhook_guard::{Clock, Event, Message, Scheme, SecretSet, SystemClock, VerifyLayer};

    use super::{Case, event, send};

    const SECRET: &str = "quickstart-inbox-secret";

    fn check(ok: bool, what: &str, got: String) -> usize {
        println!("{} {what}", if ok { "✓" } else { "✗" });
        println!("    {got}");
        usize::from(ok)
    }

    /// Waits until the handler has finished `n` events, for at most 10 s.
    async fn processed(done: &Mutex<Vec<(String, u32)>>, n: usize) -> Vec<(String, u32)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = done.lock().map(|d| d.clone()).unwrap_or_default();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn run(
        client: &reqwest::Client,
    ) -> Result<(usize, usize), Box<dyn std::error::Error>> {
        println!("\nreceiver with an inbox: store, answer at once, process in a worker\n");
        let dir =
            std::env::temp_dir().join(format!("webhook-guard-quickstart-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let secrets = SecretSet::single(SECRET)?;

        // The inbox: a SQLite file, one retry after 100 ms (1, 5 and 15
        // minutes by default), then the dead letter queue.
        let inbox = Inbox::builder(SqliteInboxStore::open(dir.join("inbox.db"))?)
            .retry(RetryPolicy::new([Duration::from_millis(100)]))
            .build()
            .await?;
        // The handler: slow (300 ms), and it fails the first attempt at
        // `evt_flaky`. It records what it finished.
        let done = Arc::new(Mutex::new(Vec::new()));
        let finished = done.clone();
        let workers = inbox.start(move |e: InboxEvent<Event>| {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if e.id == "evt_flaky" && e.attempt == 1 {
                    return Err("the database was busy");
                }
                if let Ok(mut d) = finished.lock() {
                    d.push((e.id, e.attempt));
                }
                Ok(())
            }
        });
        let app = Router::new()
            .route("/webhooks", post(|| async {}))
            .layer(inbox.layer())
            .layer(VerifyLayer::new(secrets.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/webhooks", listener.local_addr()?);
        tokio::spawn(axum::serve(listener, app).into_future());

        let now = SystemClock.now_unix();
        let case = |id: &str| -> Result<Case, webhook_guard::SignError> {
            let body = event(15_234);
            Ok(Case {
                what: String::new(),
                expect: http::StatusCode::OK,
                duplicate: false,
                headers: Scheme::native().sign(&secrets, &Message::new(id, now, &body))?,
                body,
            })
        };
        let mut passed = 0;

        let started = Instant::now();
        let first = send(client, &url, &case("evt_inbox")?).await?;
        let answered_in = started.elapsed();
        let before = processed(&done, 0).await.len();
        passed += check(
            first.status == http::StatusCode::OK && before == 0,
            "an event is stored and answered before the (300 ms) handler finished",
            format!(
                "got {} in {answered_in:.0?}; handled so far: {before}",
                first.status
            ),
        );

        let again = send(client, &url, &case("evt_inbox")?).await?;
        passed += check(
            again.status == http::StatusCode::OK && again.duplicate,
            "the same event again is answered as a duplicate and not stored twice",
            format!("got {}, duplicate: {}", again.status, again.duplicate),
        );

        let flaky = send(client, &url, &case("evt_flaky")?).await?;
        let seen = processed(&done, 2).await;
        let ok = flaky.status == http::StatusCode::OK
            && seen.contains(&("evt_inbox".into(), 1))
            && seen.contains(&("evt_flaky".into(), 2))
            && seen.len() == 2;
        passed += check(
            ok,
            "the handler ran once per event; a failed attempt was retried",
            format!("finished (id, attempt): {seen:?}"),
        );

        workers.shutdown().await;
        drop(inbox);
        let _ = std::fs::remove_dir_all(&dir);
        Ok((passed, 3))
    }
}

/// Without the `inbox` feature the tour skips processing later.
#[cfg(not(feature = "inbox"))]
mod inbox_tour {
    pub(super) async fn run(
        _: &reqwest::Client,
    ) -> Result<(usize, usize), Box<dyn std::error::Error>> {
        println!(
            "\n(processing later: `cargo run --example quickstart --features inbox` also \
             stores events in an inbox, answers at once and retries a failing handler)"
        );
        Ok((0, 0))
    }
}

/// The other half: a [`Sender`](webhook_guard::sender::Sender) delivering to
/// receivers on loopback, with retries, the dead letter queue and a replay.
#[cfg(feature = "sender")]
mod sender_tour {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use axum::{Router, routing::post};
    use http::StatusCode;
    use webhook_guard::sender::{
        AddressPolicy, DeliveryQuery, DeliveryStatus, MemoryStore, NewDestination, OutgoingEvent,
        RetryPolicy, Sender,
    };
    use webhook_guard::{IdempotencyLayer, SecretSet, Verified, VerifyLayer};

    const SECRET: &str = "quickstart-sender-secret";

    fn check(ok: bool, what: &str, got: String) -> usize {
        println!("{} {what}", if ok { "✓" } else { "✗" });
        println!("    {got}");
        usize::from(ok)
    }

    /// Waits until no delivery is pending, for at most 10 s.
    async fn settle(sender: &Sender<MemoryStore>) -> Result<(), Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let pending = DeliveryQuery::new().status(DeliveryStatus::Pending);
        while !sender.deliveries(&pending).await?.items.is_empty() {
            if Instant::now() > deadline {
                return Err("deliveries still pending after 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub(super) async fn run() -> Result<(usize, usize), Box<dyn std::error::Error>> {
        println!("\nsender -> receiver on loopback (retries shortened to 100 ms and 200 ms)\n");
        // One endpoint that works, one that answers 503 until it recovers.
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let receiver = Router::new()
            .route("/ok", post(|_: Verified| async { StatusCode::OK }))
            .route(
                "/flaky",
                post(move |_: Verified| {
                    let flag = flag.clone();
                    async move {
                        if flag.load(Ordering::SeqCst) {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    }
                }),
            )
            .layer(
                tower::ServiceBuilder::new()
                    .layer(VerifyLayer::new(SecretSet::single(SECRET)?))
                    .layer(IdempotencyLayer::in_memory()),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(axum::serve(listener, receiver).into_future());

        let sender = Sender::builder(MemoryStore::new())
            // Loopback is refused by default (SSRF guard); allow it for the demo.
            .address_policy(AddressPolicy::new().allow("127.0.0.1")?)
            .retry(RetryPolicy::new([
                Duration::from_millis(100),
                Duration::from_millis(200),
            ]))
            .poll_interval(Duration::from_millis(20))
            .build()?;
        let ok = sender
            .add_destination(NewDestination::new(format!("http://{addr}/ok"), SECRET))
            .await?;
        let flaky = sender
            .add_destination(NewDestination::new(format!("http://{addr}/flaky"), SECRET))
            .await?;
        let workers = sender.start();

        let event = OutgoingEvent::new(
            "ingestion.completed",
            &serde_json::json!({
                "event": "ingestion.completed",
                "timestamp": "2025-01-15T10:30:00Z",
                "tenantId": "tenant_abc123",
                "data": {"jobId": "job_xyz", "table": "sales_data", "rowsIngested": 15234, "duration": 3200}
            }),
        )?;
        let published = sender.publish(event).await?;
        settle(&sender).await?;

        let mut passed = 0;
        let delivered = sender
            .deliveries(&DeliveryQuery::new().destination(&ok.id))
            .await?;
        let first = delivered.items.first();
        passed += check(
            first.is_some_and(|d| d.status == DeliveryStatus::Delivered),
            "one event published, delivered to the working endpoint",
            format!("status {:?}", first.map(|d| d.status)),
        );

        let dlq = sender
            .dead_letters(&DeliveryQuery::new().destination(&flaky.id))
            .await?;
        let dead = dlq.items.first();
        passed += check(
            dead.is_some(),
            "the failing endpoint's delivery lands in the dead letter queue after 3 attempts",
            format!(
                "last error: {}",
                dead.and_then(|d| d.last_error.as_deref())
                    .unwrap_or("(none)")
            ),
        );

        let mut replayed_ok = false;
        let mut got = String::from("nothing to replay");
        if let Some(dead) = dead {
            up.store(true, Ordering::SeqCst);
            let replay = sender.replay_dead_letter(&dead.id).await?;
            settle(&sender).await?;
            let history = sender.delivery_history(&replay.id).await?;
            replayed_ok = history.delivery.status == DeliveryStatus::Delivered
                && replay.event_id == published[0].event_id;
            got = format!(
                "status {:?}, same event id {}",
                history.delivery.status, replay.event_id
            );
        }
        passed += check(
            replayed_ok,
            "the endpoint recovers; replaying the dead letter delivers the same event",
            got,
        );
        workers.shutdown().await;
        Ok((passed, 3))
    }
}

/// Without the `sender` feature the tour covers the receiving side only.
#[cfg(not(feature = "sender"))]
mod sender_tour {
    pub(super) async fn run() -> Result<(usize, usize), Box<dyn std::error::Error>> {
        println!(
            "\n(the sending side: `cargo run --example quickstart --features sender` also \
             delivers, dead-letters and replays an event)"
        );
        Ok((0, 0))
    }
}
