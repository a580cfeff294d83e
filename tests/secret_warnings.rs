//! What `VerifyLayer` warns about a receiver's secrets when it is applied: a
//! key under 24 bytes, and under the standard scheme a text secret that is
//! not `whsec_<base64>`; once per layer, naming the secret by its index and
//! never by its content.
//!
//! This file holds a single test on purpose: tracing caches per call site
//! whether anyone listens, and a test running on another thread can make that
//! cache miss a subscriber installed with `set_default`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod log_capture;
use log_capture::LogBuffer;

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response};
use tower::{Layer, service_fn};
use webhook_guard::{Scheme, Secret, SecretSet, VerifyLayer};

fn apply(layer: &VerifyLayer) {
    let _service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
}

#[test]
fn weak_or_misread_receiver_secrets_are_warned_about_once() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A provider's short secret is accepted as it is, with a warning.
    let short = "shrt-Q9zq";
    let layer = VerifyLayer::new(SecretSet::single(short).unwrap());
    apply(&layer);
    apply(&layer.clone());
    let out = logs.take();
    assert_eq!(out.matches("WARN").count(), 1, "{out}");
    assert!(
        out.contains("secret #0 has 9 bytes of key, under 24"),
        "{out}"
    );
    assert!(!out.contains("Q9zq"), "{out}");

    // Under the standard scheme: text without `whsec_`, a `whsec_` text with
    // a 16-byte key, and a good one.
    let long_text = "plain-text-without-prefix-Q9zq";
    let layer = VerifyLayer::new(
        SecretSet::new([
            Secret::from(long_text),
            Secret::from("whsec_AAAAAAAAAAAAAAAAAAAAAA=="),
            Secret::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ])
        .unwrap(),
    )
    .scheme(Scheme::standard());
    apply(&layer);
    let out = logs.take();
    assert_eq!(out.matches("WARN").count(), 2, "{out}");
    assert!(
        out.contains("secret #0 is text that is not `whsec_`"),
        "{out}"
    );
    assert!(out.contains("secret #1 has 16 bytes of key"), "{out}");
    assert!(!out.contains("Q9zq") && !out.contains("AAAA"), "{out}");

    // Bytes are the key as given: no reading to warn about, and 24 bytes
    // are enough.
    let layer = VerifyLayer::new(SecretSet::single(Secret::new([9u8; 24])).unwrap())
        .scheme(Scheme::standard());
    apply(&layer);
    assert_eq!(logs.take(), "");
}
