//! What the SSRF guard tells the caller and what it logs: one generic
//! refusal for an internal address and for a name that does not resolve
//! (so registering URLs is no oracle for internal DNS), and the detail for
//! the operator in the log.
//!
//! This file holds a single test on purpose: it captures the log with
//! `set_default` (see `log_capture`).
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod log_capture;

use log_capture::LogBuffer;
use webhook_guard::sender::{MemoryStore, NewDestination, Sender, SenderError};

#[tokio::test(flavor = "current_thread")]
async fn refusals_are_one_message_and_the_log_has_the_detail() {
    let logs = LogBuffer::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let strict = Sender::builder(MemoryStore::new()).build().unwrap();

    let cases = [
        ("http://10.0.0.1/hook", "private-use (10.0.0.0/8)"),
        (
            "http://168.63.129.16/hook",
            "cloud metadata (168.63.129.16/32)",
        ),
        (
            "http://100.100.100.200/",
            "cloud metadata (100.100.100.200/32)",
        ),
        (
            "http://[fd00:ec2::254]/",
            "cloud metadata (fd00:ec2::254/128)",
        ),
        ("http://[2001:0:4136:e378::1]/", "Teredo (2001::/32)"),
        ("http://localhost/hook", "loopback (127.0.0.0/8)"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ];
    let mut messages = Vec::new();
    for (url, logged) in cases {
        logs.clear();
        let err = strict
            .add_destination(NewDestination::new(url, "secret"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SenderError::ForbiddenAddress { .. }),
            "{url}: {err}"
        );
        messages.push(err.to_string());
        let text = logs.text();
        assert!(text.contains(" WARN "), "{url}: {text}");
        assert!(text.contains(logged), "{url}: no `{logged}` in {text}");
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:#?}");
    assert_eq!(
        messages[0],
        "destination URL is not allowed: it must resolve to public addresses \
         (internal, reserved and cloud metadata addresses are refused)"
    );
}
