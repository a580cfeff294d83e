//! What a client without the secret can vary against the receiver's and the
//! sender's guards: signatures it removes from a captured delivery, bodies
//! it announces and never sends, addresses spelled in other notations.
//! Real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use http::{HeaderMap, HeaderValue};
use support::scenarios::counting;
use support::{BODY, Calls, NOW, client, deliver_with, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use webhook_guard::idempotency::{IdempotencyLayer, MokaStore};
use webhook_guard::scheme::NATIVE_SIGNATURE_HEADER;
use webhook_guard::{FixedClock, Message, Scheme, SecretSet, VerifyLayer};

/// A receiver during a rotation: it holds the new and the old secret, and
/// the sender signs every delivery with both (as [`Scheme::sign`] does with
/// every active secret).
fn rotating() -> SecretSet {
    SecretSet::new(["new-rotation-secret", "old-rotation-secret"]).expect("secrets")
}

async fn rotating_receiver(calls: &Calls) -> SocketAddr {
    let app = Router::new()
        .route("/webhooks", post(counting(calls, Duration::ZERO)))
        .layer(IdempotencyLayer::new(MokaStore::new(100)))
        .layer(VerifyLayer::new(rotating()).clock(FixedClock::at(NOW)));
    serve(app).await
}

/// The captured delivery with only the `keep`th of its signatures left.
fn with_one_signature(captured: &HeaderMap, keep: usize) -> HeaderMap {
    let all = captured[NATIVE_SIGNATURE_HEADER].to_str().expect("ascii");
    let sigs: Vec<&str> = all.split(',').collect();
    assert_eq!(sigs.len(), 2, "{all}");
    let mut headers = captured.clone();
    headers.insert(
        NATIVE_SIGNATURE_HEADER,
        HeaderValue::from_str(sigs[keep]).expect("value"),
    );
    headers
}

/// An attacker who captured one delivery signed with both secrets of a
/// rotation replays it, within the replay window, with one signature
/// removed. The signature header is not signed, so the request still
/// verifies, now by the other secret; the event must still be a duplicate.
#[tokio::test]
async fn removing_a_signature_from_a_captured_delivery_does_not_make_a_new_event() {
    let calls = Calls::default();
    let addr = rotating_receiver(&calls).await;
    let captured = Scheme::native()
        .sign(&rotating(), &Message::new("evt_rot_1", NOW, BODY))
        .expect("sign");
    let http = client();
    let first = deliver_with(&http, addr, "/webhooks", captured.clone())
        .await
        .expect("delivery");
    assert!(first.processed(), "{first:?}");
    for keep in [0, 1] {
        let replay = deliver_with(
            &http,
            addr,
            "/webhooks",
            with_one_signature(&captured, keep),
        )
        .await
        .expect("delivery");
        assert_eq!(replay.status, 200, "{replay:?}");
        assert!(replay.duplicate, "signature #{keep} alone: {replay:?}");
    }
    assert_eq!(calls.get(), 1);
}

/// A small body limit and a short drain, so a probe sees the bounds quickly.
const LIMIT: usize = 1024;
const DRAIN_TIME: Duration = Duration::from_millis(400);

async fn small_limit_receiver(calls: &Calls) -> SocketAddr {
    let app = Router::new()
        .route("/webhooks", post(counting(calls, Duration::ZERO)))
        .layer(
            VerifyLayer::new(support::secrets())
                .clock(FixedClock::at(NOW))
                .body_limit(LIMIT)
                .drain_rejected_body(64 * 1024, DRAIN_TIME),
        );
    serve(app).await
}

/// Reads until the server closes the connection, or `within` passes.
/// Returns what was read and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

/// Many connections announce a body over the limit (within the drain cap)
/// and never send it: each gets its 413 at once, and the server lets go of
/// every one of them once the drain time has passed, not when the client
/// gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_bodies_never_sent_are_let_go_after_the_drain_time() {
    let calls = Calls::default();
    let addr = small_limit_receiver(&calls).await;
    let head = format!(
        "POST /webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
        LIMIT * 4
    );
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..32 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(&[b'x'; 100]).await.expect("write");
        conns.push(stream);
    }
    for stream in &mut conns {
        let (answer, closed) = read_until_closed(stream, DRAIN_TIME * 5).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(closed, "still open after {:?}: {answer}", started.elapsed());
    }
    assert!(
        started.elapsed() < DRAIN_TIME * 5,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.get(), 0);
}

/// A chunked body that never ends and keeps coming is read no further than
/// the drain cap: the connection is closed while the client still writes.
#[tokio::test]
async fn an_endless_chunked_body_is_read_no_further_than_the_cap() {
    let calls = Calls::default();
    let addr = small_limit_receiver(&calls).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "POST /webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let chunk = format!("1000\r\n{}\r\n", "y".repeat(0x1000));
    let mut sent = 0usize;
    let started = Instant::now();
    // 16 MiB at most: far past the 1 KiB limit plus the 64 KiB cap.
    while sent < 16 * 1024 * 1024 && started.elapsed() < Duration::from_secs(5) {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += 0x1000;
    }
    assert!(
        sent < 4 * 1024 * 1024,
        "the server read {sent} bytes of an endless body"
    );
    assert_eq!(calls.get(), 0);
}

#[cfg(feature = "sender")]
mod ssrf {
    use std::net::IpAddr;

    use webhook_guard::sender::AddressPolicy;

    /// Loopback, private and metadata addresses in every IPv6 wrapping of
    /// IPv4 are refused, as are the notations the URL parser turns into
    /// them.
    #[test]
    fn wrapped_and_respelled_private_addresses_are_refused() {
        let policy = AddressPolicy::new();
        for refused in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0:10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
            "::",
            "0.0.0.0",
            "100.100.100.200",
            "fe80::1",
        ] {
            let ip: IpAddr = refused.parse().expect(refused);
            assert!(policy.check(ip).is_err(), "{refused} allowed");
        }
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
        ] {
            let host = reqwest::Url::parse(url).expect(url);
            let host = host.host_str().expect("host");
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = bare.parse().expect(host);
            assert!(policy.check(ip).is_err(), "{url} ({host}) allowed");
        }
    }
}

#[cfg(feature = "console")]
mod console {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use webhook_guard::sender::console::Console;
    use webhook_guard::sender::{MemoryStore, Sender};

    async fn console() -> SocketAddr {
        let sender = Sender::builder(MemoryStore::new()).build().expect("sender");
        super::serve(Console::new(sender).allow_unauthenticated().router()).await
    }

    /// Sends `head` (request line and headers) and `body` as written; returns
    /// the status code.
    async fn status(addr: SocketAddr, head: &str, body: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{head}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{answer}"))
    }

    /// Names a browser could be sent to that are not the console's own
    /// spelling are refused (421); the check is on what the browser sends,
    /// `Host`, not on an absolute request URI it never sends to a server.
    #[tokio::test]
    async fn other_spellings_of_loopback_names_are_refused() {
        let addr = console().await;
        let port = addr.port();
        let get = |host: String| format!("GET /api/destinations HTTP/1.1\r\nhost: {host}\r\n");
        assert_eq!(
            status(addr, &get(format!("LocalHost:{port}")), "").await,
            200
        );
        for host in [
            format!("localhost.:{port}"),
            format!("127.0.0.1.nip.io:{port}"),
            format!("localtest.me:{port}"),
            format!("[0:0:0:0:0:0:0:1]:{port}"),
            format!("[::ffff:127.0.0.1]:{port}"),
            format!("2130706433:{port}"),
            format!("127.1:{port}"),
        ] {
            assert_eq!(status(addr, &get(host.clone()), "").await, 421, "{host}");
        }
        let absolute = "GET http://localhost/api/destinations HTTP/1.1\r\nhost: evil.example\r\n";
        assert_eq!(status(addr, absolute, "").await, 421);
    }

    /// A change whose media type only mentions JSON in a parameter, as
    /// `text/plain` (which a form or a simple cross-site `fetch` can send)
    /// would, is refused with 415.
    #[tokio::test]
    async fn json_named_in_a_parameter_is_not_json() {
        let addr = console().await;
        let port = addr.port();
        for content_type in [
            "text/plain; application/json",
            "text/plain;charset=application/json",
            "application/x-www-form-urlencoded; application/json",
            "application/jsonx",
            "application/json-seq",
        ] {
            let head = format!(
                "POST /api/destinations HTTP/1.1\r\nhost: localhost:{port}\r\n\
                 origin: http://localhost:{port}\r\ncontent-type: {content_type}\r\n"
            );
            assert_eq!(status(addr, &head, "{}").await, 415, "{content_type}");
        }
    }
}

/// The answer to a request with many `v1a` signatures does not depend on
/// how many public keys the receiver holds: forged requests must not be
/// able to count them.
#[cfg(feature = "ed25519")]
#[tokio::test]
async fn many_v1a_signatures_get_the_same_answer_whatever_the_public_keys() {
    use webhook_guard::scheme::Ed25519SigningKey;

    let fake = format!("v1a,{}", "A".repeat(86) + "==");
    let signatures = [fake.as_str(); 3].join(" ");
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_static("msg_probe"));
    headers.insert("webhook-timestamp", HeaderValue::from(NOW));
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(&signatures).expect("value"),
    );
    let mut answers = Vec::new();
    for keys in [0u8, 1, 2, 6] {
        let public = (0..keys).map(|i| Ed25519SigningKey::from_seed(&[i + 1; 32]).public_key());
        let calls = Calls::default();
        let app = Router::new()
            .route("/webhooks", post(counting(&calls, Duration::ZERO)))
            .layer(
                VerifyLayer::new(SecretSet::single("standard-probe-secret").expect("secret"))
                    .scheme(Scheme::standard().with_public_keys(public))
                    .clock(FixedClock::at(NOW)),
            );
        let addr = serve(app).await;
        let a = deliver_with(&client(), addr, "/webhooks", headers.clone())
            .await
            .expect("delivery");
        assert_eq!(a.status, 401, "{keys} keys: {a:?}");
        answers.push((keys, a.body));
    }
    for (keys, body) in &answers[1..] {
        assert_eq!(body, &answers[0].1, "{keys} public keys vs none");
    }
}
