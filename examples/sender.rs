//! Publish events to one endpoint and print every delivery attempt; or,
//! with a shared PostgreSQL queue, run as one node of a sender fleet.
//!
//! ```sh
//! WEBHOOK_URL=https://example.com/webhooks WEBHOOK_SECRET=my-secret-of-24-bytes-or-more \
//! WEBHOOK_SCHEME=native WEBHOOK_DB=sender.db \
//!     cargo run --example sender --features sqlite
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `WEBHOOK_URL` | where to POST | required unless `WEBHOOK_EVENTS=0` |
//! | `WEBHOOK_SECRET` | the shared secret, at least 24 bytes, as the receiver is configured with it (`whsec_...` for `standard`) | required unless `WEBHOOK_EVENTS=0` |
//! | `WEBHOOK_SCHEME` | `native`, `native-body-only`, `standard`, ... | `native` |
//! | `WEBHOOK_DB` | SQLite file holding the queue | `sender.db` |
//! | `WEBHOOK_DATABASE_URL` | `postgres://user:password@host/db`: the queue shared by every node started with it (build with `--features sqlite,postgres`); `WEBHOOK_DB` is then unused | unset |
//! | `WEBHOOK_LEASE_SECS` | how long a claimed delivery stays leased to this node: a node that dies holds its work this long | 50 (connect + request timeout + 30 s) |
//! | `WEBHOOK_EVENTS` | how many events to publish; `0` only delivers what is queued, to the destinations already in the database | `3` |
//! | `WEBHOOK_ALLOW` | addresses/CIDRs the SSRF guard lets through, comma separated (`127.0.0.1` to try a local receiver) | none |
//! | `WEBHOOK_METRICS_ADDR` | serve `GET /metrics` (Prometheus text format) on this address, and keep serving it after the queue is empty until Ctrl-C or SIGTERM | unset |
//!
//! The secret is read the way the scheme's receivers read it: with
//! `WEBHOOK_SCHEME=standard`, `whsec_<base64>` (as Svix and Standard Webhooks
//! print it) signs with the decoded key, so the official libraries verify
//! the deliveries. A destination is stored with its key bytes on first use.
//!
//! Retries run on a short schedule (1 s, 2 s, 4 s), and a destination
//! that failed 5 times in a row is paused for 2 s, so the example ends
//! quickly; a real sender keeps the default 1, 5 and 15 minutes, and 30 s. The queue
//! is in `WEBHOOK_DB`: stop the example mid-way and run it again with
//! `WEBHOOK_EVENTS=0`, and it picks up where it stopped. The example ends
//! when nothing is pending any more.
//!
//! ## Several nodes
//!
//! Start the same command several times with one `WEBHOOK_DATABASE_URL`:
//! the nodes share the queue in PostgreSQL, each delivery is claimed by
//! one node at a time, and the deliveries of a node killed mid-way are
//! taken over by the others once their lease ends (`WEBHOOK_LEASE_SECS=2`
//! makes that quick; a lease shorter than the 15 s request timeout lets a
//! slow attempt be repeated by another node). Publish from one node and
//! add nodes with `WEBHOOK_EVENTS=0`, which deliver until nothing is
//! pending:
//!
//! ```sh
//! export WEBHOOK_DATABASE_URL=postgres://app@127.0.0.1/webhooks WEBHOOK_LEASE_SECS=2
//! WEBHOOK_URL=https://example.com/webhooks WEBHOOK_SECRET=my-secret-of-24-bytes-or-more \
//!     WEBHOOK_EVENTS=1000 cargo run --example sender --features sqlite,postgres &
//! sleep 5 # until the events are published
//! WEBHOOK_EVENTS=0 cargo run --example sender --features sqlite,postgres &
//! WEBHOOK_EVENTS=0 cargo run --example sender --features sqlite,postgres
//! ```

#[path = "metrics_endpoint/mod.rs"]
mod metrics_endpoint;
#[path = "node_store/mod.rs"]
mod node_store;

use std::path::Path;
use std::time::Duration;

use node_store::NodeStore;
use webhook_guard::Scheme;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, DeliveryStore, NewDestination, NextStep,
    OutgoingEvent, RetryPolicy, Sender,
};

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name)
        .map_err(|_| format!("set {name} (see the top of examples/sender.rs)").into())
}

/// What to publish, read from the environment before the store is opened.
struct Publish {
    url: String,
    secret: String,
    scheme: Scheme,
    events: usize,
}

impl Publish {
    /// `None` for a node that only delivers (`WEBHOOK_EVENTS=0`): it needs
    /// no URL and no secret.
    fn from_env() -> Result<Option<Self>, Box<dyn std::error::Error>> {
        let events = node_store::events_to_publish()?.unwrap_or(3);
        if events == 0 {
            return Ok(None);
        }
        Ok(Some(Self {
            url: env("WEBHOOK_URL")?,
            secret: env("WEBHOOK_SECRET")?,
            scheme: Scheme::from_name(&std::env::var("WEBHOOK_SCHEME").unwrap_or("native".into()))?,
            events,
        }))
    }
}

fn address_policy() -> Result<AddressPolicy, Box<dyn std::error::Error>> {
    let mut policy = AddressPolicy::new();
    for allowed in std::env::var("WEBHOOK_ALLOW")
        .unwrap_or_default()
        .split(',')
    {
        if !allowed.trim().is_empty() {
            policy = policy.allow(allowed)?;
        }
    }
    Ok(policy)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr, the program's own lines to stdout.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let metrics_addr = metrics_endpoint::serve_metrics_if_configured()?;
    let publish = Publish::from_env()?;
    let policy = address_policy()?;
    let store = NodeStore::from_env(Path::new("sender.db")).await?;
    match store {
        NodeStore::Sqlite(store) => run(store, policy, publish).await?,
        #[cfg(feature = "postgres")]
        NodeStore::Postgres(store) => run(store, policy, publish).await?,
    }
    if let Some(addr) = metrics_addr {
        // A scraper still needs the figures once the queue is empty.
        println!("metrics on http://{addr}/metrics until Ctrl-C or SIGTERM");
        stopped().await?;
    }
    Ok(())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn stopped() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// The sender over `store`: publishes (unless `publish` is `None`), then
/// delivers until nothing is pending.
async fn run<S: DeliveryStore>(
    store: S,
    policy: AddressPolicy,
    publish: Option<Publish>,
) -> Result<(), Box<dyn std::error::Error>> {
    let builder = Sender::builder(store)
        .address_policy(policy)
        .retry(RetryPolicy::new([
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
        ]))
        .circuit_breaker(5, Duration::from_secs(2))
        .poll_interval(Duration::from_millis(200))
        .on_attempt(print_attempt);
    let sender = node_store::with_lease(builder)?.build()?;
    if let Some(publish) = publish {
        publish_events(&sender, publish).await?;
    }

    let workers = sender.start();
    // Until nothing is pending; a store that is down for a while (the
    // workers retry at each poll) does not end the node.
    loop {
        match sender
            .deliveries(&DeliveryQuery::new().status(DeliveryStatus::Pending))
            .await
        {
            Ok(pending) if pending.items.is_empty() => break,
            Ok(_) => {}
            Err(e) => eprintln!("cannot read the queue ({e}); trying again"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    workers.shutdown().await;

    let dead = sender.dead_letters(&DeliveryQuery::new()).await?;
    println!("done; {} in the dead letter queue", dead.items.len());
    for d in dead.items {
        println!(
            "  {} ({}): {}",
            d.id,
            d.event_id,
            d.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

fn print_attempt(attempt: &webhook_guard::sender::DeliveryAttempt, next: &NextStep) {
    let outcome = match (attempt.status_code, &attempt.error) {
        (Some(code), None) => format!("{code}"),
        (Some(code), Some(_)) => format!("{code} (failed)"),
        (None, Some(e)) => e.clone(),
        (None, None) => "?".into(),
    };
    let next = match next {
        NextStep::Delivered => "delivered".to_owned(),
        NextStep::RetryAt(_) => "retry scheduled".to_owned(),
        NextStep::DeadLetter(why) => format!("dead letter: {why}"),
        _ => "?".to_owned(),
    };
    println!(
        "{} attempt {} in {} ms: {outcome} -> {next}",
        attempt.delivery_id, attempt.attempt, attempt.duration_ms
    );
}

/// Adds the destination (once per URL: it is reused across runs) and
/// publishes the events to it.
async fn publish_events<S: DeliveryStore>(
    sender: &Sender<S>,
    publish: Publish,
) -> Result<(), Box<dyn std::error::Error>> {
    let Publish {
        url,
        secret,
        scheme,
        events,
    } = publish;
    let destination = match sender
        .destinations()
        .await?
        .into_iter()
        .find(|d| d.url == url)
    {
        Some(d) => d,
        None => {
            sender
                .add_destination(NewDestination::new(url, secret.as_str()).scheme(scheme))
                .await?
        }
    };
    println!(
        "destination {} -> {} ({})",
        destination.id, destination.url, destination.scheme
    );

    for n in 0..events {
        let event = OutgoingEvent::new(
            "ingestion.completed",
            &serde_json::json!({
                "event": "ingestion.completed",
                "timestamp": now_unix_seconds(),
                "tenantId": "tenant_abc123",
                "data": { "jobId": format!("job_{n}"), "table": "sales_data", "rowsIngested": 15234 + n },
            }),
        )?;
        for d in sender.publish(event).await? {
            println!("published {} as {}", d.event_id, d.id);
        }
    }
    Ok(())
}

/// The event's own time; the body-only scheme's replay window checks it.
fn now_unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
