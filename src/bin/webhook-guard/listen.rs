//! `webhook-guard listen`: a local receiver that verifies, deduplicates and
//! prints each event.

use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::Args;
use http::{HeaderMap, HeaderValue, StatusCode};
use webhook_guard::diagnose::diagnose_with_window;
use webhook_guard::problem::Problem;
use webhook_guard::scheme::{GITHUB_EVENT_HEADER, SHOPIFY_TOPIC_HEADER};
use webhook_guard::verify::DEFAULT_BODY_LIMIT;
use webhook_guard::{ReplayWindow, Scheme, SecretSet, Verified, VerifyError, VerifyLayer};

use crate::Failure;
use crate::keys::KeyArgs;
use crate::output::{Style, clock_time, render_finding};

const EXAMPLES: &str = "\
Examples:
  webhook-guard listen --port 3000 --secret my-secret
  webhook-guard listen --port 3000 --scheme github --secret s --json
  webhook-guard listen --port 0 --secret s      # any free port; the first line says which

The first line printed is the address bound: `listening on http://HOST:PORT (scheme NAME)`
(with --json: {\"type\":\"listening\",\"url\":..}). Every path is accepted. Verified events are
answered 200 and printed as `received ..`; redeliveries of an id already received are answered
200 with `X-Webhook-Duplicate: true` and printed as `duplicate ..`; bad requests are answered
401 (413 for size) with an RFC 9457 problem saying why, and printed as `rejected ..` followed by
`cause:` lines that explain it the way `webhook-guard verify` does (for at most
--max-diagnoses-per-second rejections a second; the others say `diagnosis skipped: rate limit`).";

/// Ids remembered for deduplication before the oldest are forgotten.
const SEEN_CAPACITY: usize = 100_000;

/// Run a local receiver: verify, deduplicate and print each event; answer
/// 401 with the reason for bad ones.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ListenArgs {
    /// The port to listen on; 0 picks a free one.
    #[arg(long, short = 'p', default_value_t = 3000)]
    port: u16,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,

    #[command(flatten)]
    keys: KeyArgs,

    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,

    /// How old a signed timestamp may be, in seconds (also the allowed clock
    /// skew into the future).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    tolerance: u64,

    /// How many rejected requests a second are diagnosed (their causes
    /// printed); the others are printed with `diagnosis skipped: rate
    /// limit`. 0 diagnoses none.
    #[arg(long, default_value_t = 10, value_name = "N")]
    max_diagnoses_per_second: u32,
}

/// Ids of the events already received, so that redeliveries are reported as
/// duplicates and not processed twice.
///
/// Checking and recording an id is one step under one lock, so of several
/// concurrent deliveries of the same id exactly one is new. In-process and
/// bounded (the oldest ids are forgotten first); this gives way to the
/// crate's `IdempotencyLayer` once it exists, which also answers 409 while a
/// first delivery is still being processed.
#[derive(Debug)]
pub(crate) struct SeenIds {
    inner: Mutex<SeenInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct SeenInner {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(SeenInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; `true` when it had not been seen before.
    pub(crate) fn first_time(&self, id: &str) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.ids.contains(id) {
            return false;
        }
        if inner.order.len() == self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.ids.remove(&oldest);
            }
        }
        inner.ids.insert(id.to_owned());
        inner.order.push_back(id.to_owned());
        true
    }
}

/// Where lines go: text (with colour on a terminal) or JSON lines.
#[derive(Debug, Clone, Copy)]
struct Printer {
    json: bool,
    style: Style,
}

impl Printer {
    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not take the receiver down.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn rejected(&self, status: u16, kind: &str, detail: &str, causes: &[String]) {
        if self.json {
            self.line(
                &serde_json::json!({
                    "type": "rejected",
                    "status": status,
                    "kind": kind,
                    "detail": detail,
                    "causes": causes,
                })
                .to_string(),
            );
        } else {
            let mut text = format!(
                "{} {} {status} {kind}: {detail}",
                self.style.bad("rejected"),
                self.style.dim(&clock_time()),
            );
            for cause in causes {
                text.push_str(&format!("\n    {} {cause}", self.style.warn("cause:")));
            }
            self.line(&text);
        }
    }
}

/// What the listener needs to explain a rejection.
struct Explainer {
    scheme: Scheme,
    secrets: SecretSet,
    window: ReplayWindow,
    printer: Printer,
    rate: DiagnosisRate,
}

impl Explainer {
    /// The causes of a rejection, diagnosed on a blocking thread (a
    /// diagnosis is CPU work that must not hold up the async workers), or a
    /// note that the rate limit skipped it.
    async fn causes(self: &Arc<Self>, headers: HeaderMap, body: bytes::Bytes) -> Vec<String> {
        if !self.rate.allow() {
            return vec![format!(
                "diagnosis skipped: rate limit (at most {} a second, see --max-diagnoses-per-second)",
                self.rate.per_second
            )];
        }
        let explainer = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            diagnose_with_window(
                &explainer.scheme,
                &explainer.secrets,
                &headers,
                &body,
                &explainer.window,
            )
            .findings()
            .iter()
            .map(render_finding)
            .collect()
        })
        .await
        .unwrap_or_else(|e| vec![format!("diagnosis failed: {e}")])
    }
}

/// At most `per_second` diagnoses in each one-second window, so that a
/// flood of bad requests cannot keep the machine busy explaining them.
#[derive(Debug)]
struct DiagnosisRate {
    per_second: u32,
    /// The start of the current window and the diagnoses run in it.
    window: Mutex<(Instant, u32)>,
}

impl DiagnosisRate {
    fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Takes one diagnosis from this second's allowance; `false` when it is
    /// used up.
    fn allow(&self) -> bool {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        if window.1 >= self.per_second {
            return false;
        }
        window.1 += 1;
        true
    }
}

/// Runs outside [`VerifyLayer`]: keeps a copy of the body so that, when the
/// layer rejects the request, the printed line says not only what failed but
/// why (the same diagnosis as `webhook-guard verify`). The response itself is
/// the layer's, unchanged.
async fn explain_rejections(
    State(explainer): State<Arc<Explainer>>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let (request, captured) = if declared.is_some_and(|n| n > DEFAULT_BODY_LIMIT as u64) {
        // The layer refuses it before reading; nothing to keep.
        (request, None)
    } else {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, DEFAULT_BODY_LIMIT).await {
            Ok(bytes) => {
                let headers = parts.headers.clone();
                (
                    Request::from_parts(parts, Body::from(bytes.clone())),
                    Some((headers, bytes)),
                )
            }
            Err(_) => {
                let detail = format!(
                    "the body could not be read or is larger than {DEFAULT_BODY_LIMIT} bytes"
                );
                explainer
                    .printer
                    .rejected(413, "payload-too-large", &detail, &[]);
                return Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    webhook_guard::VerifyErrorKind::PayloadTooLarge.problem_type(),
                    webhook_guard::VerifyErrorKind::PayloadTooLarge.title(),
                    detail,
                )
                .into_response();
            }
        }
    };
    let response = next.run(request).await;
    if let Some(err) = response.extensions().get::<VerifyError>().cloned() {
        let causes = match captured {
            Some((headers, body)) => explainer.causes(headers, body).await,
            None => Vec::new(),
        };
        explainer.printer.rejected(
            err.kind().status().as_u16(),
            err.kind().as_str(),
            err.detail(),
            &causes,
        );
    }
    response
}

#[derive(Clone)]
struct AppState {
    seen: Arc<SeenIds>,
    printer: Printer,
}

pub(crate) fn run(args: ListenArgs) -> Result<(), Failure> {
    let secrets = args.keys.secret_set()?;
    let printer = Printer {
        json: args.json,
        style: if args.json {
            Style::plain()
        } else {
            Style::for_stdout()
        },
    };
    let window = ReplayWindow::new()
        .tolerance(Duration::from_secs(args.tolerance))
        .future_skew(Duration::from_secs(args.tolerance));
    let layer = VerifyLayer::new(secrets.clone())
        .scheme(args.keys.scheme.clone())
        .replay_window(window.clone());
    let explainer = Arc::new(Explainer {
        scheme: args.keys.scheme.clone(),
        secrets,
        window,
        printer,
        rate: DiagnosisRate::new(args.max_diagnoses_per_second),
    });
    let state = AppState {
        seen: Arc::new(SeenIds::new(SEEN_CAPACITY)),
        printer,
    };
    let app = Router::new()
        .fallback(receive)
        .with_state(state)
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            explainer,
            explain_rejections,
        ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    let scheme = args.keys.scheme.name();
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::failed(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Failure::failed(format!("cannot read the bound address: {e}")))?;
        let url = format!("http://{bound}");
        if printer.json {
            printer.line(
                &serde_json::json!({"type": "listening", "url": url, "scheme": scheme.as_str()})
                    .to_string(),
            );
        } else {
            printer.line(&format!("listening on {url} (scheme {scheme})"));
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Failure::failed(format!("the server stopped: {e}")))
    })
}

/// The event type: the body's `event` (or `type`) field, else the
/// provider's event header.
fn event_type(headers: &HeaderMap, body: Option<&serde_json::Value>) -> String {
    body.and_then(|b| b.get("event").or_else(|| b.get("type")))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            [GITHUB_EVENT_HEADER, SHOPIFY_TOPIC_HEADER]
                .iter()
                .find_map(|h| headers.get(*h)?.to_str().ok().map(str::to_owned))
        })
        .unwrap_or_else(|| "-".to_owned())
}

async fn receive(
    State(state): State<AppState>,
    verified: Verified,
    headers: HeaderMap,
) -> Response {
    let body: Option<serde_json::Value> = serde_json::from_slice(verified.body()).ok();
    let event = event_type(&headers, body.as_ref());
    let id = verified.id().to_owned();
    let printer = state.printer;
    let first = state.seen.first_time(&id);
    let scheme = verified.scheme().as_str();
    if printer.json {
        let mut line = serde_json::json!({
            "type": if first { "received" } else { "duplicate" },
            "event": event,
            "id": id,
            "scheme": scheme,
            "secretIndex": verified.secret_index(),
            "timestamp": verified.timestamp(),
        });
        if first {
            line["body"] = body.clone().unwrap_or_else(|| {
                serde_json::Value::from(String::from_utf8_lossy(verified.body()).into_owned())
            });
        }
        printer.line(&line.to_string());
    } else if first {
        let mut text = format!(
            "{} {} {}  id={}  scheme={}  secret=#{}",
            printer.style.ok("received"),
            printer.style.dim(&clock_time()),
            printer.style.bold(&event),
            id,
            scheme,
            verified.secret_index()
        );
        // The body exactly as received (re-serializing it would reorder
        // keys and hide what the sender really sent).
        let shown = String::from_utf8_lossy(verified.body());
        for line in shown.lines().take(60) {
            text.push_str("\n    ");
            text.push_str(line);
        }
        printer.line(&text);
    } else {
        printer.line(&format!(
            "{} {} {}  id={}  (already received: not processed again)",
            printer.style.warn("duplicate"),
            printer.style.dim(&clock_time()),
            event,
            id
        ));
    }
    let status = if first { "received" } else { "duplicate" };
    let mut response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"status": status, "id": id}).to_string(),
    )
        .into_response();
    if !first {
        response
            .headers_mut()
            .insert("x-webhook-duplicate", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_duplicates_have_exactly_one_first() {
        let seen = Arc::new(SeenIds::new(16));
        let barrier = Arc::new(Barrier::new(8));
        let firsts = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (seen, barrier, firsts) = (seen.clone(), barrier.clone(), firsts.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    if seen.first_time("evt_same") {
                        firsts.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(firsts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn diagnoses_are_counted_per_second() {
        let rate = DiagnosisRate::new(2);
        assert!(rate.allow());
        assert!(rate.allow());
        assert!(!rate.allow());
        // A new second brings a new allowance.
        let a_second_ago = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        rate.window.lock().unwrap().0 = a_second_ago;
        assert!(rate.allow());
        assert!(!DiagnosisRate::new(0).allow());
    }

    #[test]
    fn oldest_ids_are_forgotten_first() {
        let seen = SeenIds::new(2);
        assert!(seen.first_time("a"));
        assert!(seen.first_time("b"));
        assert!(!seen.first_time("a"));
        assert!(seen.first_time("c")); // forgets "a"
        assert!(seen.first_time("a"));
        assert!(!seen.first_time("c"));
    }
}
