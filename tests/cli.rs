//! The `webhook-guard` binary, run for real: `send` against a real `listen`
//! over loopback for every scheme, and `verify` on requests signed by `sign`
//! and then really changed on disk.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_webhook-guard");
const WAIT: Duration = Duration::from_secs(15);

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("WEBHOOK_SECRET")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command(args).output().unwrap();
    Run {
        code: status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A fresh directory for one test's files.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "webhook-guard-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `webhook-guard listen`, killed on drop.
struct Listener {
    child: Child,
    url: String,
    lines: Receiver<String>,
}

impl Listener {
    fn start(args: &[&str]) -> Self {
        let mut full = vec!["listen", "--port", "0"];
        full.extend_from_slice(args);
        let mut child = command(&full)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(WAIT)
            .expect("listen printed its address");
        let url = if let Ok(value) = serde_json::from_str::<serde_json::Value>(&first) {
            value["url"].as_str().unwrap().to_owned()
        } else {
            let rest = first
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected first line: {first}"));
            rest.split_whitespace().next().unwrap().to_owned()
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { child, url, lines }
    }

    /// The next line that starts an entry (`received`, `duplicate`,
    /// `rejected`, or a JSON line), skipping the indented body lines.
    fn next_entry(&self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .expect("listen printed a line");
            if !line.starts_with(' ') {
                return line;
            }
        }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("listen printed a line")
    }

    fn endpoint(&self) -> String {
        format!("{}/webhooks", self.url)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SCHEMES: [(&str, &str); 7] = [
    ("native", "s3cr3t-native-key"),
    ("native-body-only", "s3cr3t-body-only-key"),
    ("standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("github", "It's a Secret to Everybody"),
    ("stripe", "whsec_stripe_test_s3cr3t"),
    ("slack", "8f742231b10e8888abcd99yyyzzz85a5"),
    ("shopify", "shpss_s3cr3t_client_secret"),
];

const EVENTS: [&str; 6] = [
    "ingestion.completed",
    "ingestion.failed",
    "kpi.computed",
    "kpi.alert",
    "analysis.completed",
    "dashboard.ready",
];

#[test]
fn send_to_listen_round_trips_for_every_scheme() {
    for (i, (scheme, secret)) in SCHEMES.iter().enumerate() {
        let event = EVENTS[i % EVENTS.len()];
        let listener = Listener::start(&["--scheme", scheme, "--secret", secret]);
        let sent = run(&[
            "send",
            &listener.endpoint(),
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--event",
            event,
        ]);
        assert_eq!(sent.code, 0, "{scheme}: {}{}", sent.stdout, sent.stderr);
        assert!(sent.stdout.contains("200 OK"), "{scheme}: {}", sent.stdout);
        assert!(sent.stdout.contains(" ms"), "{scheme}: {}", sent.stdout);
        let entry = listener.next_entry();
        assert!(entry.starts_with("received "), "{scheme}: {entry}");
        assert!(entry.contains(event), "{scheme}: {entry}");
        assert!(
            entry.contains(&format!("scheme={scheme}")),
            "{scheme}: {entry}"
        );
        assert!(!sent.stdout.contains(secret) && !entry.contains(secret));
    }
}

#[test]
fn every_built_in_event_arrives_with_its_sample_data_as_json_lines() {
    let secret = "s3cr3t-json-lines";
    let listener = Listener::start(&["--secret", secret, "--json"]);
    for event in EVENTS {
        let sent = run(&[
            "send",
            &listener.endpoint(),
            "--secret",
            secret,
            "--event",
            event,
        ]);
        assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
        let line: serde_json::Value = serde_json::from_str(&listener.next_entry()).unwrap();
        assert_eq!(line["type"], "received");
        assert_eq!(line["scheme"], "native");
        let body = &line["body"];
        assert_eq!(body["event"], event);
        assert_eq!(body["tenantId"], "tenant_demo");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(
            body["data"].as_object().is_some_and(|d| d.len() >= 3),
            "{body}"
        );
        assert!(line["id"].as_str().unwrap().starts_with("evt_"));
    }
}

#[test]
fn duplicate_is_detected_by_listen_for_signed_and_content_hash_ids() {
    for (scheme, secret) in [SCHEMES[0], SCHEMES[3]] {
        let listener = Listener::start(&["--scheme", scheme, "--secret", secret]);
        let sent = run(&[
            "send",
            &listener.endpoint(),
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--duplicate",
            "--repeat",
            "2",
        ]);
        assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
        assert_eq!(
            sent.stdout
                .matches("redelivery: receiver reported a duplicate")
                .count(),
            2,
            "{}",
            sent.stdout
        );
        assert!(sent.stdout.contains("[2/2]"), "{}", sent.stdout);
        assert!(
            sent.stdout.contains("4 requests: 4 accepted"),
            "{}",
            sent.stdout
        );
        let entries: Vec<String> = (0..4).map(|_| listener.next_entry()).collect();
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["received", "duplicate", "received", "duplicate"],
            "{scheme}: {entries:?}"
        );
        let id_of = |e: &str| {
            e.split_whitespace()
                .find(|w| w.starts_with("id="))
                .unwrap()
                .to_owned()
        };
        assert_eq!(id_of(&entries[0]), id_of(&entries[1]));
        assert_ne!(id_of(&entries[0]), id_of(&entries[2]));
    }
}

#[test]
fn listen_answers_401_with_the_reason_and_send_exits_1() {
    let listener = Listener::start(&["--secret", "the-right-s3cr3t"]);
    let sent = run(&["send", &listener.endpoint(), "--secret", "a-wrong-s3cr3t"]);
    assert_eq!(sent.code, 1, "{}{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.contains("401 Unauthorized"), "{}", sent.stdout);
    assert!(
        sent.stdout.contains("none of the 1 signature(s)"),
        "{}",
        sent.stdout
    );
    let entry = listener.next_entry();
    assert!(entry.starts_with("rejected "), "{entry}");
    assert!(entry.contains("401 invalid-signature"), "{entry}");
    let cause = listener.next_line();
    assert!(
        cause.starts_with("    cause: ") && cause.contains("most likely the secret differs"),
        "{cause}"
    );
    assert!(!entry.contains("the-right-s3cr3t") && !entry.contains("a-wrong-s3cr3t"));

    // Nobody listening: the delivery fails with exit code 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sent = run(&[
        "send",
        &format!("http://127.0.0.1:{port}/x"),
        "--secret",
        "k3y-s3cr3t",
    ]);
    assert_eq!(sent.code, 1, "{}{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.contains("failed"), "{}", sent.stdout);
    assert!(
        sent.stdout.contains("is the receiver running?"),
        "{}",
        sent.stdout
    );

    // Wrong scheme: the missing header is named.
    let sent = run(&[
        "send",
        &listener.endpoint(),
        "--scheme",
        "github",
        "--secret",
        "the-right-s3cr3t",
    ]);
    assert_eq!(sent.code, 1);
    let entry = listener.next_entry();
    assert!(
        entry.contains("`x-webhook-id` header is missing"),
        "{entry}"
    );
    let causes: Vec<String> = (0..4).map(|_| listener.next_line()).collect();
    assert!(
        causes.iter().all(|c| c.starts_with("    cause: ")),
        "{causes:?}"
    );
    assert!(
        causes[3].contains(
            "this looks like a GitHub delivery (it carries `x-hub-signature-256`), use --scheme github"
        ),
        "{causes:?}"
    );
}

#[test]
fn listen_explains_why_a_request_was_rejected() {
    // A sender that base64-decodes a whsec_ secret the receiver uses as text.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let listener = Listener::start(&["--secret", secret, "--json"]);
    let sent = run(&[
        "send",
        &listener.endpoint(),
        "--secret",
        secret,
        "--secret-encoding",
        "base64",
    ]);
    assert_eq!(sent.code, 1, "{}{}", sent.stdout, sent.stderr);
    let line: serde_json::Value = serde_json::from_str(&listener.next_entry()).unwrap();
    assert_eq!(line["type"], "rejected");
    assert_eq!(line["status"], 401);
    assert_eq!(line["kind"], "invalid-signature");
    let causes = line["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 1, "{line}");
    assert!(
        causes[0].as_str().unwrap().contains("base64-decoded"),
        "{line}"
    );
    assert!(!line.to_string().contains(secret));

    // A valid request still reaches the handler after the body was copied.
    let sent = run(&["send", &listener.endpoint(), "--secret", secret]);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    let line: serde_json::Value = serde_json::from_str(&listener.next_entry()).unwrap();
    assert_eq!(line["type"], "received");
}

#[test]
fn listen_limits_how_many_rejections_a_second_it_diagnoses() {
    let is_rate_note = |line: &serde_json::Value| {
        line["causes"].as_array().is_some_and(|causes| {
            causes.len() == 1
                && causes[0]
                    .as_str()
                    .unwrap()
                    .starts_with("diagnosis skipped: rate limit")
        })
    };
    let send_rejected = |listener: &Listener| {
        let sent = run(&["send", &listener.endpoint(), "--secret", "a-wrong-s3cr3t"]);
        assert_eq!(sent.code, 1, "{}{}", sent.stdout, sent.stderr);
        let line: serde_json::Value = serde_json::from_str(&listener.next_entry()).unwrap();
        assert_eq!(line["status"], 401, "{line}");
        line
    };

    // One a second: the first rejection is diagnosed, and of the next ones
    // sent right after it, at most one lands in a new second.
    let listener = Listener::start(&[
        "--secret",
        "the-right-s3cr3t",
        "--json",
        "--max-diagnoses-per-second",
        "1",
    ]);
    let lines: Vec<serde_json::Value> = (0..4).map(|_| send_rejected(&listener)).collect();
    assert!(!is_rate_note(&lines[0]), "{}", lines[0]);
    assert!(
        lines[0]["causes"][0]
            .as_str()
            .unwrap()
            .contains("secret differs"),
        "{}",
        lines[0]
    );
    let skipped = lines.iter().filter(|l| is_rate_note(l)).count();
    assert!(skipped >= 1, "{lines:?}");

    // 0: none is diagnosed, every rejection still answered and printed.
    let listener = Listener::start(&[
        "--secret",
        "the-right-s3cr3t",
        "--json",
        "--max-diagnoses-per-second",
        "0",
    ]);
    for _ in 0..2 {
        let line = send_rejected(&listener);
        assert!(is_rate_note(&line), "{line}");
    }
}

/// Signs `body` with `sign`, writes headers and body to files.
struct Signed {
    dir: PathBuf,
    headers: PathBuf,
    body: PathBuf,
}

fn sign(body: &[u8], args: &[&str]) -> Signed {
    let dir = scratch();
    let body_path = dir.join("body");
    std::fs::write(&body_path, body).unwrap();
    let mut full = vec!["sign", path(&body_path)];
    full.extend_from_slice(args);
    let out = run(&full);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let headers = dir.join("headers.txt");
    std::fs::write(&headers, &out.stdout).unwrap();
    Signed {
        dir,
        headers,
        body: body_path,
    }
}

impl Signed {
    fn mutate_body(&self, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
        let body = std::fs::read(&self.body).unwrap();
        std::fs::write(&self.body, f(body)).unwrap();
    }

    /// Runs `verify` on the files, checking that no secret and no signature
    /// from the headers file appears in the output.
    fn verify(&self, args: &[&str]) -> Run {
        let mut full = vec![
            "verify",
            "--headers",
            path(&self.headers),
            "--body",
            path(&self.body),
        ];
        full.extend_from_slice(args);
        let out = run(&full);
        let printed = format!("{}{}", out.stdout, out.stderr);
        for pair in args.windows(2) {
            if pair[0] == "--secret" && pair[1].len() >= 6 {
                assert!(!printed.contains(pair[1]), "secret printed: {printed}");
            }
        }
        let headers = std::fs::read_to_string(&self.headers).unwrap();
        for line in headers.lines() {
            let (name, value) = line.split_once(": ").unwrap();
            if name.contains("signature") || name.contains("hmac") {
                for part in value.split(|c: char| ",= ".contains(c)) {
                    if part.len() >= 20 {
                        assert!(!printed.contains(part), "signature printed: {printed}");
                    }
                }
            }
        }
        out
    }
}

impl Drop for Signed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Keys in sorted order, so that a re-serialization through
/// `serde_json::Value` keeps them where they were.
const COMPACT: &[u8] = br#"{"data":{"jobId":"job_1","rowsIngested":15234},"event":"ingestion.completed","tenantId":"tenant_abc123","timestamp":"2023-11-14T22:13:20Z"}"#;
const T0: &str = "1700000000";

fn assert_cause(out: &Run, cause: &str) {
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("not verified"), "{}", out.stdout);
    assert!(
        out.stdout.contains(cause),
        "wanted `{cause}` in:\n{}",
        out.stdout
    );
}

#[test]
fn unmutated_request_verifies_with_exit_0() {
    for (scheme, secret) in SCHEMES {
        let signed = sign(
            COMPACT,
            &["--scheme", scheme, "--secret", secret, "--timestamp", T0],
        );
        let out = signed.verify(&["--scheme", scheme, "--secret", secret, "--now", T0]);
        assert_eq!(out.code, 0, "{scheme}: {}{}", out.stdout, out.stderr);
        assert!(out.stdout.starts_with("verified"), "{}", out.stdout);
    }
}

#[test]
fn missing_header_is_named() {
    let signed = sign(COMPACT, &["--secret", "k3y-s3cr3t", "--timestamp", T0]);
    let headers = std::fs::read_to_string(&signed.headers).unwrap();
    let kept: String = headers
        .lines()
        .filter(|l| !l.starts_with("x-webhook-timestamp"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&signed.headers, kept).unwrap();
    let out = signed.verify(&["--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "the `x-webhook-timestamp` header is missing");
}

#[test]
fn another_schemes_headers_are_recognised() {
    let signed = sign(COMPACT, &["--scheme", "github", "--secret", "k3y-s3cr3t"]);
    let out = signed.verify(&["--secret", "k3y-s3cr3t"]);
    assert_cause(&out, "the `x-webhook-id` header is missing");
    assert_cause(
        &out,
        "this looks like a GitHub delivery (it carries `x-hub-signature-256`), use --scheme github (it verifies with that scheme)",
    );

    let signed = sign(COMPACT, &["--scheme", "stripe", "--secret", "k3y-s3cr3t"]);
    let out = signed.verify(&["--scheme", "slack", "--secret", "k3y-s3cr3t"]);
    assert_cause(&out, "use --scheme stripe");
}

#[test]
fn old_timestamp_says_by_how_much() {
    let signed = sign(COMPACT, &["--secret", "k3y-s3cr3t", "--timestamp", T0]);
    let out = signed.verify(&["--secret", "k3y-s3cr3t", "--now", "1700003600"]);
    assert_cause(&out, "timestamp-too-old");
    assert_cause(
        &out,
        "the timestamp 1700000000 is 3600 s in the past; the window allows 300 s",
    );
    // A wider window accepts it.
    let out = signed.verify(&[
        "--secret",
        "k3y-s3cr3t",
        "--now",
        "1700003600",
        "--tolerance",
        "3600",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn milliseconds_are_detected() {
    for scheme in ["native", "stripe", "slack", "standard"] {
        let secret = if scheme == "standard" {
            SCHEMES[2].1
        } else {
            "k3y-s3cr3t"
        };
        let signed = sign(
            COMPACT,
            &[
                "--scheme",
                scheme,
                "--secret",
                secret,
                "--timestamp",
                "1700000000000",
            ],
        );
        let out = signed.verify(&[
            "--scheme",
            scheme,
            "--secret",
            secret,
            "--now",
            "1700000005",
        ]);
        assert_cause(&out, "timestamp-too-new");
        assert_cause(
            &out,
            "the timestamp 1700000000000 looks like milliseconds (as seconds it would be 1700000000, 5 s before now)",
        );
    }
    // Checked at the real time, long after: the 13 digits give it away.
    let signed = sign(
        COMPACT,
        &["--secret", "k3y-s3cr3t", "--timestamp", "1700000000000"],
    );
    let out = signed.verify(&["--secret", "k3y-s3cr3t"]);
    assert_cause(&out, "the timestamp 1700000000000 looks like milliseconds");
}

#[test]
fn trailing_newline_added_and_removed() {
    let signed = sign(COMPACT, &["--secret", "k3y-s3cr3t", "--timestamp", T0]);
    signed.mutate_body(|mut b| {
        b.push(b'\n');
        b
    });
    let out = signed.verify(&["--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "a trailing newline was added after signing");

    let with_newline = [COMPACT, b"\n"].concat();
    let signed = sign(
        &with_newline,
        &["--secret", "k3y-s3cr3t", "--timestamp", T0],
    );
    signed.mutate_body(|b| b.trim_ascii_end().to_vec());
    let out = signed.verify(&["--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "the trailing newline was removed after signing");
}

fn pretty(body: &[u8]) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    serde_json::to_vec_pretty(&value).unwrap()
}

fn to_crlf(body: &[u8]) -> Vec<u8> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

#[test]
fn line_endings_swapped() {
    let signed = sign(
        &pretty(COMPACT),
        &[
            "--scheme",
            "slack",
            "--secret",
            "k3y-s3cr3t",
            "--timestamp",
            T0,
        ],
    );
    signed.mutate_body(|b| to_crlf(&b));
    let out = signed.verify(&["--scheme", "slack", "--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "LF line endings were turned into CRLF after signing");

    let signed = sign(
        &to_crlf(&pretty(COMPACT)),
        &[
            "--scheme",
            "slack",
            "--secret",
            "k3y-s3cr3t",
            "--timestamp",
            T0,
        ],
    );
    signed.mutate_body(|b| {
        String::from_utf8(b)
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes()
    });
    let out = signed.verify(&["--scheme", "slack", "--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "CRLF line endings were turned into LF after signing");
}

#[test]
fn json_reserialized() {
    // Signed compact, pretty-printed on the way.
    let signed = sign(COMPACT, &["--scheme", "shopify", "--secret", "k3y-s3cr3t"]);
    signed.mutate_body(|b| pretty(&b));
    let out = signed.verify(&["--scheme", "shopify", "--secret", "k3y-s3cr3t"]);
    assert_cause(
        &out,
        "the JSON was signed compact and re-serialized in another layout after signing",
    );

    // Signed pretty, compacted on the way.
    let signed = sign(
        &pretty(COMPACT),
        &["--scheme", "github", "--secret", "k3y-s3cr3t"],
    );
    signed.mutate_body(|b| {
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&b).unwrap()).unwrap()
    });
    let out = signed.verify(&["--scheme", "github", "--secret", "k3y-s3cr3t"]);
    assert_cause(&out, "the JSON was signed pretty-printed (2 spaces)");

    // Signed the way Python's json.dumps writes it, compacted on the way.
    let spaced =
        br#"{"data": {"jobId": "job_1", "rowsIngested": 15234}, "event": "ingestion.completed"}"#;
    let signed = sign(spaced, &["--secret", "k3y-s3cr3t", "--timestamp", T0]);
    signed.mutate_body(|b| {
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&b).unwrap()).unwrap()
    });
    let out = signed.verify(&["--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(&out, "Python's json.dumps");
}

#[test]
fn byte_order_mark_added_and_removed() {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let signed = sign(
        COMPACT,
        &[
            "--scheme",
            "stripe",
            "--secret",
            "k3y-s3cr3t",
            "--timestamp",
            T0,
        ],
    );
    signed.mutate_body(|b| [BOM, &b].concat());
    let out = signed.verify(&["--scheme", "stripe", "--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(
        &out,
        "a UTF-8 byte order mark was added in front after signing",
    );

    let signed = sign(
        &[BOM, COMPACT].concat(),
        &[
            "--scheme",
            "stripe",
            "--secret",
            "k3y-s3cr3t",
            "--timestamp",
            T0,
        ],
    );
    signed.mutate_body(|b| b[3..].to_vec());
    let out = signed.verify(&["--scheme", "stripe", "--secret", "k3y-s3cr3t", "--now", T0]);
    assert_cause(
        &out,
        "the UTF-8 byte order mark in front was removed after signing",
    );
}

#[test]
fn secret_read_another_way() {
    let whsec = SCHEMES[2].1;
    let rest = whsec.strip_prefix("whsec_").unwrap();

    // The sender base64-decodes, this receiver uses the text.
    let signed = sign(
        COMPACT,
        &[
            "--secret",
            whsec,
            "--secret-encoding",
            "base64",
            "--timestamp",
            T0,
        ],
    );
    let out = signed.verify(&["--secret", whsec, "--now", T0]);
    assert_cause(
        &out,
        "the signature matches with the secret base64-decoded (after the `whsec_` prefix) instead of used as raw bytes",
    );

    // The sender drops the prefix and uses the rest as text.
    let signed = sign(COMPACT, &["--secret", rest, "--timestamp", T0]);
    let out = signed.verify(&["--secret", whsec, "--now", T0]);
    assert_cause(&out, "used as raw bytes with the `whsec_` prefix stripped");

    // The sender uses the whsec_ text itself, this receiver decodes it.
    let signed = sign(
        COMPACT,
        &[
            "--scheme",
            "standard",
            "--secret",
            whsec,
            "--secret-encoding",
            "raw",
            "--timestamp",
            T0,
        ],
    );
    let out = signed.verify(&["--scheme", "standard", "--secret", whsec, "--now", T0]);
    assert_cause(
        &out,
        "used as the raw bytes of its `whsec_...` text instead of base64-decoded",
    );

    // The sender hex-decodes.
    let hex_secret = "8f742231b10e8888abcd99e1f2a385a5";
    let signed = sign(
        COMPACT,
        &[
            "--secret",
            hex_secret,
            "--secret-encoding",
            "hex",
            "--timestamp",
            T0,
        ],
    );
    let out = signed.verify(&["--secret", hex_secret, "--now", T0]);
    assert_cause(&out, "hex-decoded instead of used as raw bytes");

    // The sender uses the base64 text without prefix, this receiver decodes it.
    let signed = sign(
        COMPACT,
        &[
            "--scheme",
            "standard",
            "--secret",
            rest,
            "--secret-encoding",
            "raw",
            "--timestamp",
            T0,
        ],
    );
    let out = signed.verify(&["--scheme", "standard", "--secret", whsec, "--now", T0]);
    assert_cause(
        &out,
        "used as the raw bytes of its base64 text (no `whsec_` prefix)",
    );

    // The sender uses the hex text, this receiver decodes it.
    let signed = sign(COMPACT, &["--secret", hex_secret, "--timestamp", T0]);
    let out = signed.verify(&[
        "--secret",
        hex_secret,
        "--secret-encoding",
        "hex",
        "--now",
        T0,
    ]);
    assert_cause(
        &out,
        "used as the raw bytes of its hex text instead of hex-decoded",
    );
}

#[test]
fn wrong_secret_has_no_other_cause() {
    let signed = sign(
        COMPACT,
        &["--secret", "the-senders-s3cr3t", "--timestamp", T0],
    );
    let out = signed.verify(&["--secret", "another-s3cr3t", "--now", T0]);
    assert_cause(&out, "most likely the secret differs from the sender's");
}

#[test]
fn raw_request_dump_verifies_and_explains() {
    let dir = scratch();
    let body = dir.join("body.json");
    std::fs::write(&body, COMPACT).unwrap();
    let out = run(&[
        "sign",
        path(&body),
        "--secret",
        "k3y-s3cr3t",
        "--timestamp",
        T0,
        "--http",
        "http://127.0.0.1:3000/webhooks?x=1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("POST /webhooks?x=1 HTTP/1.1\r\nhost: 127.0.0.1:3000\r\n")
    );
    let dump = dir.join("request.http");
    std::fs::write(&dump, &out.stdout).unwrap();
    let ok = run(&[
        "verify",
        "--request",
        path(&dump),
        "--secret",
        "k3y-s3cr3t",
        "--now",
        T0,
    ]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);

    // An editor saved the dump with a newline at the end.
    std::fs::write(&dump, format!("{}\n", out.stdout)).unwrap();
    let bad = run(&[
        "verify",
        "--request",
        path(&dump),
        "--secret",
        "k3y-s3cr3t",
        "--now",
        T0,
    ]);
    assert_cause(&bad, "a trailing newline was added after signing");
    assert_cause(
        &bad,
        &format!(
            "Content-Length is {} but it holds {} body bytes",
            COMPACT.len(),
            COMPACT.len() + 1
        ),
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stdin_is_read_when_no_file_is_given() {
    let mut child = command(&[
        "sign",
        "--secret",
        "k3y-s3cr3t",
        "--id",
        "evt_stdin",
        "--timestamp",
        T0,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(COMPACT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("x-webhook-id: evt_stdin\n"), "{text}");
    assert!(text.contains("x-webhook-timestamp: 1700000000\n"), "{text}");
}

#[test]
fn bad_usage_exits_2() {
    let dir = scratch();
    let missing = dir.join("missing");
    for args in [
        vec!["verify", "--secret", "k3y-s3cr3t"],
        vec![
            "verify",
            "--secret",
            "k3y-s3cr3t",
            "--request",
            path(&missing),
        ],
        vec!["verify", "--secret", "k3y-s3cr3t", "--headers", "h.txt"],
        vec!["sign", "--scheme", "nope", "--secret", "k3y-s3cr3t"],
        vec!["sign", path(&missing), "--secret", "k3y-s3cr3t"],
        vec!["sign", "--secret", "k3y-s3cr3t", "--no-such-flag"],
        vec!["send", "https://example.com/hook", "--secret", "k3y-s3cr3t"],
        vec![
            "send",
            "http://127.0.0.1:9/hook",
            "--secret",
            "k3y-s3cr3t",
            "--event",
            "order.paid",
        ],
        vec![
            "send",
            "http://127.0.0.1:9/hook",
            "--secret",
            "k3y-s3cr3t",
            "--data",
            "{not json",
        ],
        vec!["listen", "--scheme", "standard", "--secret", "whsec_!!!"],
        vec!["listen"],
        vec![],
    ] {
        let out = run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let top = run(&["--help"]);
    assert_eq!(top.code, 0);
    assert!(top.stdout.contains("Exit codes:"), "{}", top.stdout);
    assert!(
        top.stdout
            .contains("webhook-guard listen --port 3000 --secret my-secret")
    );
    for sub in ["listen", "send", "sign", "verify"] {
        let out = run(&[sub, "--help"]);
        assert_eq!(out.code, 0, "{sub}");
        assert!(out.stdout.contains("Examples:"), "{sub}: {}", out.stdout);
        assert!(
            out.stdout.contains(&format!("webhook-guard {sub} ")),
            "{sub}"
        );
    }
}

/// The `whsec_` text a Standard Webhooks provider prints, given to `--secret`
/// under `--scheme standard`: `sign` makes headers the official libraries
/// verify, and `verify` accepts what they sign.
#[test]
fn whsec_text_interoperates_with_the_official_libraries() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let signed = sign(COMPACT, &["--scheme", "standard", "--secret", secret]);
    let mut headers = http::HeaderMap::new();
    for line in std::fs::read_to_string(&signed.headers).unwrap().lines() {
        let (name, value) = line.split_once(": ").unwrap();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(COMPACT, &headers)
        .unwrap();
    svix::webhooks::Webhook::new(secret)
        .unwrap()
        .verify(COMPACT, &headers)
        .unwrap();

    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign("msg_cli_1", ts, COMPACT)
        .unwrap();
    std::fs::write(
        &signed.headers,
        format!("webhook-id: msg_cli_1\nwebhook-timestamp: {ts}\nwebhook-signature: {signature}\n"),
    )
    .unwrap();
    let out = signed.verify(&["--scheme", "standard", "--secret", secret]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
