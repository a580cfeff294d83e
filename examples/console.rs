//! The operator console over a real sender: click through the whole story.
//!
//! ```sh
//! cargo run --example console --features console,sqlite
//! ```
//!
//! Starts a sender with a SQLite queue (in a temporary directory), a local
//! receiver, and the console, then prints the console's URL and the token
//! to sign in with (a fresh random one unless `CONSOLE_TOKEN` is set). The
//! receiver has three endpoints, already registered:
//!
//! - `/ok` answers `200`;
//! - `/flaky` fails every other request with a `500`, so deliveries retry
//!   and now and then one lands in the dead letter queue;
//! - `/down` answers `503` until you open `/heal` on the receiver, so
//!   everything sent there is dead-lettered: replay it after healing.
//!
//! An event from the built-in catalogue is published every few seconds.
//! Register more endpoints from the page (`http://127.0.0.1:<receiver
//! port>/ok` works; internal addresses other than 127.0.0.1 are refused),
//! press Test, open the history, replay the dead letters.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CONSOLE_PORT` | the console's port | `8080`; `0` picks a free one |
//! | `CONSOLE_TOKEN` | the bearer token the API requires | 32 random bytes in hex, printed |
//! | `CONSOLE_RUN_SECONDS` | stop after this long | run until Ctrl-C |

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use webhook_guard::Event;
use webhook_guard::sender::console::Console;
use webhook_guard::sender::{
    AddressPolicy, EventFilter, NewDestination, OutgoingEvent, RetryPolicy, Sender, SqliteStore,
};

#[derive(Clone, Default)]
struct Receiver {
    flaky_calls: Arc<AtomicUsize>,
    healed: Arc<AtomicBool>,
}

async fn ok() -> &'static str {
    "received"
}

async fn flaky(State(r): State<Receiver>) -> (StatusCode, &'static str) {
    if r.flaky_calls.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        (StatusCode::INTERNAL_SERVER_ERROR, "temporarily broken")
    } else {
        (StatusCode::OK, "received on the second try")
    }
}

async fn down(State(r): State<Receiver>) -> (StatusCode, &'static str) {
    if r.healed.load(Ordering::SeqCst) {
        (StatusCode::OK, "back up")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance")
    }
}

async fn heal(State(r): State<Receiver>) -> &'static str {
    r.healed.store(true, Ordering::SeqCst);
    "/down answers 200 from now on; replay its dead letters in the console"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let port: u16 = std::env::var("CONSOLE_PORT")
        .unwrap_or("8080".into())
        .parse()?;
    let run_for = std::env::var("CONSOLE_RUN_SECONDS")
        .ok()
        .map(|s| s.parse::<u64>().map(Duration::from_secs))
        .transpose()?;

    // The receiver.
    let receiver = Receiver::default();
    let receiver_app = Router::new()
        .route("/ok", post(ok))
        .route("/flaky", post(flaky))
        .route("/down", post(down))
        .route("/heal", get(heal))
        .with_state(receiver);
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}", receiver_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(receiver_listener, receiver_app).await });

    // The sender, with its queue in SQLite and a short retry schedule so the
    // dead letter queue fills within seconds.
    let dir = tempfile::tempdir()?;
    let sender = Sender::builder(SqliteStore::open(dir.path().join("console-demo.db"))?)
        .address_policy(AddressPolicy::new().allow("127.0.0.1")?)
        .retry(RetryPolicy::new([Duration::from_secs(2)]))
        .build()?;
    let workers = sender.start();
    for (path, events) in [
        ("ok", EventFilter::All),
        ("flaky", EventFilter::only(["kpi.*", "ingestion.*"])),
        ("down", EventFilter::only(["ingestion.failed", "kpi.alert"])),
    ] {
        sender
            .add_destination(
                NewDestination::new(
                    format!("{receiver_url}/{path}"),
                    "console-demo-secret-0123456789",
                )
                .events(events),
            )
            .await?;
    }

    // Something to deliver.
    let publisher = sender.clone();
    tokio::spawn(async move {
        for n in 0usize.. {
            let event_type = Event::CATALOGUE[n % Event::CATALOGUE.len()];
            let body = serde_json::json!({
                "event": event_type,
                "timestamp": time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                "tenantId": "tenant_demo",
                "data": { "n": n },
            });
            match OutgoingEvent::new(event_type, &body) {
                Ok(event) => {
                    if let Err(e) = publisher.publish(event).await {
                        eprintln!("publish failed: {e}");
                    }
                }
                Err(e) => eprintln!("cannot build event: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    });

    // The console, behind a bearer token: the given one, or a fresh one.
    let (token, token_note) = match std::env::var("CONSOLE_TOKEN") {
        Ok(token) if !token.is_empty() => (token, "from CONSOLE_TOKEN"),
        _ => (
            hex::encode(rand::random::<[u8; 32]>()),
            "generated for this run; set CONSOLE_TOKEN to choose one",
        ),
    };
    let console = Console::new(sender).refresh_seconds(3).bearer_token(&token);
    let app = Router::new().nest("/webhooks", console.router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let console_url = format!("http://{}/webhooks", listener.local_addr()?);
    println!("console:  {console_url}");
    println!("token:    {token} ({token_note})");
    println!("receiver: {receiver_url} (open {receiver_url}/heal to bring /down back)");
    let server = axum::serve(listener, app);
    match run_for {
        Some(d) => {
            let _ = tokio::time::timeout(d, server).await;
        }
        None => {
            server
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    workers.shutdown().await;
    Ok(())
}
