//! Known-answer tests for the native scheme.
//!
//! The expected signatures in `tests/vectors/native.json` were computed with
//! `openssl dgst -sha256 -hmac` and Python's `hmac` module (each vector names
//! its command in `source`), not with this crate. A second test asks a live
//! `python3` for signatures over random inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::Command;

use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use webhook_guard::scheme::{NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_TIMESTAMP_HEADER};
use webhook_guard::{
    Message, Scheme, SchemeName, Secret, SecretSet, SignatureMatch, TimestampSource, VerifyError,
    VerifyErrorKind,
};

#[derive(Deserialize)]
struct File {
    header: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    mode: String,
    secrets: Vec<KeySpec>,
    id: Option<String>,
    timestamp: Option<i64>,
    body: Option<String>,
    body_hex: Option<String>,
    signature_header: String,
    source: serde_json::Value,
    body_timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct KeySpec {
    text: Option<String>,
    hex: Option<String>,
    expires_at: Option<i64>,
}

/// Signing time used for body-only vectors, which carry no header timestamp.
const BODY_ONLY_NOW: i64 = 1_700_000_000;

impl KeySpec {
    fn secret(&self) -> Secret {
        let secret = match (&self.text, &self.hex) {
            (Some(text), None) => Secret::from(text.as_str()),
            (None, Some(hex)) => Secret::new(hex::decode(hex).unwrap()),
            _ => panic!("a key needs exactly one of `text` and `hex`"),
        };
        match self.expires_at {
            Some(t) => secret.expires_at(t),
            None => secret,
        }
    }
}

impl Vector {
    fn body(&self) -> Vec<u8> {
        match (&self.body, &self.body_hex) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(hex)) => hex::decode(hex).unwrap(),
            _ => panic!("{}: needs exactly one of `body` and `body_hex`", self.name),
        }
    }

    fn secrets(&self) -> SecretSet {
        SecretSet::new(self.secrets.iter().map(KeySpec::secret)).unwrap()
    }

    fn signed(&self) -> bool {
        match self.mode.as_str() {
            "signed" => true,
            "body-only" => false,
            other => panic!("{}: unknown mode {other}", self.name),
        }
    }

    fn scheme(&self) -> Scheme {
        if self.signed() {
            Scheme::native()
        } else if self.body_timestamp.is_some() {
            Scheme::native_body_only()
        } else {
            Scheme::native_body_only().allow_missing_timestamp()
        }
    }

    /// When the message was signed (unix seconds).
    fn now(&self) -> i64 {
        self.timestamp.unwrap_or(BODY_ONLY_NOW)
    }

    /// The request headers, written from the vector's data alone.
    fn request_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATIVE_SIGNATURE_HEADER,
            HeaderValue::from_str(&self.signature_header).unwrap(),
        );
        if self.signed() {
            let id = self.id.as_deref().unwrap();
            headers.insert(NATIVE_ID_HEADER, HeaderValue::from_str(id).unwrap());
            let ts = self.timestamp.unwrap().to_string();
            headers.insert(NATIVE_TIMESTAMP_HEADER, HeaderValue::from_str(&ts).unwrap());
        }
        headers
    }
}

fn load() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/native.json");
    let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(file.header.to_ascii_lowercase(), NATIVE_SIGNATURE_HEADER);
    file.vectors
}

#[test]
fn vector_file_covers_the_required_cases() {
    let vectors = load();
    let platform = r#"{"event":"ingestion.completed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_abc123","data":{"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}}"#;
    for signed in [true, false] {
        let mode: Vec<_> = vectors.iter().filter(|v| v.signed() == signed).collect();
        assert!(mode.iter().any(|v| v.body().is_empty()), "empty body");
        assert!(
            mode.iter().any(|v| std::str::from_utf8(&v.body()).is_err()),
            "non-UTF-8 body"
        );
        assert!(mode.iter().any(|v| v.secrets.len() > 1), "rotation");
        assert!(
            mode.iter().any(|v| v.body() == platform.as_bytes()),
            "platform payload"
        );
    }
    for v in &vectors {
        assert!(
            v.commands()
                .iter()
                .all(|c| c.contains("openssl dgst -sha256") || c.contains("python3 -c")),
            "{}: source must name an independent tool",
            v.name
        );
    }
}

impl Vector {
    /// The commands that produced the expected signatures, one per secret.
    fn commands(&self) -> Vec<&str> {
        match &self.source {
            serde_json::Value::String(s) => vec![s],
            serde_json::Value::Array(list) => list.iter().map(|s| s.as_str().unwrap()).collect(),
            other => panic!("{}: bad source {other}", self.name),
        }
    }
}

/// Re-runs every recorded `source` command, so the file cannot drift from the
/// tools that produced it.
#[test]
fn source_commands_reproduce_the_expected_signatures() {
    let have_openssl = Command::new("openssl").arg("version").output().is_ok();
    for v in load() {
        let expected: Vec<&str> = v
            .signature_header
            .split(',')
            .map(|s| s.strip_prefix("sha256=").unwrap())
            .collect();
        let commands = v.commands();
        assert_eq!(commands.len(), expected.len(), "{}", v.name);
        for (command, expected) in commands.into_iter().zip(expected) {
            assert!(
                have_openssl || !command.contains("openssl"),
                "the `openssl` command is needed to check {:?} (apt-get install openssl)",
                v.name
            );
            let out = Command::new("bash").args(["-c", command]).output().unwrap();
            assert!(out.status.success(), "{}: {command}", v.name);
            let stdout = String::from_utf8(out.stdout).unwrap();
            // openssl prints `SHA2-256(stdin)= <hex>`, python just the hex.
            let got = stdout.split_whitespace().last().unwrap_or_default();
            assert_eq!(got, expected, "{}: {command}", v.name);
        }
    }
}

#[test]
fn sign_reproduces_every_vector() {
    for v in load() {
        let body = v.body();
        let msg = Message::new(v.id.as_deref().unwrap_or("unused"), v.now(), &body);
        let headers = v.scheme().sign(&v.secrets(), &msg).unwrap();
        assert_eq!(
            headers.get(NATIVE_SIGNATURE_HEADER).unwrap(),
            v.signature_header.as_str(),
            "{}",
            v.name
        );
        if v.signed() {
            assert_eq!(headers.len(), 3, "{}", v.name);
            assert_eq!(
                headers.get(NATIVE_ID_HEADER).unwrap(),
                v.id.as_deref().unwrap()
            );
            assert_eq!(
                headers.get(NATIVE_TIMESTAMP_HEADER).unwrap(),
                v.timestamp.unwrap().to_string().as_str()
            );
        } else {
            assert_eq!(headers.len(), 1, "{}: body-only sends one header", v.name);
        }
    }
}

/// Body-only mode reads the timestamp only once the signature matched, and
/// only a JSON object may carry none: for any other body a matching signature
/// gives the unusable-timestamp error (a wrong one gives `InvalidSignature`).
/// Returns the match for a JSON object body.
fn body_only_match(
    result: Result<SignatureMatch, VerifyError>,
    body: &[u8],
    case: &str,
) -> Option<SignatureMatch> {
    if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok() {
        return Some(result.unwrap_or_else(|e| panic!("{case}: {e}")));
    }
    let err = result.err().unwrap_or_else(|| panic!("{case}: accepted"));
    assert_eq!(
        err.kind(),
        VerifyErrorKind::MissingTimestamp,
        "{case}: {err}"
    );
    assert!(err.to_string().contains("JSON object"), "{case}: {err}");
    None
}

#[test]
fn verify_accepts_every_vector() {
    for v in load() {
        let body = v.body();
        let result =
            v.scheme()
                .verify_signature(&v.secrets(), &v.request_headers(), &body, v.now());
        let matched = if v.signed() {
            result.unwrap_or_else(|e| panic!("{}: {e}", v.name))
        } else {
            match body_only_match(result, &body, &v.name) {
                Some(matched) => matched,
                None => continue,
            }
        };
        assert_eq!(matched.secret_index(), 0, "{}", v.name);
        if v.signed() {
            assert_eq!(matched.id(), v.id.as_deref(), "{}", v.name);
            assert_eq!(matched.timestamp(), v.timestamp, "{}", v.name);
            assert_eq!(matched.timestamp_source(), TimestampSource::SignedHeader);
        } else {
            assert_eq!(matched.id(), None, "{}", v.name);
            assert_eq!(matched.timestamp(), v.body_timestamp, "{}", v.name);
            let source = if v.body_timestamp.is_some() {
                TimestampSource::SignedBody
            } else {
                TimestampSource::None
            };
            assert_eq!(matched.timestamp_source(), source, "{}", v.name);
        }
    }
}

#[test]
fn each_rotated_secret_alone_verifies_and_reports_its_index() {
    let unrelated = Secret::from("not-this-one");
    let rotations = load()
        .into_iter()
        .filter(|v| v.secrets.len() > 1 && v.secrets.iter().all(|k| k.expires_at.is_none()));
    for v in rotations {
        let body = v.body();
        for key in &v.secrets {
            // The secret second in a set whose first secret does not match.
            let set = SecretSet::new([unrelated.clone(), key.secret()]).unwrap();
            let matched = v
                .scheme()
                .verify_signature(&set, &v.request_headers(), &body, v.now())
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(matched.secret_index(), 1, "{}", v.name);
        }
    }
}

#[test]
fn expired_secret_no_longer_signs_or_verifies() {
    let vectors = load();
    let expired = vectors
        .iter()
        .find(|v| v.secrets.iter().any(|k| k.expires_at.is_some()))
        .expect("a vector with an expired secret");
    let rotation = vectors
        .iter()
        .find(|v| {
            v.signed() && v.secrets.len() > 1 && v.secrets.iter().all(|k| k.expires_at.is_none())
        })
        .unwrap();
    // The expired secret contributed no signature (checked by
    // `sign_reproduces_every_vector`); its signature from the rotation vector
    // stops verifying at the expiry instant.
    let old = expired
        .secrets
        .iter()
        .find(|k| k.expires_at.is_some())
        .unwrap();
    let expiry = old.expires_at.unwrap();
    let set = SecretSet::new([old.secret()]).unwrap();
    let body = rotation.body();
    let headers = rotation.request_headers();
    let scheme = rotation.scheme();
    assert!(
        scheme
            .verify_signature(&set, &headers, &body, expiry - 1)
            .is_ok()
    );
    let err = scheme
        .verify_signature(&set, &headers, &body, expiry)
        .unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature);
    assert_eq!(err.receiver_detail(), Some("0 active secret(s)"), "{err}");
}

#[test]
fn vectors_do_not_cross_modes() {
    // A signed-mode signature is not a body-only signature of the same body.
    for v in load().into_iter().filter(Vector::signed) {
        let body = v.body();
        let err = Scheme::native_body_only()
            .allow_missing_timestamp()
            .verify_signature(&v.secrets(), &v.request_headers(), &body, v.now())
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature, "{}", v.name);
        assert_eq!(v.scheme().name(), SchemeName::Native);
    }
}

/// A small xorshift generator, seeded freshly per run.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        Self(h.finish() | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const PYTHON_HMAC: &str = "\
import hmac, hashlib, sys
key, body = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
signed = sys.argv[3].encode() + b'.' + sys.argv[4].encode() + b'.' + body
print(hmac.new(key, signed, hashlib.sha256).hexdigest())
print(hmac.new(key, body, hashlib.sha256).hexdigest())
";

#[test]
fn live_python_signatures_verify() {
    let mut rng = Rng::new();
    for round in 0..5 {
        let key_len = 1 + rng.below(80) as usize;
        let key = rng.bytes(key_len);
        let body_len = rng.below(2048) as usize;
        let body = rng.bytes(body_len);
        // Visible ASCII ids without '.', the separator of the signed parts.
        let id: String = (0..1 + rng.below(40))
            .map(|_| char::from(b'!' + rng.below(94) as u8))
            .map(|c| if c == '.' { '_' } else { c })
            .collect();
        let ts = rng.below(4_000_000_000) as i64;
        let out = Command::new("python3")
            .args(["-c", PYTHON_HMAC])
            .arg(hex::encode(&key))
            .arg(hex::encode(&body))
            .arg(&id)
            .arg(ts.to_string())
            .output()
            .expect("python3 must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        let [signed_hex, body_hex] = lines[..] else {
            panic!("unexpected python output {stdout:?}")
        };
        let case = format!("round {round}: key {} id {id:?} ts {ts}", hex::encode(&key));
        let secrets = SecretSet::single(key.clone()).unwrap();

        // Signed mode: python's signature passes our verification ...
        let mut headers = HeaderMap::new();
        headers.insert(NATIVE_ID_HEADER, HeaderValue::from_str(&id).unwrap());
        headers.insert(NATIVE_TIMESTAMP_HEADER, HeaderValue::from(ts));
        headers.insert(
            NATIVE_SIGNATURE_HEADER,
            HeaderValue::from_str(&format!("sha256={signed_hex}")).unwrap(),
        );
        let matched = Scheme::native()
            .verify_signature(&secrets, &headers, &body, ts)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(matched.id(), Some(id.as_str()), "{case}");
        assert_eq!(matched.timestamp(), Some(ts), "{case}");
        // ... and our signature is python's.
        let ours = Scheme::native()
            .sign(&secrets, &Message::new(&id, ts, &body))
            .unwrap();
        assert_eq!(ours, headers, "{case}");

        // Body-only mode, the same both ways.
        let mut headers = HeaderMap::new();
        headers.insert(
            NATIVE_SIGNATURE_HEADER,
            HeaderValue::from_str(&format!("sha256={body_hex}")).unwrap(),
        );
        let scheme = Scheme::native_body_only().allow_missing_timestamp();
        body_only_match(
            scheme.verify_signature(&secrets, &headers, &body, ts),
            &body,
            &case,
        );
        let ours = scheme
            .sign(&secrets, &Message::new(&id, ts, &body))
            .unwrap();
        assert_eq!(ours, headers, "{case}");
    }
}
