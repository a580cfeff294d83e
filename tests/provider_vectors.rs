//! Known-answer tests from the providers' own published examples.
//!
//! Each vector lives in `tests/vectors/providers/*.json` with a `source`
//! naming the page it was copied from. For every vector, [`Scheme::sign`] must
//! produce exactly the published headers, and the published headers must
//! verify at the vector's own time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use webhook_guard::{
    FixedClock, Message, ReplayWindow, Scheme, SecretSet, Verifier, VerifyErrorKind,
};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    source: String,
    comment: String,
    scheme: String,
    secret: String,
    id: Option<String>,
    timestamp: Option<i64>,
    body: String,
    headers: BTreeMap<String, String>,
}

impl Vector {
    fn scheme(&self) -> Scheme {
        Scheme::from_name(&self.scheme).unwrap()
    }

    fn secrets(&self) -> SecretSet {
        SecretSet::single(self.scheme().parse_secret(&self.secret).unwrap()).unwrap()
    }

    /// The request headers exactly as the provider published them.
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A verifier whose clock stands at the vector's timestamp (or at an
    /// arbitrary time when the scheme signs none).
    fn verifier_at_its_time(&self) -> Verifier {
        let now = self.timestamp.unwrap_or(1_700_000_000);
        Verifier::new(self.scheme(), self.secrets())
            .replay_window(ReplayWindow::new().clock(FixedClock::at(now)))
    }
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/providers")
}

fn load(file: &str) -> Vector {
    let text = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn all_vectors() -> Vec<(String, Vector)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let vector = load(&name);
            out.push((name, vector));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `sign` reproduces every published header, byte for byte.
fn assert_sign_reproduces(name: &str, v: &Vector) {
    let id = v.id.as_deref().unwrap_or("unused-by-this-scheme");
    let msg = Message::new(id, v.timestamp.unwrap_or(0), v.body.as_bytes());
    let signed = v.scheme().sign(&v.secrets(), &msg).unwrap();
    for (header, expected) in &v.headers {
        let got = signed
            .get(header.as_str())
            .unwrap_or_else(|| panic!("{name}: `sign` did not set `{header}`"));
        assert_eq!(got.to_str().unwrap(), expected, "{name}: header `{header}`");
    }
}

/// The published headers verify at the vector's time, and report what was
/// signed.
fn assert_verifies(name: &str, v: &Vector) {
    let verified = v
        .verifier_at_its_time()
        .verify(&v.header_map(), Bytes::from(v.body.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(verified.timestamp(), v.timestamp, "{name}");
    assert_eq!(verified.secret_index(), 0, "{name}");
    assert_eq!(verified.body().as_ref(), v.body.as_bytes(), "{name}");
    match &v.id {
        Some(id) => assert_eq!(verified.id(), id, "{name}"),
        None => assert!(verified.id().starts_with("sha256:"), "{name}"),
    }
}

#[test]
fn github_docs_example() {
    let v = load("github_docs.json");
    assert_eq!(v.secret, "It's a Secret to Everybody");
    assert_eq!(v.body, "Hello, World!");
    assert_eq!(
        v.headers["x-hub-signature-256"],
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    assert_sign_reproduces("github", &v);
    assert_verifies("github", &v);
}

#[test]
fn standard_webhooks_spec_example() {
    let v = load("standard_webhooks_spec.json");
    assert_eq!(v.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(v.id.as_deref(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
    assert_eq!(v.timestamp, Some(1_614_265_330));
    assert_eq!(v.body, r#"{"test": 2432232314}"#);
    assert_eq!(
        v.headers["webhook-signature"],
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    assert_sign_reproduces("standard", &v);
    assert_verifies("standard", &v);
}

#[test]
fn standard_webhooks_spec_example_with_svix_headers() {
    let v = load("standard_webhooks_spec.json");
    let mut headers = HeaderMap::new();
    for (name, value) in v.header_map() {
        let name = name.unwrap().as_str().replacen("webhook-", "svix-", 1);
        headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
    }
    assert!(headers.contains_key("svix-signature"));
    assert!(!headers.contains_key("webhook-signature"));
    let verified = v
        .verifier_at_its_time()
        .verify(&headers, Bytes::from(v.body.clone()))
        .unwrap();
    assert_eq!(verified.id(), "msg_p5jXN8AQM9LWM0D4loKWxJek");
}

#[test]
fn slack_docs_example() {
    let v = load("slack_docs.json");
    assert_eq!(v.secret, "8f742231b10e8888abcd99yyyzzz85a5");
    assert_eq!(v.timestamp, Some(1_531_420_618));
    assert!(
        v.body
            .starts_with("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&")
    );
    assert_eq!(
        v.headers["x-slack-signature"],
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
    assert_sign_reproduces("slack", &v);
    assert_verifies("slack", &v);
}

#[test]
fn every_vector_names_its_source_and_passes() {
    let vectors = all_vectors();
    let names: Vec<&str> = vectors.iter().map(|(n, _)| n.as_str()).collect();
    for required in [
        "github_docs.json",
        "slack_docs.json",
        "standard_webhooks_spec.json",
    ] {
        assert!(names.contains(&required), "{required} missing: {names:?}");
    }
    for (name, v) in &vectors {
        assert!(
            v.source.contains("https://"),
            "{name}: source has no address"
        );
        assert!(!v.comment.is_empty(), "{name}: empty comment");
        assert_sign_reproduces(name, v);
        assert_verifies(name, v);
    }
}

#[test]
fn any_flipped_body_bit_is_rejected() {
    for (name, v) in all_vectors() {
        let verifier = v.verifier_at_its_time();
        let headers = v.header_map();
        for i in 0..v.body.len() {
            for bit in 0..8 {
                let mut body = v.body.as_bytes().to_vec();
                body[i] ^= 1 << bit;
                let err = verifier.verify(&headers, Bytes::from(body)).unwrap_err();
                assert_eq!(
                    err.kind(),
                    VerifyErrorKind::InvalidSignature,
                    "{name}: byte {i} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn changed_signed_headers_are_rejected() {
    for (name, v) in all_vectors() {
        let verifier = v.verifier_at_its_time();
        let body = Bytes::from(v.body.clone());
        for (header, value) in &v.headers {
            let mut headers = v.header_map();
            let changed = if header.ends_with("timestamp") {
                (value.parse::<i64>().unwrap() + 1).to_string()
            } else if header.ends_with("-id") {
                format!("{value}x")
            } else {
                continue;
            };
            headers.insert(
                HeaderName::from_bytes(header.as_bytes()).unwrap(),
                HeaderValue::from_str(&changed).unwrap(),
            );
            let err = verifier.verify(&headers, body.clone()).unwrap_err();
            assert_eq!(
                err.kind(),
                VerifyErrorKind::InvalidSignature,
                "{name}: changed {header}"
            );
        }
    }
}

#[test]
fn wrong_secret_is_rejected() {
    for (name, v) in all_vectors() {
        let scheme = v.scheme();
        let other = scheme
            .parse_secret(if v.scheme == "standard" {
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            } else {
                "not-the-secret"
            })
            .unwrap();
        let now = v.timestamp.unwrap_or(1_700_000_000);
        let verifier = Verifier::new(scheme, SecretSet::single(other).unwrap())
            .replay_window(ReplayWindow::new().clock(FixedClock::at(now)));
        let err = verifier
            .verify(&v.header_map(), Bytes::from(v.body.clone()))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature, "{name}");
    }
}

#[test]
fn published_vectors_are_too_old_for_todays_window() {
    for (name, v) in all_vectors() {
        // The default verifier reads the system clock; every vector is years old.
        let verifier = Verifier::new(v.scheme(), v.secrets());
        let result = verifier.verify(&v.header_map(), Bytes::from(v.body.clone()));
        if v.timestamp.is_some() {
            assert_eq!(
                result.unwrap_err().kind(),
                VerifyErrorKind::TimestampTooOld,
                "{name}"
            );
        } else {
            // No signed timestamp (GitHub): no window applies.
            assert!(result.is_ok(), "{name}");
        }
    }
}
