//! Every scheme against an implementation written outside this crate and
//! outside Rust: a python3 program using only the standard library (`hmac`,
//! `hashlib`, `base64`) that signs the way each provider documents, and
//! verifies with `hmac.compare_digest`.
//!
//! For each scheme, python signs seeded random bodies and we verify; then we
//! sign and python verifies. Tampered controls in both directions make sure
//! neither side says yes to everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signers_support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use signers_support::{Rng, now};
use webhook_guard::{Message, Scheme, SecretSet, Verifier, VerifyErrorKind};

/// Random cases per scheme and direction.
const ROUNDS: usize = 200;

/// Signs and verifies one JSON request per line; answers one line each: the
/// headers as a JSON object for `sign`, `ok` or `bad` for `verify`.
const PYTHON_SIGNER: &str = r#"
import base64, hashlib, hmac, json, sys

def mac(key, *parts):
    return hmac.new(key, b''.join(parts), hashlib.sha256)

def sign(scheme, key, msg_id, ts, body):
    t = str(ts).encode()
    if scheme == 'native':
        return {'x-webhook-id': msg_id, 'x-webhook-timestamp': str(ts),
                'x-webhook-signature': 'sha256=' + mac(key, msg_id.encode(), b'.', t, b'.', body).hexdigest()}
    if scheme == 'native-body-only':
        return {'x-webhook-signature': 'sha256=' + mac(key, body).hexdigest()}
    if scheme == 'standard':
        sig = base64.b64encode(mac(key, msg_id.encode(), b'.', t, b'.', body).digest()).decode()
        return {'webhook-id': msg_id, 'webhook-timestamp': str(ts), 'webhook-signature': 'v1,' + sig}
    if scheme == 'github':
        return {'x-hub-signature-256': 'sha256=' + mac(key, body).hexdigest(), 'x-github-delivery': msg_id}
    if scheme == 'stripe':
        return {'stripe-signature': 't=%d,v1=%s' % (ts, mac(key, t, b'.', body).hexdigest())}
    if scheme == 'slack':
        return {'x-slack-request-timestamp': str(ts),
                'x-slack-signature': 'v0=' + mac(key, b'v0:', t, b':', body).hexdigest()}
    if scheme == 'shopify':
        return {'x-shopify-hmac-sha256': base64.b64encode(mac(key, body).digest()).decode(),
                'x-shopify-event-id': msg_id}
    raise ValueError(scheme)

def verify(scheme, key, h, body):
    # Each branch parses the headers the way the provider's docs describe.
    if scheme == 'native':
        expected = mac(key, h['x-webhook-id'].encode(), b'.', h['x-webhook-timestamp'].encode(), b'.', body).hexdigest()
        given = [s[len('sha256='):] for s in h['x-webhook-signature'].split(',') if s.startswith('sha256=')]
    elif scheme == 'native-body-only':
        expected = mac(key, body).hexdigest()
        given = [s[len('sha256='):] for s in h['x-webhook-signature'].split(',') if s.startswith('sha256=')]
    elif scheme == 'standard':
        content = h['webhook-id'].encode() + b'.' + h['webhook-timestamp'].encode() + b'.' + body
        expected = base64.b64encode(mac(key, content).digest()).decode()
        given = [s[3:] for s in h['webhook-signature'].split(' ') if s.startswith('v1,')]
    elif scheme == 'github':
        expected = 'sha256=' + mac(key, body).hexdigest()
        given = [h['x-hub-signature-256']]
    elif scheme == 'stripe':
        items = [i.split('=', 1) for i in h['stripe-signature'].split(',')]
        t = [v for k, v in items if k == 't'][0]
        expected = mac(key, t.encode(), b'.', body).hexdigest()
        given = [v for k, v in items if k == 'v1']
    elif scheme == 'slack':
        t = h['x-slack-request-timestamp'].encode()
        expected = 'v0=' + mac(key, b'v0:', t, b':', body).hexdigest()
        given = [h['x-slack-signature']]
    elif scheme == 'shopify':
        expected = base64.b64encode(mac(key, body).digest()).decode()
        given = [h['x-shopify-hmac-sha256']]
    else:
        raise ValueError(scheme)
    ok = False
    for g in given:
        ok |= hmac.compare_digest(g.encode(), expected.encode())
    return 'ok' if ok and given else 'bad'

out = []
for line in sys.stdin:
    req = json.loads(line)
    key, body = bytes.fromhex(req['key']), bytes.fromhex(req['body'])
    if req['op'] == 'sign':
        out.append(json.dumps(sign(req['scheme'], key, req['id'], req['ts'], body)))
    else:
        out.append(verify(req['scheme'], key, req['headers'], body))
sys.stdout.write('\n'.join(out) + '\n')
"#;

/// One random case: the secret as the provider hands it out, the key bytes it
/// stands for, and a message signed now.
struct Case {
    secret_text: String,
    key: Vec<u8>,
    id: String,
    ts: i64,
    body: Vec<u8>,
}

fn case(rng: &mut Rng, scheme: &str, round: usize) -> Case {
    let (secret_text, key) = if scheme == "standard" {
        let key = rng.key();
        (format!("whsec_{}", B64.encode(&key)), key)
    } else {
        let text = rng.secret_string();
        let key = text.clone().into_bytes();
        (text, key)
    };
    let ts = now();
    let body = if scheme == "native-body-only" {
        // Body-only mode checks the body's own signed `timestamp` field.
        let at = time::OffsetDateTime::from_unix_timestamp(ts).unwrap();
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        serde_json::to_vec(&json!({
            "event": "ingestion.completed",
            "timestamp": at,
            "data": { "note": rng.utf8_body() },
        }))
        .unwrap()
    } else if round % 2 == 0 {
        rng.utf8_body().into_bytes()
    } else {
        rng.non_utf8_body()
    };
    Case {
        secret_text,
        key,
        id: rng.id(),
        ts,
        body,
    }
}

fn python_batch(requests: &[serde_json::Value]) -> Vec<String> {
    let mut input = Vec::new();
    for r in requests {
        input.extend_from_slice(r.to_string().as_bytes());
        input.push(b'\n');
    }
    let out = signers_support::python(PYTHON_SIGNER, &input);
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), requests.len());
    lines
}

fn to_header_map(json: &str) -> HeaderMap {
    let map: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in map {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers
}

fn to_json(headers: &HeaderMap) -> serde_json::Value {
    let map: BTreeMap<&str, &str> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    json!(map)
}

fn verifier(scheme: &Scheme, c: &Case) -> Verifier {
    let secret = scheme.parse_secret(&c.secret_text).unwrap();
    Verifier::new(scheme.clone(), SecretSet::single(secret).unwrap())
}

/// Python signs, we verify (and refuse the same headers over another body).
fn python_signs_we_verify(name: &str) {
    let scheme = Scheme::from_name(name).unwrap();
    let mut rng = Rng::from_env(&format!("python_signs_we_verify({name})"));
    let cases: Vec<Case> = (0..ROUNDS).map(|r| case(&mut rng, name, r)).collect();
    let requests: Vec<_> = cases
        .iter()
        .map(|c| {
            json!({"op": "sign", "scheme": name, "key": hex::encode(&c.key),
                   "id": c.id, "ts": c.ts, "body": hex::encode(&c.body)})
        })
        .collect();
    for (i, (c, signed)) in cases.iter().zip(python_batch(&requests)).enumerate() {
        let headers = to_header_map(&signed);
        let verifier = verifier(&scheme, c);
        let verified = verifier
            .verify(&headers, Bytes::from(c.body.clone()))
            .unwrap_or_else(|e| panic!("{name}, case {i}: {e}; headers {signed}"));
        assert_eq!(verified.scheme(), scheme.name());
        if scheme.has_signed_timestamp() {
            assert_eq!(verified.timestamp(), Some(c.ts), "{name}, case {i}");
        } else {
            assert_eq!(verified.timestamp(), None, "{name}, case {i}");
        }

        let mut tampered = c.body.clone();
        tampered.push(b'\n');
        let err = verifier
            .verify(&headers, Bytes::from(tampered))
            .unwrap_err();
        assert_eq!(
            err.kind(),
            VerifyErrorKind::InvalidSignature,
            "{name}, case {i}"
        );
    }
}

/// We sign, python verifies with `hmac.compare_digest` (and refuses the same
/// headers over another body).
fn we_sign_python_verifies(name: &str) {
    let scheme = Scheme::from_name(name).unwrap();
    let mut rng = Rng::from_env(&format!("we_sign_python_verifies({name})"));
    let cases: Vec<Case> = (0..ROUNDS).map(|r| case(&mut rng, name, r)).collect();
    let mut requests = Vec::new();
    for c in &cases {
        let secrets = SecretSet::single(scheme.parse_secret(&c.secret_text).unwrap()).unwrap();
        let headers = scheme
            .sign(&secrets, &Message::new(&c.id, c.ts, &c.body))
            .unwrap();
        let mut tampered = c.body.clone();
        tampered.push(b'\n');
        for body in [&c.body, &tampered] {
            requests.push(
                json!({"op": "verify", "scheme": name, "key": hex::encode(&c.key),
                                  "headers": to_json(&headers), "body": hex::encode(body)}),
            );
        }
    }
    let answers = python_batch(&requests);
    for (i, pair) in answers.chunks(2).enumerate() {
        assert_eq!(
            pair[0], "ok",
            "{name}, case {i}: python refused our signature"
        );
        assert_eq!(
            pair[1], "bad",
            "{name}, case {i}: python accepted a tampered body"
        );
    }
}

macro_rules! independent_signer_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            mod $test {
                #[test]
                fn python_signs_we_verify() {
                    super::python_signs_we_verify($name);
                }

                #[test]
                fn we_sign_python_verifies() {
                    super::we_sign_python_verifies($name);
                }
            }
        )*

        #[test]
        fn every_scheme_is_covered() {
            let covered = [$($name),*];
            for name in webhook_guard::scheme::SCHEME_NAMES.split(", ") {
                let name = name.split(' ').next().unwrap();
                assert!(covered.contains(&name), "no independent signer test for `{name}`");
            }
        }
    };
}

independent_signer_tests! {
    native => "native",
    native_body_only => "native-body-only",
    standard => "standard",
    github => "github",
    stripe => "stripe",
    slack => "slack",
    shopify => "shopify",
}
