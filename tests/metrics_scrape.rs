//! The examples serve `GET /metrics` when `WEBHOOK_METRICS_ADDR` is set:
//! each runs as a process, gets known traffic over real HTTP, and the
//! figures scraped from `/metrics` over HTTP must equal that traffic.
//!
//! Each test lists the figures it expects in one table of
//! `(metric, labels, value)` rows, so a new metric is checked by adding
//! one row.
#![cfg(all(feature = "sqlite", feature = "inbox"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;
mod flaky_receiver;
use flaky_receiver::flaky_receiver;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use webhook_guard::sender::metric_names as sender_metrics;
use webhook_guard::{Message, Scheme, SecretSet};

const SECRET: &str = "metrics-scrape-secret-0123456789";

/// One figure a scrape must show: the metric (a sample name, such as
/// `x_total` or `x_seconds_count`), labels the series must carry, and the
/// value summed over every series that carries them.
type Figure<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// One sample line of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scraped `/metrics` answer.
#[derive(Debug)]
struct Scrape {
    status: u16,
    content_type: String,
    body: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The scrape is a Prometheus text exposition.
    fn assert_prometheus_text(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert!(
            self.content_type.starts_with("text/plain"),
            "content type {:?}",
            self.content_type
        );
    }

    fn assert_figures(&self, figures: &[Figure<'_>]) {
        for &(name, labels, value) in figures {
            assert_eq!(
                self.value(name, labels),
                value,
                "{name}{labels:?} in:\n{}",
                self.body
            );
        }
    }
}

/// Parses the Prometheus text format: `name{k="v",...} value [timestamp]`,
/// comments and blank lines skipped.
fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, rest) = match line.find('{') {
                Some(_) => {
                    let close = line.rfind('}').unwrap();
                    (&line[..close + 1], &line[close + 1..])
                }
                None => line.split_at(line.find(' ').unwrap()),
            };
            let (name, labels) = match series.find('{') {
                Some(open) => (
                    &series[..open],
                    parse_labels(&series[open + 1..series.len() - 1]),
                ),
                None => (series, BTreeMap::new()),
            };
            let value = rest.split_whitespace().next().unwrap();
            Sample {
                name: name.to_owned(),
                labels,
                value: value
                    .parse()
                    .unwrap_or_else(|_| panic!("value of {line:?}")),
            }
        })
        .collect()
}

/// `k="v",k2="v2"` with the format's escapes (`\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.trim().is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} in {text:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("dangling escape in {text:?}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// `GET http://{addr}/metrics`, retried while the listener is not up yet.
async fn scrape(addr: &str) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match reqwest::get(format!("http://{addr}/metrics")).await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no /metrics on {addr}: {e}"),
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Scrape {
        status,
        content_type,
        samples: parse_exposition(&body),
        body,
    }
}

/// A port free right now on 127.0.0.1, for the metrics listener (which
/// cannot report the port it picked for `:0`).
fn free_metrics_addr() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

/// An example process with its output read line by line; killed on drop.
struct Example {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(read: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

impl Example {
    fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        Self {
            stdout: lines(child.stdout.take().unwrap()),
            stderr: lines(child.stderr.take().unwrap()),
            child,
        }
    }

    /// Waits (blocking; up to 60 s) for a line of `from` containing
    /// `needle`, and returns it.
    fn line_with(from: &mpsc::Receiver<String>, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match from.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?}; got {seen:#?}")
    }

    /// The URL logged on stderr after `listening on `.
    fn listening_url(&self) -> String {
        let line = Self::line_with(&self.stderr, "listening on http://");
        let start = line.find("http://").unwrap();
        line[start..].split_whitespace().next().unwrap().to_owned()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binary with the variables of the other tests removed.
fn example(name: &str, metrics_addr: &str) -> Command {
    let mut cmd = Command::new(example_binary(name));
    for var in [
        "WEBHOOK_DATABASE_URL",
        "WEBHOOK_SCHEME",
        "WEBHOOK_ALLOW",
        "WEBHOOK_REDIS_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("WEBHOOK_METRICS_ADDR", metrics_addr)
        .env("WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "info");
    cmd
}

/// POSTs a native-signed event to `url`; `forged` signs with another
/// secret. Returns the status.
async fn post_event(url: &str, id: &str, forged: bool) -> u16 {
    let body = format!(
        r#"{{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{{"jobId":"{id}","table":"sales","rowsIngested":1,"duration":3200}}}}"#
    );
    let secret = if forged {
        "not-the-receiver-secret-0123456789"
    } else {
        SECRET
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let headers = Scheme::native()
        .sign(
            &SecretSet::single(secret).unwrap(),
            &Message::new(id, now.as_secs().try_into().unwrap(), body.as_bytes()),
        )
        .unwrap();
    let response = reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_example_serves_what_it_delivered_on_metrics() {
    const EVENTS: usize = 3;
    // The first verified request fails: one retry, so EVENTS + 1 attempts.
    let (url, seen) = flaky_receiver(SECRET, 1).await;

    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_metrics_addr();
    let mut cmd = example("sender", &metrics_addr);
    cmd.env("WEBHOOK_URL", &url)
        .env("WEBHOOK_DB", dir.path().join("q.db"))
        .env("WEBHOOK_EVENTS", EVENTS.to_string())
        .env("WEBHOOK_ALLOW", "127.0.0.1");
    let sender = Example::spawn(cmd);
    // Printed once the queue is empty; the process then keeps serving.
    let stdout = tokio::task::spawn_blocking(move || {
        let line = Example::line_with(&sender.stdout, "metrics on http://");
        (sender, line)
    });
    let (sender, line) = stdout.await.unwrap();
    assert!(line.contains(&metrics_addr), "{line}");

    let attempts = seen.lock().unwrap().len();
    assert_eq!(attempts, EVENTS + 1);
    let scrape = scrape(&metrics_addr).await;
    scrape.assert_prometheus_text();
    let attempt_seconds = sender_metrics::ATTEMPT_SECONDS;
    assert!(
        scrape
            .body
            .contains(&format!("# TYPE {attempt_seconds} histogram")),
        "{}",
        scrape.body
    );
    let count = |histogram: &str| format!("{histogram}_count");
    let bucket_inf = format!("{attempt_seconds}_bucket");
    scrape.assert_figures(&[
        (sender_metrics::DELIVERED, &[], EVENTS as f64),
        (sender_metrics::RETRIED, &[], 1.0),
        (sender_metrics::DEAD_LETTERED, &[], 0.0),
        (&count(attempt_seconds), &[], attempts as f64),
        (&bucket_inf, &[("le", "+Inf")], attempts as f64),
        (&count(sender_metrics::DELIVERY_SECONDS), &[], EVENTS as f64),
        // More sender figures: one row each, e.g.
        // (sender_metrics::OLDEST_DUE_AGE_SECONDS, &[], 0.0),
    ]);
    drop(sender);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_example_serves_metrics_while_it_verifies() {
    let metrics_addr = free_metrics_addr();
    let mut cmd = example("receiver", &metrics_addr);
    cmd.env("WEBHOOK_ADDR", "127.0.0.1:0");
    let receiver = Example::spawn(cmd);
    let url = tokio::task::block_in_place(|| receiver.listening_url());

    for n in 0..3 {
        assert_eq!(post_event(&url, &format!("evt_ok_{n}"), false).await, 200);
    }
    for n in 0..2 {
        assert_eq!(
            post_event(&url, &format!("evt_forged_{n}"), true).await,
            401
        );
    }
    assert_eq!(post_event(&url, "evt_ok_0", false).await, 200, "duplicate");

    let scrape = scrape(&metrics_addr).await;
    scrape.assert_prometheus_text();
    // 3 verified, 2 rejected for their signature, 1 duplicate: one row
    // per receiver figure, e.g.
    // (webhook_guard::verify::metric_names::REJECTED, &[("kind", "signature")], 2.0),
    scrape.assert_figures(&[]);
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_example_serves_metrics_while_it_processes() {
    const EVENTS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_metrics_addr();
    let mut cmd = example("inbox", &metrics_addr);
    cmd.env("WEBHOOK_ADDR", "127.0.0.1:0")
        .env("WEBHOOK_INBOX_DB", dir.path().join("inbox.db"))
        .env_remove("INBOX_MAX_PENDING")
        .env_remove("INBOX_HANDLER_MS");
    let inbox = Example::spawn(cmd);
    let url = tokio::task::block_in_place(|| inbox.listening_url());

    for n in 0..EVENTS {
        assert_eq!(post_event(&url, &format!("evt_{n}"), false).await, 200);
    }
    tokio::task::block_in_place(|| {
        for n in 0..EVENTS {
            Example::line_with(&inbox.stdout, &format!("\"evt_{n}\""));
        }
    });

    let scrape = scrape(&metrics_addr).await;
    scrape.assert_prometheus_text();
    // EVENTS stored and processed once each: one row per inbox figure, e.g.
    // (webhook_guard::inbox::metric_names::PROCESSED, &[], EVENTS as f64),
    scrape.assert_figures(&[]);
    drop(inbox);
}
