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
//! | `WEBHOOK_DB` | SQLite file holding the queue | a file in a temporary directory |
//! | `WEBHOOK_DATABASE_URL` | `postgres://user:password@host/db`: a queue shared with other nodes (build with `--features console,sqlite,postgres`); `WEBHOOK_DB` is then unused | unset |
//! | `WEBHOOK_LEASE_SECS` | how long a claimed delivery stays leased to this node: a node that dies holds its work this long | 50 |
//! | `WEBHOOK_EVENTS` | how many events to publish, one every 4 s; `0`: no receiver, no demo destinations, no events: the node delivers what is queued (with the allowed addresses of `WEBHOOK_ALLOW`) and shows it | no limit |
//! | `WEBHOOK_ALLOW` | with `WEBHOOK_EVENTS=0`: addresses/CIDRs the SSRF guard lets through, comma separated | `127.0.0.1` |
//! | `WEBHOOK_METRICS_ADDR` | serve `GET /metrics` (Prometheus text format) on this address, for example `127.0.0.1:9464` | unset |
//!
//! Built with `--features console,sqlite,inbox`, the demo receives too:
//! `/ok` verifies each delivery and stores it in an inbox (SQLite, in a
//! temporary directory) whose handler refuses `kpi.alert` events, and the
//! console shows that inbox in its inbox view, dead letters to replay
//! included.
//!
//! With `WEBHOOK_DATABASE_URL`, the console shows and operates the queue of
//! the whole fleet: start it with `WEBHOOK_EVENTS=0` beside the nodes of
//! `examples/sender.rs` to watch them deliver and replay their dead
//! letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use webhook_guard::Event;
use webhook_guard::sender::console::Console;
use webhook_guard::sender::{
    AddressPolicy, DeliveryStore, EventFilter, NewDestination, OutgoingEvent, RetryPolicy, Sender,
};

#[path = "metrics_endpoint/mod.rs"]
mod metrics_endpoint;
#[path = "node_store/mod.rs"]
mod node_store;
use node_store::NodeStore;
#[cfg(feature = "inbox")]
#[path = "demo_inbox/mod.rs"]
mod demo_inbox;

/// The demo destinations' signing secret.
const DEMO_SECRET: &str = "console-demo-secret-0123456789";

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

/// What the demo does besides running the console, from the environment.
struct Demo {
    port: u16,
    run_for: Option<Duration>,
    /// How many events to publish; `None` without limit, `Some(0)` for a
    /// node that only delivers (no receiver, no demo destinations).
    events: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Some(addr) = metrics_endpoint::serve_metrics_if_configured()? {
        println!("metrics:  http://{addr}/metrics");
    }
    let demo = Demo {
        port: std::env::var("CONSOLE_PORT")
            .unwrap_or("8080".into())
            .parse()?,
        run_for: std::env::var("CONSOLE_RUN_SECONDS")
            .ok()
            .map(|s| s.parse::<u64>().map(Duration::from_secs))
            .transpose()?,
        events: node_store::events_to_publish()?,
    };
    // The queue: PostgreSQL, the given SQLite file, or one in a temporary
    // directory.
    let dir = tempfile::tempdir()?;
    match NodeStore::from_env(&dir.path().join("console-demo.db")).await? {
        NodeStore::Sqlite(store) => run(store, demo).await,
        #[cfg(feature = "postgres")]
        NodeStore::Postgres(store) => run(store, demo).await,
    }
}

/// Addresses the SSRF guard lets through: loopback for the demo receiver,
/// or `WEBHOOK_ALLOW` for a node that delivers what is queued.
fn address_policy(demo: &Demo) -> Result<AddressPolicy, Box<dyn std::error::Error>> {
    let allow = match (demo.events, std::env::var("WEBHOOK_ALLOW")) {
        (Some(0), Ok(list)) => list,
        _ => "127.0.0.1".to_owned(),
    };
    let mut policy = AddressPolicy::new();
    for allowed in allow.split(',').filter(|a| !a.trim().is_empty()) {
        policy = policy.allow(allowed)?;
    }
    Ok(policy)
}

async fn run<S: DeliveryStore>(store: S, demo: Demo) -> Result<(), Box<dyn std::error::Error>> {
    // A short retry schedule so the dead letter queue fills within seconds.
    let builder = Sender::builder(store)
        .address_policy(address_policy(&demo)?)
        .retry(RetryPolicy::new([Duration::from_secs(2)]));
    let sender = node_store::with_lease(builder)?.build()?;
    let workers = sender.start();
    let ok_route = post(ok);
    #[cfg(feature = "inbox")]
    let inbox = demo_inbox::DemoInbox::start().await?;
    #[cfg(feature = "inbox")]
    let ok_route = inbox.receive(ok_route, DEMO_SECRET)?;
    let receiver_url = match demo.events {
        Some(0) => None,
        limit => Some(start_demo(&sender, limit, ok_route).await?),
    };

    // The console, behind a bearer token: the given one, or a fresh one.
    let (token, token_note) = match std::env::var("CONSOLE_TOKEN") {
        Ok(token) if !token.is_empty() => (token, "from CONSOLE_TOKEN"),
        _ => (
            hex::encode(rand::random::<[u8; 32]>()),
            "generated for this run; set CONSOLE_TOKEN to choose one",
        ),
    };
    let console = Console::new(sender).refresh_seconds(3);
    #[cfg(feature = "inbox")]
    let console = console.inbox(inbox.inbox.clone());
    let console = console.bearer_token(&token);
    let app = Router::new().nest("/webhooks", console.router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", demo.port)).await?;
    let console_url = format!("http://{}/webhooks", listener.local_addr()?);
    println!("console:  {console_url}");
    println!("token:    {token} ({token_note})");
    if let Some(receiver_url) = receiver_url {
        println!("receiver: {receiver_url} (open {receiver_url}/heal to bring /down back)");
    }
    let server = axum::serve(listener, app);
    match demo.run_for {
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
    #[cfg(feature = "inbox")]
    inbox.workers.shutdown().await;
    Ok(())
}

/// Starts the local receiver (`/ok` served by `ok_route`), registers its
/// three endpoints and publishes `limit` events (without limit when
/// `None`), one every 4 s. Returns the receiver's URL.
async fn start_demo<S: DeliveryStore>(
    sender: &Sender<S>,
    limit: Option<usize>,
    ok_route: MethodRouter<Receiver>,
) -> Result<String, Box<dyn std::error::Error>> {
    let receiver = Receiver::default();
    let receiver_app = Router::new()
        .route("/ok", ok_route)
        .route("/flaky", post(flaky))
        .route("/down", post(down))
        .route("/heal", get(heal))
        .with_state(receiver);
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}", receiver_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(receiver_listener, receiver_app).await });
    for (path, events) in [
        ("ok", EventFilter::All),
        ("flaky", EventFilter::only(["kpi.*", "ingestion.*"])),
        ("down", EventFilter::only(["ingestion.failed", "kpi.alert"])),
    ] {
        sender
            .add_destination(
                NewDestination::new(format!("{receiver_url}/{path}"), DEMO_SECRET).events(events),
            )
            .await?;
    }
    let publisher = sender.clone();
    tokio::spawn(async move {
        for n in 0..limit.unwrap_or(usize::MAX) {
            publish_one(&publisher, n).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    });
    Ok(receiver_url)
}

/// Publishes the `n`-th event of the built-in catalogue, round robin.
async fn publish_one<S: DeliveryStore>(sender: &Sender<S>, n: usize) {
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
            if let Err(e) = sender.publish(event).await {
                eprintln!("publish failed: {e}");
            }
        }
        Err(e) => eprintln!("cannot build event: {e}"),
    }
}
