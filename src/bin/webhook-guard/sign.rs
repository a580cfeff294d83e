//! `webhook-guard sign`: the signature headers for a body.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use webhook_guard::Message;

use crate::Failure;
use crate::capture::read_input;
use crate::keys::KeyArgs;
use crate::output::now_unix;

const EXAMPLES: &str = "\
Examples:
  webhook-guard sign body.json --secret my-secret > headers.txt
  echo -n '{\"event\":\"kpi.alert\"}' | webhook-guard sign --scheme github --secret s
  webhook-guard sign body.json --secret s --http http://127.0.0.1:3000/webhooks > request.http";

/// Sign a body from a file or stdin and print the headers to send with it.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SignArgs {
    /// The body to sign, byte for byte; `-` reads stdin.
    #[arg(default_value = "-")]
    body: PathBuf,

    #[command(flatten)]
    keys: KeyArgs,

    /// The event id to sign (schemes that carry one); a fresh `evt_...` by
    /// default.
    #[arg(long)]
    id: Option<String>,

    /// The signing time in unix seconds; now by default.
    #[arg(long)]
    timestamp: Option<i64>,

    /// Print a complete raw HTTP/1.1 POST request to this URL (request line,
    /// headers, blank line, body) instead of the headers alone.
    #[arg(long, value_name = "URL")]
    http: Option<String>,
}

pub(crate) fn run(args: SignArgs) -> Result<(), Failure> {
    let secrets = args.keys.secret_set()?;
    let body = read_input(&args.body)?;
    let id = args.id.unwrap_or_else(new_event_id);
    let timestamp = args.timestamp.unwrap_or_else(now_unix);
    let headers = args
        .keys
        .scheme
        .sign(&secrets, &Message::new(&id, timestamp, &body))
        .map_err(|e| Failure::usage(e.to_string()))?;

    let mut out = Vec::new();
    let eol: &[u8] = if args.http.is_some() { b"\r\n" } else { b"\n" };
    if let Some(url) = &args.http {
        let url =
            reqwest::Url::parse(url).map_err(|e| Failure::usage(format!("--http `{url}`: {e}")))?;
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(Failure::usage("--http needs a URL with a host")),
        };
        out.extend_from_slice(format!("POST {target} HTTP/1.1").as_bytes());
        out.extend_from_slice(eol);
        for line in [
            format!("host: {host}"),
            "content-type: application/json".to_owned(),
            format!("content-length: {}", body.len()),
        ] {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        }
    }
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(eol);
    }
    if args.http.is_some() {
        out.extend_from_slice(eol);
        out.extend_from_slice(&body);
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Failure::failed(format!("cannot write to stdout: {e}")))
}

/// A fresh event id: `evt_` and 24 hex digits from the time, the process id
/// and a counter.
pub(crate) fn new_event_id() -> String {
    use sha2::Digest as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let digest = sha2::Sha256::digest(seed.as_bytes());
    format!("evt_{}", &hex::encode(digest)[..24])
}
