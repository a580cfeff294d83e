//! Publish events to one endpoint and print every delivery attempt.
//!
//! ```sh
//! WEBHOOK_URL=https://example.com/webhooks WEBHOOK_SECRET=my-secret-of-24-bytes-or-more \
//! WEBHOOK_SCHEME=native WEBHOOK_DB=sender.db \
//!     cargo run --example sender --features sqlite
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `WEBHOOK_URL` | where to POST | required |
//! | `WEBHOOK_SECRET` | the shared secret, at least 24 bytes, as the receiver is configured with it (`whsec_...` for `standard`) | required |
//! | `WEBHOOK_SCHEME` | `native`, `native-body-only`, `standard`, ... | `native` |
//! | `WEBHOOK_DB` | SQLite file holding the queue | `sender.db` |
//! | `WEBHOOK_EVENTS` | how many events to publish | `3` |
//! | `WEBHOOK_ALLOW` | addresses/CIDRs the SSRF guard lets through, comma separated (`127.0.0.1` to try a local receiver) | none |
//!
//! The secret is read the way the scheme's receivers read it: with
//! `WEBHOOK_SCHEME=standard`, `whsec_<base64>` (as Svix and Standard Webhooks
//! print it) signs with the decoded key, so the official libraries verify
//! the deliveries. A destination is stored with its key bytes on first use.
//!
//! Retries run on a short schedule (1 s, 2 s, 4 s) so the example ends
//! quickly; a real sender keeps the default 1, 5 and 15 minutes. The queue
//! is in `WEBHOOK_DB`: stop the example mid-way and run it again with
//! `WEBHOOK_EVENTS=0`, and it picks up where it stopped.

use std::time::Duration;

use webhook_guard::Scheme;
use webhook_guard::sender::{
    AddressPolicy, DeliveryQuery, DeliveryStatus, NewDestination, NextStep, OutgoingEvent,
    RetryPolicy, Sender, SqliteStore,
};

fn env(name: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::env::var(name)
        .map_err(|_| format!("set {name} (see the top of examples/sender.rs)").into())
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
    let url = env("WEBHOOK_URL")?;
    let secret = env("WEBHOOK_SECRET")?;
    let scheme = Scheme::from_name(&std::env::var("WEBHOOK_SCHEME").unwrap_or("native".into()))?;
    let db = std::env::var("WEBHOOK_DB").unwrap_or("sender.db".into());
    let events: usize = std::env::var("WEBHOOK_EVENTS")
        .unwrap_or("3".into())
        .parse()?;
    let mut policy = AddressPolicy::new();
    for allowed in std::env::var("WEBHOOK_ALLOW")
        .unwrap_or_default()
        .split(',')
    {
        if !allowed.trim().is_empty() {
            policy = policy.allow(allowed)?;
        }
    }

    let sender = Sender::builder(SqliteStore::open(&db)?)
        .address_policy(policy)
        .retry(RetryPolicy::new([
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
        ]))
        .poll_interval(Duration::from_millis(200))
        .on_attempt(|attempt, next| {
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
        })
        .build()?;

    // One destination per URL: reuse it across runs.
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

    let workers = sender.start();
    loop {
        let pending = sender
            .deliveries(&DeliveryQuery::new().status(DeliveryStatus::Pending))
            .await?;
        if pending.items.is_empty() {
            break;
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

/// The event's own time; the body-only scheme's replay window checks it.
fn now_unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
