//! A webhook receiver you can run and drive from the outside.
//!
//! ```text
//! WEBHOOK_SECRET=my-secret cargo run --example receiver
//! ```
//!
//! It serves `POST /webhooks` behind [`VerifyLayer`]. Every accepted request
//! prints exactly one JSON line to **stdout**
//!
//! ```text
//! {"id":"evt_1","event":"ingestion.completed","scheme":"native"}
//! ```
//!
//! and is answered `200 OK`. Rejections are answered with an RFC 9457 problem
//! (401, 413, ...) and print nothing to stdout. Logs go to **stderr**
//! (`RUST_LOG` sets the level), so stdout stays machine-readable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WEBHOOK_ADDR` | `127.0.0.1:3000` | address to listen on (`127.0.0.1:0` picks a free port; the bound address is logged) |
//! | `WEBHOOK_SECRET` | a demo value, printed at start | the shared secret; a comma-separated list accepts any of them (rotation). Surrounding spaces are trimmed; each entry is read the way the scheme's own libraries read it ([`Scheme::parse_secret`]: `standard` decodes `whsec_<base64>`, the others use the text's bytes) |
//! | `WEBHOOK_SCHEME` | `native` | wire format, by [`Scheme::from_name`]: `native`, `native-body-only`, `standard`, `github`, `stripe`, `slack`, `shopify` |
//! | `WEBHOOK_TOLERANCE_SECS` | `300` | how old a signed timestamp may be, in seconds (clock skew into the future stays at 300 s) |
//! | `WEBHOOK_PUBLIC_KEY` | unset | `standard` only, feature `ed25519`: `whpk_...` public key(s), comma-separated, whose `v1a` signatures are accepted too |
//! | `WEBHOOK_REDIS_URL` | unset | deduplicate through Redis (feature `redis`) instead of in memory, so several receivers share one view |
//! | `WEBHOOK_METRICS_ADDR` | unset | serve `GET /metrics` (Prometheus text format) on this address, for example `127.0.0.1:9464` |
//!
//! Every event is processed once: a redelivery of an event already handled
//! is answered `200` with `X-Webhook-Duplicate: true` and logged (on stderr,
//! with `duplicate=true`), not printed as a handled event.
//!
//! A configuration error exits with status 2 and a message on stderr. Ctrl-C
//! or SIGTERM lets requests in flight finish, then exits with status 0.
//!
//! Sign and send a request from a shell (native scheme; the signature covers
//! `{id}.{timestamp}.{body}`):
//!
//! ```text
//! body='{"event":"ingestion.completed","data":{"jobId":"job_1"}}'
//! id=evt_1; ts=$(date +%s)
//! sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -hmac my-secret | sed 's/^.*= //')
//! curl -i http://127.0.0.1:3000/webhooks \
//!   -H "X-Webhook-Id: $id" -H "X-Webhook-Timestamp: $ts" \
//!   -H "X-Webhook-Signature: sha256=$sig" --data-binary "$body"
//! ```
//!
//! `examples/sign-and-send.sh` does the same for any body.

#[path = "metrics_endpoint/mod.rs"]
mod metrics_endpoint;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;
use tracing_subscriber::EnvFilter;
use webhook_guard::idempotency::IdempotencyLayer;
use webhook_guard::problem::Problem;
use webhook_guard::replay::DEFAULT_TOLERANCE;
use webhook_guard::{Event, Scheme, SecretSet, Verified, Verifier, VerifyLayer};

/// The secret used when `WEBHOOK_SECRET` is unset. Public by design: never
/// use it for real traffic.
const DEMO_SECRET: &str = "demo-secret-do-not-use-in-production";

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// Exit status for a configuration error.
const EXIT_CONFIG: u8 = 2;

/// Everything the receiver reads from the environment.
struct Config {
    addr: SocketAddr,
    secrets: SecretSet,
    scheme: Scheme,
    tolerance: Option<Duration>,
    demo_secret: bool,
    redis_url: Option<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any variable lookup.
    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let addr_text = var("WEBHOOK_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr_text.trim().parse::<SocketAddr>().map_err(|e| {
            format!("WEBHOOK_ADDR=`{addr_text}` is not an address like `127.0.0.1:3000`: {e}")
        })?;

        let scheme = match var("WEBHOOK_SCHEME") {
            Some(name) => Scheme::from_name(&name).map_err(|e| format!("WEBHOOK_SCHEME: {e}"))?,
            None => Scheme::native(),
        };
        let scheme = with_public_keys(scheme, var("WEBHOOK_PUBLIC_KEY"))?;

        let (secrets, demo_secret) = match var("WEBHOOK_SECRET") {
            Some(list) => (parse_secrets(&scheme, &list)?, false),
            None => (
                SecretSet::single(DEMO_SECRET).map_err(|e| e.to_string())?,
                true,
            ),
        };

        let tolerance = match var("WEBHOOK_TOLERANCE_SECS") {
            Some(text) => {
                let secs = text.trim().parse::<u64>().map_err(|_| {
                    format!(
                        "WEBHOOK_TOLERANCE_SECS=`{text}` is not a whole number of seconds \
                         (for example 300)"
                    )
                })?;
                Some(Duration::from_secs(secs))
            }
            None => None,
        };

        Ok(Self {
            addr,
            secrets,
            scheme,
            tolerance,
            demo_secret,
            redis_url: var("WEBHOOK_REDIS_URL").filter(|url| !url.trim().is_empty()),
        })
    }
}

/// Adds the `WEBHOOK_PUBLIC_KEY` list to a Standard Webhooks scheme.
#[cfg(feature = "ed25519")]
fn with_public_keys(scheme: Scheme, keys: Option<String>) -> Result<Scheme, String> {
    let Some(keys) = keys else { return Ok(scheme) };
    let mut parsed = Vec::new();
    for (index, key) in keys.split(',').enumerate() {
        parsed.push(
            webhook_guard::Ed25519PublicKey::from_whpk(key)
                .map_err(|e| format!("WEBHOOK_PUBLIC_KEY: entry #{}: {e}", index + 1))?,
        );
    }
    Ok(scheme.with_public_keys(parsed))
}

/// Without the `ed25519` feature, a public key is a configuration error.
#[cfg(not(feature = "ed25519"))]
fn with_public_keys(scheme: Scheme, keys: Option<String>) -> Result<Scheme, String> {
    match keys {
        Some(_) => Err("WEBHOOK_PUBLIC_KEY needs the `ed25519` feature: \
                        cargo run --features ed25519 --example receiver"
            .into()),
        None => Ok(scheme),
    }
}

/// Splits `WEBHOOK_SECRET` into a secret set, reading each entry the way
/// the scheme's own libraries do. The messages name the entry by position,
/// never by value.
fn parse_secrets(scheme: &Scheme, list: &str) -> Result<SecretSet, String> {
    let mut secrets = Vec::new();
    for (index, entry) in list.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "WEBHOOK_SECRET: entry #{} is empty; give one secret, or several separated by commas",
                index + 1
            ));
        }
        let secret = scheme
            .parse_secret(entry)
            .map_err(|e| format!("WEBHOOK_SECRET: entry #{}: {e}", index + 1))?;
        secrets.push(secret);
    }
    SecretSet::new(secrets).map_err(|e| format!("WEBHOOK_SECRET: {e}"))
}

/// The deduplication layer: in memory, or shared through Redis.
async fn idempotency(config: &Config) -> Result<IdempotencyLayer, String> {
    match &config.redis_url {
        #[cfg(feature = "redis")]
        Some(url) => webhook_guard::idempotency::RedisStore::connect(url)
            .await
            .map(IdempotencyLayer::new)
            .map_err(|e| format!("WEBHOOK_REDIS_URL: {e}")),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("WEBHOOK_REDIS_URL needs the `redis` feature: \
                        cargo run --features redis --example receiver"
            .into()),
        None => Ok(IdempotencyLayer::in_memory()),
    }
}

/// The application: the webhook route behind its layers.
///
/// Layers run top to bottom: verification first, then deduplication of the
/// verified event id.
fn app(config: &Config, idempotency: IdempotencyLayer) -> Router {
    let mut verify =
        VerifyLayer::from_verifier(Verifier::new(config.scheme.clone(), config.secrets.clone()));
    if let Some(tolerance) = config.tolerance {
        verify = verify.tolerance(tolerance);
    }
    Router::new()
        .route("/webhooks", post(on_webhook))
        .layer(ServiceBuilder::new().layer(verify).layer(idempotency))
}

/// The line printed for each accepted request.
#[derive(Serialize)]
struct Accepted<'a> {
    id: &'a str,
    event: Option<String>,
    scheme: &'a str,
}

/// The one field of the body this receiver looks at.
#[derive(Deserialize)]
struct EventName {
    event: Option<String>,
}

/// The body's top-level `event` field when the body is a JSON object whose
/// `event` is a string; `None` for anything else.
fn event_name(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<EventName>(body).ok()?.event
}

/// A one-line summary of a built-in event: its variant and key fields.
fn describe(event: &Event) -> String {
    match event {
        Event::IngestionCompleted(e) => format!(
            "IngestionCompleted job={} table={} rows={} duration={:?}",
            e.job_id, e.table, e.rows_ingested, e.duration
        ),
        Event::IngestionFailed(e) => format!(
            "IngestionFailed job={} table={} error={:?}",
            e.job_id, e.table, e.error
        ),
        Event::KpiComputed(e) => format!("KpiComputed kpi={} value={}", e.kpi_id, e.value),
        Event::KpiAlert(e) => format!(
            "KpiAlert kpi={} value={} threshold={}",
            e.kpi_id, e.value, e.threshold
        ),
        Event::AnalysisCompleted(e) => format!("AnalysisCompleted analysis={}", e.analysis_id),
        Event::DashboardReady(e) => format!(
            "DashboardReady dashboard={} url={:?}",
            e.dashboard_id, e.url
        ),
        Event::Unknown { event, .. } => format!("Unknown type={event} (accepted)"),
        other => other.event_type().to_owned(),
    }
}

async fn on_webhook(verified: Verified) -> Response {
    // The typed view goes to the log; stdout keeps its one-line format for
    // scripts. Bodies that are not the platform's envelope are still accepted.
    if let Ok(event) = serde_json::from_slice::<Event>(verified.body()) {
        tracing::info!(id = verified.id(), "event: {}", describe(&event));
    }
    let line = Accepted {
        id: verified.id(),
        event: event_name(verified.body()),
        scheme: verified.scheme().as_str(),
    };
    match print_line(&line) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            // Not recorded means not accepted: answer 500 so the sender retries.
            tracing::error!(
                id = verified.id(),
                "could not write the event to stdout: {e}"
            );
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "about:blank",
                "Event not recorded",
                "the receiver could not record the event; deliver it again later",
            )
            .into_response()
        }
    }
}

/// Writes one JSON line to stdout and flushes it.
fn print_line(line: &Accepted<'_>) -> std::io::Result<()> {
    let mut json = serde_json::to_vec(line)?;
    json.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&json)?;
    out.flush()
}

/// Resolves on Ctrl-C, or SIGTERM on Unix; requests in flight then finish
/// before the process exits. The handlers are installed when this returns,
/// so a signal sent once the receiver says it listens is never missed.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                // No handler: run until the process is killed.
                std::future::pending::<()>().await;
            }
            tracing::info!("shutting down");
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("receiver: configuration error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match metrics_endpoint::serve_metrics_if_configured() {
        Ok(Some(addr)) => tracing::info!("metrics on http://{addr}/metrics"),
        Ok(None) => {}
        Err(message) => {
            eprintln!("receiver: configuration error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    if config.demo_secret {
        eprintln!(
            "receiver: WEBHOOK_SECRET is not set; using the DEMO secret `{DEMO_SECRET}`.\n\
             receiver: it is public, for trying things out only: set WEBHOOK_SECRET for real traffic."
        );
    }

    let idempotency = match idempotency(&config).await {
        Ok(layer) => layer,
        Err(message) => {
            eprintln!("receiver: configuration error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("receiver: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("receiver: cannot listen on {}: {e}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(config.addr);
    tracing::info!(
        scheme = %config.scheme.name(),
        secrets = config.secrets.len(),
        tolerance_secs = config.tolerance.unwrap_or(DEFAULT_TOLERANCE).as_secs(),
        "listening on http://{local}/webhooks"
    );

    match axum::serve(listener, app(&config, idempotency))
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("receiver: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
