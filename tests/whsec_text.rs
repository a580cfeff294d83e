//! Secrets given as the text a provider prints, judged by the official
//! Standard Webhooks (`standardwebhooks`) and Svix (`svix`) libraries: a
//! `whsec_...` text under the standard scheme is the base64-decoded key on
//! the receiving and the sending side, while Stripe's `whsec_...` text stays
//! the key as it is. Bad text is refused with an error that names the fix and
//! never quotes the secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signers_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use signers_support::{Rng, now};
use webhook_guard::{Message, Scheme, Secret, SecretSet, Verifier};

fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", B64.encode(key))
}

/// `Scheme::sign` (what the testing helpers and the CLI use) with the text
/// signs what both official libraries verify, and `Verifier` reads it too.
#[test]
fn signing_with_whsec_text_is_verified_by_the_official_libraries() {
    let mut rng = Rng::from_env("signing_with_whsec_text");
    for round in 0..50 {
        let secret = whsec(&rng.key());
        let set = SecretSet::single(secret.as_str()).unwrap();
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let signed = Scheme::standard()
            .sign(&set, &Message::new(&id, ts, body.as_bytes()))
            .unwrap();
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(body.as_bytes(), &signed)
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        svix::webhooks::Webhook::new(&secret)
            .unwrap()
            .verify(body.as_bytes(), &signed)
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        let verifier = Verifier::new(Scheme::standard(), set);
        assert!(verifier.verify(&signed, Bytes::from(body)).is_ok());
    }
}

/// Stripe hands out `whsec_...` too, and keys its HMAC with that text's own
/// bytes: the text is not decoded under the Stripe scheme.
#[test]
fn stripe_whsec_text_is_the_key_as_it_is() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (ts, body) = (now(), br#"{"id":"evt_1","object":"event"}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let tag = hex::encode(mac.finalize().into_bytes());
    let mut map = HeaderMap::new();
    map.insert(
        "stripe-signature",
        HeaderValue::from_str(&format!("t={ts},v1={tag}")).unwrap(),
    );
    let verifier = Verifier::new(Scheme::stripe(), SecretSet::single(secret).unwrap());
    assert!(verifier.verify(&map, Bytes::from_static(body)).is_ok());
    // And our Stripe signature is the same text-keyed one.
    let ours = Scheme::stripe()
        .sign(
            &SecretSet::single(secret).unwrap(),
            &Message::new("evt_1", ts, body),
        )
        .unwrap();
    assert_eq!(ours["stripe-signature"], map["stripe-signature"]);
}

/// Bytes are never reinterpreted: `Secret::new` of the text's bytes keys the
/// HMAC with those bytes under the standard scheme, as before.
#[test]
fn explicit_bytes_are_never_decoded() {
    let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let bytes = SecretSet::single(Secret::new(text.as_bytes())).unwrap();
    let msg = Message::new("msg_1", now(), b"{}");
    let signed = Scheme::standard().sign(&bytes, &msg).unwrap();
    let theirs = standardwebhooks::Webhook::new(text).unwrap();
    assert!(theirs.verify(b"{}", &signed).is_err());
    let mut mac = Hmac::<Sha256>::new_from_slice(text.as_bytes()).unwrap();
    mac.update(format!("msg_1.{}.{{}}", msg.timestamp).as_bytes());
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    assert_eq!(signed["webhook-signature"], expected.as_str());
    assert!(!Secret::new(text.as_bytes()).is_text());
    // What `parse_secret` reads is the key: bytes, read by no scheme again.
    let stripe_key = Scheme::stripe().parse_secret(text).unwrap();
    assert!(!stripe_key.is_text());
    let signed = Scheme::standard()
        .sign(&SecretSet::single(stripe_key).unwrap(), &msg)
        .unwrap();
    assert_eq!(signed["webhook-signature"], expected.as_str());
    assert!(Secret::from(text).is_text());
}

#[cfg(feature = "sender")]
mod sender {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::routing::post;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use webhook_guard::sender::{
        AddressPolicy, MemoryStore, NewDestination, OutgoingEvent, Sender, SenderError,
    };
    use webhook_guard::{ConfigError, Scheme};

    use base64::Engine as _;

    use super::{Rng, whsec};

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn sender() -> Sender<MemoryStore> {
        Sender::builder(MemoryStore::new())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .poll_interval(Duration::from_millis(10))
            .build()
            .unwrap()
    }

    /// A receiver that checks each delivery with both official libraries and
    /// counts the ones both accept.
    async fn judged_receiver(secret: &str) -> (String, Arc<AtomicUsize>) {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (count, secret) = (Arc::clone(&accepted), secret.to_owned());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (count, secret) = (Arc::clone(&count), secret.clone());
                async move {
                    let std_ok = standardwebhooks::Webhook::new(&secret)
                        .unwrap()
                        .verify(&body, &headers)
                        .is_ok();
                    let svix_ok = svix::webhooks::Webhook::new(&secret)
                        .unwrap()
                        .verify(&body, &headers)
                        .is_ok();
                    if std_ok && svix_ok {
                        count.fetch_add(1, Ordering::SeqCst);
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    }
                }
            }),
        );
        (format!("{}/hook", serve(app).await), accepted)
    }

    async fn wait_for(count: &AtomicUsize, n: usize) {
        let start = Instant::now();
        while count.load(Ordering::SeqCst) < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "only {} of {n} deliveries verified by the official libraries",
                count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A destination given the `whsec_` text delivers over loopback what both
    /// official libraries verify, and so does a rotated-in `whsec_` text.
    #[tokio::test]
    async fn destination_given_whsec_text_is_verified_by_the_official_libraries() {
        let mut rng = Rng::from_env("destination_given_whsec_text");
        let secret = whsec(&rng.bytes(32));
        let (url, accepted) = judged_receiver(&secret).await;
        let sender = sender();
        let d = sender
            .add_destination(
                NewDestination::new(url.clone(), secret.as_str()).scheme(Scheme::standard()),
            )
            .await
            .unwrap();
        // The store holds the key the libraries use, not the text.
        assert_eq!(
            d.secrets[0].expose_bytes(),
            super::B64.decode(&secret[6..]).unwrap()
        );
        let workers = sender.start();
        let event =
            |n: u64| OutgoingEvent::new("kpi.alert", &serde_json::json!({ "n": n })).unwrap();
        sender.publish(event(1)).await.unwrap();
        wait_for(&accepted, 1).await;

        // Rotation reads the new text the same way: a receiver holding only
        // the new secret accepts the next delivery.
        let next = whsec(&rng.bytes(24));
        let (next_url, next_accepted) = judged_receiver(&next).await;
        let other = sender
            .add_destination(
                NewDestination::new(next_url, secret.as_str()).scheme(Scheme::standard()),
            )
            .await
            .unwrap();
        sender
            .rotate_secret(&other.id, next.as_str(), Duration::from_secs(60))
            .await
            .unwrap();
        sender.publish(event(2)).await.unwrap();
        wait_for(&next_accepted, 1).await;
        wait_for(&accepted, 2).await;
        workers.shutdown().await;
    }

    fn refusal(err: SenderError) -> String {
        match err {
            SenderError::Config(ConfigError::InvalidSecret { reason }) => reason,
            other => panic!("expected an invalid secret, got {other}"),
        }
    }

    /// Text that cannot be a Standard Webhooks secret, or a key under 24
    /// bytes, is refused when the destination is added; the reason names the
    /// fix and never quotes the secret.
    #[tokio::test]
    async fn unreadable_or_short_secrets_are_refused_at_registration() {
        let sender = sender();
        let add = |secret: &str, scheme: Scheme| {
            sender
                .add_destination(NewDestination::new("http://127.0.0.1:9/", secret).scheme(scheme))
        };
        // `§` is the distinctive character; `Q9zq` a distinctive run.
        let bad = "whsec_Q9zqQ9zqQ9zq§Q9zqQ9zqQ9zqQ9zqQ9zq";
        let why = refusal(add(bad, Scheme::standard()).await.unwrap_err());
        assert!(
            why.contains("not base64") && why.contains("Secret::new"),
            "{why}"
        );
        assert!(!why.contains('§') && !why.contains("Q9zq"), "{why}");

        let plain = "plain-text-secret-Q9zq-0123456789";
        let why = refusal(add(plain, Scheme::standard()).await.unwrap_err());
        assert!(why.contains("no `whsec_` prefix"), "{why}");
        assert!(!why.contains("Q9zq"), "{why}");
        // The same text is a fine key for the native scheme.
        assert!(add(plain, Scheme::native()).await.is_ok());

        // 16 bytes of key behind the prefix: too short.
        let short = whsec(&[7u8; 16]);
        let why = refusal(add(&short, Scheme::standard()).await.unwrap_err());
        assert!(
            why.contains("at least 24 bytes") && why.contains("16"),
            "{why}"
        );
        let why = refusal(add("x", Scheme::native()).await.unwrap_err());
        assert!(why.contains("at least 24 bytes"), "{why}");
        let why = refusal(
            sender
                .add_destination(NewDestination::new(
                    "http://127.0.0.1:9/",
                    webhook_guard::Secret::new([1u8; 23]),
                ))
                .await
                .unwrap_err(),
        );
        assert!(why.contains("23"), "{why}");
        assert_eq!(sender.destinations().await.unwrap().len(), 1);
    }
}

/// Sender destinations stored in SQLite before text was read by scheme hold
/// the text's bytes; they keep signing with exactly those bytes.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_stored_destination_keeps_its_bytes() {
    use webhook_guard::sender::{DeliveryStore, Destination, EventFilter, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    {
        // What `add_destination` stored for this text before: its bytes.
        let store = SqliteStore::open(&path).unwrap();
        let sender = webhook_guard::sender::Sender::builder(store)
            .address_policy(
                webhook_guard::sender::AddressPolicy::new()
                    .allow("127.0.0.1")
                    .unwrap(),
            )
            .build()
            .unwrap();
        let d = sender
            .add_destination(
                webhook_guard::sender::NewDestination::new(
                    "http://127.0.0.1:9/",
                    Secret::new(text.as_bytes()),
                )
                .id("dst_legacy")
                .scheme(Scheme::standard()),
            )
            .await
            .unwrap();
        assert_eq!(d.events, EventFilter::All);
    }
    let store = SqliteStore::open(&path).unwrap();
    let d: Destination = store.destination("dst_legacy").await.unwrap().unwrap();
    assert_eq!(d.secrets[0].expose_bytes(), text.as_bytes());
    assert!(!d.secrets[0].is_text());
}

/// Decoding errors of every key format say where the text goes wrong, never
/// which character is there (its byte value would be a byte of the key).
#[test]
fn key_decoding_errors_never_quote_the_key() {
    // `~` is byte 126; `Q9zq` a distinctive run of the secret.
    let texts = [
        "Q9zqQ9~qQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zq",
        "Q9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9z~",
        "Q9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zqQ9zr=",
    ];
    let mut reasons = Vec::new();
    for text in texts {
        reasons.push(
            Secret::from_whsec(&format!("whsec_{text}"))
                .unwrap_err()
                .to_string(),
        );
        #[cfg(feature = "ed25519")]
        {
            use webhook_guard::{Ed25519PublicKey, Ed25519SigningKey};
            reasons.push(
                Ed25519SigningKey::from_whsk(&format!("whsk_{text}"))
                    .unwrap_err()
                    .to_string(),
            );
            reasons.push(
                Ed25519PublicKey::from_whpk(&format!("whpk_{text}"))
                    .unwrap_err()
                    .to_string(),
            );
        }
    }
    for why in reasons {
        assert!(why.contains("base64"), "{why}");
        assert!(
            !why.contains('~') && !why.contains("126") && !why.contains("Q9zq"),
            "{why}"
        );
        assert!(!why.contains("symbol"), "{why}");
    }
}
