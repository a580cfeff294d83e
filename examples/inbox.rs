//! A webhook receiver with a durable inbox: verify, store, answer at once,
//! process separately.
//!
//! ```text
//! WEBHOOK_SECRET=my-secret-of-at-least-24-bytes cargo run --features inbox --example inbox
//! # several instances sharing one inbox in PostgreSQL:
//! WEBHOOK_DATABASE_URL=postgres://app:pw@localhost/app WEBHOOK_ADDR=127.0.0.1:3001 \
//!     cargo run --features inbox,postgres --example inbox
//! ```
//!
//! `POST /webhooks` is verified by [`VerifyLayer`], stored in a SQLite file
//! (or in PostgreSQL, shared by several instances of this receiver) by
//! [`InboxLayer`](webhook_guard::inbox::InboxLayer) and answered `200`
//! before any processing. Workers then process each event; every event
//! processed successfully prints exactly one JSON line to **stdout**
//!
//! ```text
//! {"id":"evt_1","event":"ingestion.completed","attempt":1}
//! ```
//!
//! Logs go to **stderr** (`RUST_LOG` sets the level). Processing is
//! at-least-once: an event under way when the process is killed is
//! processed again after a restart (its `attempt` then counts on), so a line
//! may repeat; a redelivery of a stored event is answered `200` with
//! `X-Webhook-Duplicate: true` and not processed again.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WEBHOOK_ADDR` | `127.0.0.1:3000` | address to listen on (`127.0.0.1:0` picks a free port; the bound address is logged) |
//! | `WEBHOOK_SECRET` | a demo value | the shared secret, read the scheme's way ([`Scheme::parse_secret`]) |
//! | `WEBHOOK_SCHEME` | `native` | wire format, by [`Scheme::from_name`] |
//! | `WEBHOOK_INBOX_DB` | `inbox.db` | the SQLite file of the inbox |
//! | `WEBHOOK_DATABASE_URL` | unset | PostgreSQL instead of SQLite (`postgres://user:password@host/db`): every instance given the same database shares one inbox; needs `--features inbox,postgres` (without it: exit status 2) |
//! | `INBOX_HANDLER_MS` | `0` | simulated work per event, in milliseconds |
//! | `INBOX_MAX_PENDING` | unset | back-pressure: above this many unprocessed events, answer `503` with `Retry-After` |
//! | `INBOX_LEASE_MS` | `300000` | how long an event under way is held; after a crash it is processed again once this has passed |
//! | `WEBHOOK_METRICS_ADDR` | unset | serve `GET /metrics` (Prometheus text format) on this address, for example `127.0.0.1:9464` |
//!
//! A configuration error exits with status 2 and a message on stderr.
//! Ctrl-C or SIGTERM stops taking requests, lets the handlers under way
//! finish, then exits with status 0.

#[path = "metrics_endpoint/mod.rs"]
mod metrics_endpoint;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tracing_subscriber::EnvFilter;
use webhook_guard::inbox::{Inbox, InboxEvent, InboxStore, SqliteInboxStore};
use webhook_guard::{Event, Scheme, SecretSet, Verifier, VerifyLayer};

/// The secret used when `WEBHOOK_SECRET` is unset. Public by design.
const DEMO_SECRET: &str = "demo-secret-do-not-use-in-production";

/// Exit status for a configuration error.
const EXIT_CONFIG: u8 = 2;

/// Where the inbox lives.
#[derive(Clone)]
enum Backend {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

struct Config {
    addr: SocketAddr,
    verifier: Verifier,
    backend: Backend,
    handler_ms: u64,
    max_pending: Option<u64>,
    lease_ms: Option<u64>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str) -> Result<Option<u64>, String> {
    var(name)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}=`{text}` is not a whole number"))
        })
        .transpose()
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let backend = backend()?;
        let addr_text = var("WEBHOOK_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
        let addr = addr_text
            .trim()
            .parse()
            .map_err(|e| format!("WEBHOOK_ADDR=`{addr_text}` is not an address: {e}"))?;
        let scheme = match var("WEBHOOK_SCHEME") {
            Some(name) => Scheme::from_name(&name).map_err(|e| format!("WEBHOOK_SCHEME: {e}"))?,
            None => Scheme::native(),
        };
        let secret = var("WEBHOOK_SECRET").unwrap_or_else(|| DEMO_SECRET.into());
        let secret = scheme
            .parse_secret(secret.trim())
            .map_err(|e| format!("WEBHOOK_SECRET: {e}"))?;
        let secrets = SecretSet::new(vec![secret]).map_err(|e| format!("WEBHOOK_SECRET: {e}"))?;
        Ok(Self {
            addr,
            verifier: Verifier::new(scheme, secrets),
            backend,
            handler_ms: number("INBOX_HANDLER_MS")?.unwrap_or(0),
            max_pending: number("INBOX_MAX_PENDING")?,
            lease_ms: number("INBOX_LEASE_MS")?,
        })
    }
}

/// PostgreSQL when `WEBHOOK_DATABASE_URL` is set, else the SQLite file.
fn backend() -> Result<Backend, String> {
    match var("WEBHOOK_DATABASE_URL") {
        #[cfg(feature = "postgres")]
        Some(url) => Ok(Backend::Postgres(url.trim().to_owned())),
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(
            "WEBHOOK_DATABASE_URL: this build has no PostgreSQL support; \
             run the example with `--features inbox,postgres`, or use WEBHOOK_INBOX_DB (SQLite)"
                .into(),
        ),
        None => Ok(Backend::Sqlite(
            var("WEBHOOK_INBOX_DB").map_or_else(|| "inbox.db".into(), PathBuf::from),
        )),
    }
}

/// Processes one event: the simulated work, then one line on stdout.
async fn process(event: InboxEvent<Event>, work: Duration) -> Result<(), String> {
    tokio::time::sleep(work).await;
    let line = serde_json::json!({
        "id": event.id,
        "event": event.event.event_type(),
        "attempt": event.attempt,
    });
    let mut out = std::io::stdout().lock();
    // A line that cannot be written fails the attempt: it is retried.
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

async fn run(config: Config) -> Result<(), String> {
    match config.backend.clone() {
        Backend::Sqlite(path) => {
            let store = SqliteInboxStore::open(&path)
                .map_err(|e| format!("WEBHOOK_INBOX_DB=`{}`: {e}", path.display()))?;
            serve(store, config, format!("sqlite {}", path.display())).await
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres(url) => {
            // The error never holds the URL (it may hold a password).
            let store = webhook_guard::inbox::PgInboxStore::connect(&url)
                .await
                .map_err(|e| format!("WEBHOOK_DATABASE_URL: {e}"))?;
            serve(store, config, "postgres".into()).await
        }
    }
}

/// Serves the inbox over `store` until a signal; `label` names the store in
/// the log.
async fn serve<S: InboxStore>(store: S, config: Config, label: String) -> Result<(), String> {
    let mut builder = Inbox::builder(store);
    if let Some(limit) = config.max_pending {
        builder = builder.max_pending(limit);
    }
    if let Some(ms) = config.lease_ms {
        builder = builder.lease(Duration::from_millis(ms));
    }
    let inbox = builder.build().await.map_err(|e| e.to_string())?;
    let work = Duration::from_millis(config.handler_ms);
    let workers = inbox.start(move |event: InboxEvent<Event>| process(event, work));

    let app = Router::new()
        .route("/webhooks", post(|| async {}))
        .layer(inbox.layer())
        .layer(VerifyLayer::from_verifier(config.verifier));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        store = %label,
        unprocessed = inbox.unprocessed(),
        "listening on http://{local}/webhooks"
    );
    let stop = shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| e.to_string())?;
    workers.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (Ctrl-C only off Unix).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let terminated = terminate.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        tracing::info!("shutting down");
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match metrics_endpoint::serve_metrics_if_configured() {
        Ok(Some(addr)) => tracing::info!("metrics on http://{addr}/metrics"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
