//! `webhook-guard verify`: check a captured request and explain a failure.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use webhook_guard::diagnose::diagnose_with_window;
use webhook_guard::{FixedClock, ReplayWindow};

use crate::Failure;
use crate::capture::{Captured, parse_headers_file, parse_raw_request, read_input};
use crate::keys::KeyArgs;
use crate::output::{Style, now_unix, render_finding};

const EXAMPLES: &str = "\
Examples:
  webhook-guard verify --secret my-secret --headers headers.txt --body body.json
  webhook-guard verify --secret my-secret --request request.http
  webhook-guard verify --scheme github --secret s --headers h.txt --body b.json --now 1700000000

Exit code 0 when the request verifies, 1 when it does not (the output says why), 2 on bad usage.";

/// Verify a captured request and explain why it fails.
///
/// The explanation names a missing header, another scheme's headers, a timestamp outside the window
/// (seconds vs milliseconds), a body changed after signing (newline, CRLF,
/// JSON layout, BOM) or a secret read the wrong way (base64, hex, `whsec_`).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    keys: KeyArgs,

    /// The request's headers, one `Name: value` per line (`-` for stdin).
    #[arg(long, requires = "body", conflicts_with = "request")]
    headers: Option<PathBuf>,

    /// The raw body bytes exactly as received (`-` for stdin).
    #[arg(long, requires = "headers", conflicts_with = "request")]
    body: Option<PathBuf>,

    /// A raw HTTP/1.1 request dump: request line, headers, blank line, body
    /// (`-` for stdin).
    #[arg(long, required_unless_present = "headers")]
    request: Option<PathBuf>,

    /// How old a signed timestamp may be, in seconds (also the allowed clock
    /// skew into the future).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    tolerance: u64,

    /// Check as if now were this unix time (to re-check an old capture).
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<i64>,
}

pub(crate) fn run(args: VerifyArgs) -> Result<(), Failure> {
    let secrets = args.keys.secret_set()?;
    let captured = match (&args.request, &args.headers, &args.body) {
        (Some(request), _, _) => {
            let raw = read_input(request)?;
            parse_raw_request(&raw, &request.display().to_string())?
        }
        (None, Some(headers), Some(body)) => {
            if headers.as_os_str() == "-" && body.as_os_str() == "-" {
                return Err(Failure::usage(
                    "--headers and --body cannot both read stdin",
                ));
            }
            let headers_text = read_input(headers)?;
            Captured {
                headers: parse_headers_file(&headers_text, &headers.display().to_string())?,
                body: read_input(body)?,
                notes: Vec::new(),
            }
        }
        _ => {
            return Err(Failure::usage(
                "give --request FILE, or --headers FILE and --body FILE",
            ));
        }
    };
    let now = args.now.unwrap_or_else(now_unix);
    let window = ReplayWindow::new()
        .tolerance(Duration::from_secs(args.tolerance))
        .future_skew(Duration::from_secs(args.tolerance))
        .clock(FixedClock::at(now));
    let diagnosis = diagnose_with_window(
        &args.keys.scheme,
        &secrets,
        &captured.headers,
        &captured.body,
        &window,
    );

    let style = Style::for_stdout();
    let mut out = String::new();
    if diagnosis.is_verified() {
        let text = diagnosis.to_string();
        let rest = text.strip_prefix("verified").unwrap_or(&text);
        out.push_str(&style.ok("verified"));
        out.push_str(rest);
        out.push('\n');
    } else {
        let err = diagnosis
            .error()
            .map(|e| {
                format!(
                    " with the `{}` scheme ({}): {e}",
                    args.keys.scheme.name(),
                    e.kind()
                )
            })
            .unwrap_or_default();
        out.push_str(&style.bad("not verified"));
        out.push_str(&err);
        out.push('\n');
        for finding in diagnosis.findings() {
            out.push_str(&format!(
                "  {} {}\n",
                style.warn("cause:"),
                render_finding(finding)
            ));
        }
    }
    for note in &captured.notes {
        out.push_str(&format!("  {} {note}\n", style.dim("note:")));
    }
    print!("{out}");
    if diagnosis.is_verified() {
        Ok(())
    } else {
        Err(Failure::silent())
    }
}
