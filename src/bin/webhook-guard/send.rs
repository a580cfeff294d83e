//! `webhook-guard send`: sign and deliver test events.

use std::time::{Duration, Instant};

use clap::Args;
use http::{HeaderName, HeaderValue};
use webhook_guard::scheme::{GITHUB_EVENT_HEADER, SHOPIFY_TOPIC_HEADER};
use webhook_guard::{Message, Scheme, SchemeName, SecretSet};

use crate::Failure;
use crate::keys::KeyArgs;
use crate::output::{Style, now_unix};
use crate::sign::new_event_id;

const EXAMPLES: &str = "\
Examples:
  webhook-guard send http://127.0.0.1:3000/webhooks --secret my-secret --event ingestion.completed
  webhook-guard send http://127.0.0.1:3000/webhooks --secret s --event kpi.alert --repeat 20
  webhook-guard send http://127.0.0.1:3000/webhooks --secret s --duplicate
  webhook-guard send http://127.0.0.1:3000/webhooks --secret s --event order.paid --data '{\"orderId\":\"o_1\"}'
  webhook-guard send http://127.0.0.1:3000/webhooks --scheme github --secret s --data @payload.json

Built-in events (sample data unless --data is given): ingestion.completed, ingestion.failed,
kpi.computed, kpi.alert, analysis.completed, dashboard.ready.
Exit code 0 when every delivery got a 2xx answer, 1 otherwise, 2 on bad usage.";

/// The built-in event types, which get a sample payload.
pub(crate) const BUILT_IN_EVENTS: [&str; 6] = [
    "ingestion.completed",
    "ingestion.failed",
    "kpi.computed",
    "kpi.alert",
    "analysis.completed",
    "dashboard.ready",
];

/// Sign and deliver a test event, printing the status and response time of
/// each delivery.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SendArgs {
    /// Where to POST the event (http://).
    url: String,

    #[command(flatten)]
    keys: KeyArgs,

    /// The event type (the envelope's `event` field).
    #[arg(long, default_value = "ingestion.completed")]
    event: String,

    /// The envelope's `data`: JSON text, or `@FILE` to read it from a file.
    /// Required for event types that are not built in.
    #[arg(long, value_name = "JSON|@FILE")]
    data: Option<String>,

    /// The envelope's `tenantId`.
    #[arg(long, default_value = "tenant_demo")]
    tenant: String,

    /// How many events to send, one after the other, each with its own id.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    repeat: u32,

    /// Deliver every event a second time with the same id and body (signed
    /// anew), to test the receiver's deduplication.
    #[arg(long)]
    duplicate: bool,
}

/// Sample `data` for a built-in event type, as JSON text; `None` for any
/// other type.
///
/// The one place that knows the shape of the built-in events; it is meant to
/// give way to the crate's typed events.
pub(crate) fn sample_event_data(event: &str, event_id: &str) -> Option<String> {
    let suffix = event_id.strip_prefix("evt_").unwrap_or(event_id);
    let short: String = suffix.chars().take(8).collect();
    use serde_json::Value;
    let data: &[(&str, Value)] = match event {
        "ingestion.completed" => &[
            ("jobId", format!("job_{short}").into()),
            ("table", "sales_data".into()),
            ("rowsIngested", 15234.into()),
            ("duration", 3200.into()),
        ],
        "ingestion.failed" => &[
            ("jobId", format!("job_{short}").into()),
            ("table", "sales_data".into()),
            (
                "error",
                "column `amount` expected DECIMAL(12,2), found text in row 1842".into(),
            ),
        ],
        "kpi.computed" => &[
            ("kpiId", format!("kpi_{short}").into()),
            ("name", "Monthly recurring revenue".into()),
            ("value", 128_450.75.into()),
            ("unit", "EUR".into()),
        ],
        "kpi.alert" => &[
            ("kpiId", format!("kpi_{short}").into()),
            ("name", "Churn rate".into()),
            ("value", 7.4.into()),
            ("threshold", 5.0.into()),
            ("severity", "warning".into()),
        ],
        "analysis.completed" => &[
            ("analysisId", format!("ana_{short}").into()),
            ("title", "Q3 sales by region".into()),
            (
                "summary",
                "EMEA grew 12% quarter over quarter; APAC flat.".into(),
            ),
        ],
        "dashboard.ready" => &[
            ("dashboardId", format!("dash_{short}").into()),
            ("name", "Sales overview".into()),
            (
                "url",
                format!("https://app.example.com/dashboards/dash_{short}").into(),
            ),
        ],
        _ => return None,
    };
    // Written field by field so the fields keep the documented order.
    let fields: Vec<String> = data
        .iter()
        .map(|(name, value)| format!("{}:{value}", Value::from(*name)))
        .collect();
    Some(format!("{{{}}}", fields.join(",")))
}

/// The platform envelope `{"event","timestamp","tenantId","data"}`, in that
/// order, with `data` inserted as given (already validated JSON text).
fn envelope(event: &str, timestamp: &str, tenant: &str, data: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        r#"{{"event":{},"timestamp":{},"tenantId":{},"data":{}}}"#,
        quote(event),
        quote(timestamp),
        quote(tenant),
        data.trim()
    )
    .into_bytes()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The user's `--data`, read and checked to be JSON.
fn custom_data(spec: &str) -> Result<String, Failure> {
    let text = if let Some(path) = spec.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("--data @{path}: {e}")))?
    } else {
        spec.to_owned()
    };
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| Failure::usage(format!("--data is not valid JSON: {e}")))?;
    Ok(text)
}

struct Outcome {
    status: Option<http::StatusCode>,
    duplicate: bool,
    elapsed: Duration,
    detail: Option<String>,
}

pub(crate) fn run(args: SendArgs) -> Result<(), Failure> {
    let secrets = args.keys.secret_set()?;
    let url = reqwest::Url::parse(&args.url)
        .map_err(|e| Failure::usage(format!("`{}` is not a URL: {e}", args.url)))?;
    if url.scheme() != "http" {
        return Err(Failure::usage(format!(
            "`{}`: only http:// URLs are supported (this build has no TLS); \
             for a local endpoint use http://127.0.0.1:PORT/...",
            args.url
        )));
    }
    let data = match &args.data {
        Some(spec) => Some(custom_data(spec)?),
        None if BUILT_IN_EVENTS.contains(&args.event.as_str()) => None,
        None => {
            return Err(Failure::usage(format!(
                "`{}` is not a built-in event ({}): give its payload with --data",
                args.event,
                BUILT_IN_EVENTS.join(", ")
            )));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(send_all(&args, url, &secrets, data.as_deref()))
}

async fn send_all(
    args: &SendArgs,
    url: reqwest::Url,
    secrets: &SecretSet,
    data: Option<&str>,
) -> Result<(), Failure> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("webhook-guard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::failed(format!("cannot build the HTTP client: {e}")))?;
    let style = Style::for_stdout();
    let scheme = &args.keys.scheme;
    let total = args.repeat;
    let mut times = Vec::new();
    let (mut accepted, mut refused) = (0u32, 0u32);
    for n in 1..=total {
        let id = new_event_id();
        let event_time = now_unix();
        let data = match data {
            Some(d) => d.to_owned(),
            None => sample_event_data(&args.event, &id).unwrap_or_else(|| "{}".to_owned()),
        };
        let body = envelope(&args.event, &rfc3339(event_time), &args.tenant, &data);
        let attempts = if args.duplicate { 2 } else { 1 };
        for attempt in 1..=attempts {
            let outcome = deliver(&client, &url, scheme, secrets, &id, &args.event, &body).await?;
            times.push(outcome.elapsed);
            let ok = outcome.status.is_some_and(|s| s.is_success());
            if ok {
                accepted += 1;
            } else {
                refused += 1;
            }
            let status = match outcome.status {
                Some(s) if ok => style.ok(&s.to_string()),
                Some(s) => style.bad(&s.to_string()),
                None => style.bad("failed"),
            };
            let mut line = format!(
                "[{n}/{total}] {status}  {}  {id}  {:.1} ms",
                args.event,
                outcome.elapsed.as_secs_f64() * 1000.0
            );
            if attempt == 2 {
                line.push_str(if outcome.duplicate {
                    "  redelivery: receiver reported a duplicate"
                } else {
                    "  redelivery: receiver did not report a duplicate"
                });
            }
            if let Some(detail) = &outcome.detail {
                line.push_str(&format!("  {}", style.dim(detail)));
            }
            println!("{line}");
        }
    }
    if times.len() > 1 {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{} requests: {accepted} accepted, {refused} not accepted; response time min {:.1} ms, median {:.1} ms, max {:.1} ms",
            times.len(),
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
        );
    }
    if refused == 0 {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{refused} of {} deliveries were not accepted",
            accepted + refused
        )))
    }
}

async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    scheme: &Scheme,
    secrets: &SecretSet,
    id: &str,
    event: &str,
    body: &[u8],
) -> Result<Outcome, Failure> {
    let mut headers = scheme
        .sign(secrets, &Message::new(id, now_unix(), body))
        .map_err(|e| Failure::usage(e.to_string()))?;
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let event_header = match scheme.name() {
        SchemeName::GitHub => Some(GITHUB_EVENT_HEADER),
        SchemeName::Shopify => Some(SHOPIFY_TOPIC_HEADER),
        _ => None,
    };
    if let (Some(name), Ok(value)) = (event_header, HeaderValue::from_str(event)) {
        headers.insert(HeaderName::from_static(name), value);
    }
    let started = Instant::now();
    let result = client
        .post(url.clone())
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            return Ok(Outcome {
                status: None,
                duplicate: false,
                elapsed: started.elapsed(),
                detail: Some(describe_error(&e)),
            });
        }
    };
    let status = response.status();
    let duplicate = response
        .headers()
        .get("x-webhook-duplicate")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let text = response.text().await.unwrap_or_default();
    let elapsed = started.elapsed();
    let detail = (!status.is_success()).then(|| {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect())
    });
    Ok(Outcome {
        status: Some(status),
        duplicate,
        elapsed,
        detail,
    })
}

fn describe_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable: is the receiver running?".to_owned()
    } else if e.is_timeout() {
        "timed out (connect 5 s, total 15 s)".to_owned()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_event_has_sample_data_with_its_fields() {
        let fields: [(&str, &[&str]); 6] = [
            (
                "ingestion.completed",
                &["jobId", "table", "rowsIngested", "duration"],
            ),
            ("ingestion.failed", &["jobId", "table", "error"]),
            ("kpi.computed", &["kpiId", "name", "value", "unit"]),
            (
                "kpi.alert",
                &["kpiId", "name", "value", "threshold", "severity"],
            ),
            ("analysis.completed", &["analysisId", "title", "summary"]),
            ("dashboard.ready", &["dashboardId", "name", "url"]),
        ];
        for (event, names) in fields {
            let data = sample_event_data(event, "evt_0123456789ab").unwrap();
            let value: serde_json::Value = serde_json::from_str(&data).unwrap();
            for name in names {
                assert!(value.get(name).is_some(), "{event} lacks {name}");
            }
            // In the documented order.
            let positions: Vec<usize> = names
                .iter()
                .map(|n| data.find(&format!("\"{n}\":")).unwrap())
                .collect();
            assert!(positions.is_sorted(), "{event}: {data}");
        }
        assert!(sample_event_data("order.paid", "evt_1").is_none());
    }

    #[test]
    fn envelope_keeps_field_order() {
        let body = envelope(
            "kpi.alert",
            "2025-01-15T10:30:00Z",
            "t\"1",
            r#"{"b":1,"a":2}"#,
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"event":"kpi.alert","timestamp":"2025-01-15T10:30:00Z","tenantId":"t\"1","data":{"b":1,"a":2}}"#
        );
    }
}
