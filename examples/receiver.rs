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
//! | `WEBHOOK_SECRET` | a demo value, printed at start | the shared secret; a comma-separated list accepts any of them (rotation). Surrounding spaces are trimmed; an entry starting with `whsec_` is decoded as a Standard Webhooks secret (base64 after the prefix), any other is used as its UTF-8 bytes |
//! | `WEBHOOK_SCHEME` | `native` | wire format, by [`Scheme::from_name`]: `native`, `native-body-only`, ... |
//! | `WEBHOOK_TOLERANCE_SECS` | `300` | how old a signed timestamp may be, in seconds (clock skew into the future stays at 300 s) |
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
use webhook_guard::problem::Problem;
use webhook_guard::replay::DEFAULT_TOLERANCE;
use webhook_guard::{Scheme, Secret, SecretSet, Verified, Verifier, VerifyLayer};

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

        let (secrets, demo_secret) = match var("WEBHOOK_SECRET") {
            Some(list) => (parse_secrets(&list)?, false),
            None => (
                SecretSet::single(DEMO_SECRET).map_err(|e| e.to_string())?,
                true,
            ),
        };

        let scheme = match var("WEBHOOK_SCHEME") {
            Some(name) => Scheme::from_name(&name).map_err(|e| format!("WEBHOOK_SCHEME: {e}"))?,
            None => Scheme::native(),
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
        })
    }
}

/// Splits `WEBHOOK_SECRET` into a secret set. The messages name the entry by
/// position, never by value.
fn parse_secrets(list: &str) -> Result<SecretSet, String> {
    let mut secrets = Vec::new();
    for (index, entry) in list.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "WEBHOOK_SECRET: entry #{} is empty; give one secret, or several separated by commas",
                index + 1
            ));
        }
        let secret = if entry.starts_with(webhook_guard::secret::WHSEC_PREFIX) {
            Secret::from_whsec(entry)
                .map_err(|e| format!("WEBHOOK_SECRET: entry #{}: {e}", index + 1))?
        } else {
            Secret::from(entry)
        };
        secrets.push(secret);
    }
    SecretSet::new(secrets).map_err(|e| format!("WEBHOOK_SECRET: {e}"))
}

/// The application: the webhook route behind its layers.
///
/// Layers run top to bottom. More capabilities (deduplication, typed events)
/// slot in as further `.layer(..)` lines after verification.
fn app(config: &Config) -> Router {
    let mut verify =
        VerifyLayer::from_verifier(Verifier::new(config.scheme.clone(), config.secrets.clone()));
    if let Some(tolerance) = config.tolerance {
        verify = verify.tolerance(tolerance);
    }
    Router::new()
        .route("/webhooks", post(on_webhook))
        .layer(ServiceBuilder::new().layer(verify))
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

async fn on_webhook(verified: Verified) -> Response {
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
    if config.demo_secret {
        eprintln!(
            "receiver: WEBHOOK_SECRET is not set; using the DEMO secret `{DEMO_SECRET}`.\n\
             receiver: it is public, for trying things out only: set WEBHOOK_SECRET for real traffic."
        );
    }

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

    match axum::serve(listener, app(&config))
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
