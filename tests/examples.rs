//! The examples run as processes, the way users and scripts run them.
//!
//! `receiver` is driven over real HTTP: its environment variables, the one
//! JSON line per accepted request on stdout, and exit status 2 for bad
//! configuration. `quickstart` must report every case as expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use webhook_guard::{Message, Scheme, SecretSet};

/// Must match `DEMO_SECRET` in `examples/receiver.rs` and the default in
/// `examples/sign-and-send.sh`.
const DEMO_SECRET: &str = "demo-secret-do-not-use-in-production";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// The example with only these `WEBHOOK_` variables set (and a free port
/// unless `WEBHOOK_ADDR` is among them).
fn receiver_command(vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(example_binary("receiver"));
    for name in [
        "WEBHOOK_ADDR",
        "WEBHOOK_SECRET",
        "WEBHOOK_SCHEME",
        "WEBHOOK_TOLERANCE_SECS",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("WEBHOOK_ADDR", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// A running receiver; killed on drop.
struct Receiver {
    child: Child,
    url: String,
    /// Lines of stderr read so far.
    stderr: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Receiver {
    /// Starts the example with these variables and waits until it listens.
    fn start(vars: &[(&str, &str)]) -> Self {
        let mut cmd = receiver_command(vars);
        cmd.env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();

        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Keep draining after `start` returns so the receiver's log
                // writes never fail.
                let _ = tx.send(line);
            }
        });
        // From here on, `Drop` kills the process whatever happens.
        let mut receiver = Self {
            child,
            url: String::new(),
            stderr: Vec::new(),
            lines: rx,
        };
        loop {
            let line = receiver
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "the receiver never said it listens; stderr: {:#?}",
                        receiver.stderr
                    )
                });
            if let Some(start) = line.find("listening on http://") {
                receiver.url = line[start + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                receiver.stderr.push(line);
                return receiver;
            }
            receiver.stderr.push(line);
        }
    }

    /// Stops the receiver with SIGTERM, as scripts do, checks that it shuts
    /// down cleanly, and returns everything it printed on stdout.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(exit.code(), Some(0), "exit after SIGTERM");
        // The reader thread ends at EOF, which closes the channel.
        self.stderr.extend(self.lines.iter());
        assert!(
            self.stderr.iter().any(|l| l.contains("shutting down")),
            "{:#?}",
            self.stderr
        );
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the example with `vars` and expects a configuration error.
fn config_error(vars: &[(&str, &str)]) -> String {
    let out = receiver_command(vars).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "vars {vars:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout for {vars:?}");
    String::from_utf8(out.stderr).unwrap()
}

async fn send_native(
    url: &str,
    secret: &str,
    id: &str,
    ts: i64,
    signed: &[u8],
    sent: &[u8],
) -> u16 {
    let secrets = SecretSet::single(secret).unwrap();
    let headers = Scheme::native()
        .sign(&secrets, &Message::new(id, ts, signed))
        .unwrap();
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(sent.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn bad_configuration_exits_with_status_2_and_says_why() {
    let err = config_error(&[("WEBHOOK_SCHEME", "bogus")]);
    assert!(err.contains("unknown scheme `bogus`"), "{err}");
    assert!(err.contains("native"), "lists the known schemes: {err}");

    let err = config_error(&[("WEBHOOK_TOLERANCE_SECS", "five minutes")]);
    assert!(err.contains("WEBHOOK_TOLERANCE_SECS"), "{err}");

    let err = config_error(&[("WEBHOOK_ADDR", "localhost")]);
    assert!(err.contains("WEBHOOK_ADDR"), "{err}");

    let err = config_error(&[("WEBHOOK_SECRET", "alpha-secret,,beta-secret")]);
    assert!(err.contains("entry #2 is empty"), "{err}");
    assert!(
        !err.contains("alpha-secret") && !err.contains("beta-secret"),
        "no secret in the message: {err}"
    );

    // Standard Webhooks secrets are base64 after `whsec_`; the native scheme
    // uses the text's bytes as they are, so only `standard` can refuse it.
    let err = config_error(&[
        ("WEBHOOK_SCHEME", "standard"),
        ("WEBHOOK_SECRET", "whsec_!!notbase64"),
    ]);
    assert!(err.contains("entry #1"), "{err}");
}

#[tokio::test]
async fn accepted_requests_print_one_json_line_each_and_rejections_none() {
    let receiver = Receiver::start(&[
        ("WEBHOOK_SECRET", "old-secret, new-secret"),
        ("WEBHOOK_SCHEME", "native"),
        ("WEBHOOK_TOLERANCE_SECS", "60"),
    ]);
    let url = receiver.url.clone();
    let ts = now();
    let event = br#"{"event":"ingestion.completed","tenantId":"t_1","data":{"rowsIngested":3}}"#;

    // Either secret of the rotation is accepted.
    assert_eq!(
        send_native(&url, "new-secret", "evt_new", ts, event, event).await,
        200
    );
    assert_eq!(
        send_native(&url, "old-secret", "evt_old", ts, event, event).await,
        200
    );
    // Not JSON, or an `event` that is not a string: accepted, event null.
    assert_eq!(
        send_native(
            &url,
            "new-secret",
            "evt_raw",
            ts,
            b"\xff\x00raw",
            b"\xff\x00raw"
        )
        .await,
        200
    );
    assert_eq!(
        send_native(
            &url,
            "new-secret",
            "evt_num",
            ts,
            br#"{"event":7}"#,
            br#"{"event":7}"#
        )
        .await,
        200
    );
    // Rejections print nothing.
    let tampered = br#"{"event":"ingestion.completed","tenantId":"t_2","data":{"rowsIngested":3}}"#;
    assert_eq!(
        send_native(&url, "new-secret", "evt_bad", ts, event, tampered).await,
        401
    );
    assert_eq!(
        send_native(&url, "other-secret", "evt_bad", ts, event, event).await,
        401
    );
    // 61 s old with a 60 s tolerance.
    assert_eq!(
        send_native(&url, "new-secret", "evt_old", ts - 61, event, event).await,
        401
    );

    let stdout = receiver.stop();
    assert_eq!(
        stdout,
        concat!(
            r#"{"id":"evt_new","event":"ingestion.completed","scheme":"native"}"#,
            "\n",
            r#"{"id":"evt_old","event":"ingestion.completed","scheme":"native"}"#,
            "\n",
            r#"{"id":"evt_raw","event":null,"scheme":"native"}"#,
            "\n",
            r#"{"id":"evt_num","event":null,"scheme":"native"}"#,
            "\n",
        )
    );
}

#[tokio::test]
async fn body_only_scheme_reports_the_content_hash_id() {
    let receiver = Receiver::start(&[
        ("WEBHOOK_SECRET", "s3cret"),
        ("WEBHOOK_SCHEME", "native-body-only"),
    ]);
    let body = format!(r#"{{"event":"kpi.alert","timestamp":{}}}"#, now());
    let secrets = SecretSet::single("s3cret").unwrap();
    let headers = Scheme::native_body_only()
        .sign(&secrets, &Message::new("unused", now(), body.as_bytes()))
        .unwrap();
    let status = reqwest::Client::new()
        .post(&receiver.url)
        .headers(headers)
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let stdout = receiver.stop();
    let line: serde_json::Value = serde_json::from_str(stdout.trim_end()).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    };
    assert_eq!(
        line,
        serde_json::json!({
            "id": format!("sha256:{digest}"),
            "event": "kpi.alert",
            "scheme": "native-body-only",
        })
    );
}

/// The documented shell route: `examples/sign-and-send.sh` (openssl + curl)
/// against the receiver's demo secret.
#[test]
fn demo_secret_is_announced_and_the_shell_script_is_accepted() {
    let receiver = Receiver::start(&[]);
    let notice = receiver.stderr.join("\n");
    assert!(
        notice.contains("DEMO secret") && notice.contains(DEMO_SECRET),
        "{notice}"
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sign-and-send.sh");
    let send = |timestamp: Option<String>| {
        let mut cmd = Command::new("sh");
        cmd.arg(script)
            .arg("-")
            .env("WEBHOOK_URL", &receiver.url)
            .env("WEBHOOK_ID", "evt_shell")
            .env_remove("WEBHOOK_SECRET")
            .env_remove("WEBHOOK_SCHEME")
            .env_remove("WEBHOOK_TIMESTAMP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ts) = timestamp {
            cmd.env("WEBHOOK_TIMESTAMP", ts);
        }
        let mut child = cmd.spawn().expect("sh");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(br#"{"event":"dashboard.ready","data":{"id":"d_1"}}"#)
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sign-and-send.sh failed (needs openssl and curl): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let fresh = send(None);
    assert!(fresh.starts_with("HTTP/1.1 200"), "{fresh}");
    let stale = send(Some((now() - 3600).to_string()));
    assert!(stale.starts_with("HTTP/1.1 401"), "{stale}");
    assert!(stale.contains("Webhook timestamp too old"), "{stale}");

    assert_eq!(
        receiver.stop(),
        "{\"id\":\"evt_shell\",\"event\":\"dashboard.ready\",\"scheme\":\"native\"}\n"
    );
}

#[test]
fn quickstart_reports_every_case_as_expected() {
    let out = Command::new(example_binary("quickstart"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let marks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
        .collect();
    // At least the four cases of the foundation; more may be added.
    assert!(marks.len() >= 4, "{stdout}");
    assert!(marks.iter().all(|l| l.starts_with('✓')), "{stdout}");
    for expected in [
        "expected 200, got 200 OK",
        "expected 401, got 401 Unauthorized: Webhook signature invalid",
        "expected 401, got 401 Unauthorized: Webhook timestamp too old",
        "expected 413, got 413 Payload Too Large",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
    // Built with the inbox, the tour stores, answers at once and retries.
    #[cfg(feature = "inbox")]
    for expected in [
        "✓ an event is stored and answered before the (300 ms) handler finished",
        "✓ the same event again is answered as a duplicate and not stored twice",
        "✓ the handler ran once per event; a failed attempt was retried",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
}
