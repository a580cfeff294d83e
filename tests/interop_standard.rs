//! Standard Webhooks interoperability against code this crate did not write:
//! the `standardwebhooks` reference crate and the `svix` crate, in both
//! directions, over many seeded random bodies, ids and secrets; plus `v1a`
//! (ed25519) signatures checked against an implementation outside Rust.
//!
//! Both libraries check the timestamp against the system clock, so every
//! message here is signed at the current time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod signers_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use signers_support::{Rng, now};
use webhook_guard::{Message, Scheme, Secret, SecretSet, Verifier, VerifyErrorKind};

/// Random cases per direction and library.
const ROUNDS: usize = 300;

fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", B64.encode(key))
}

/// Our verifier for one `whsec_` secret, on the system clock.
fn ours(secret: &str) -> Verifier {
    let secrets = SecretSet::single(Secret::from_whsec(secret).unwrap()).unwrap();
    Verifier::new(Scheme::standard(), secrets)
}

/// The three Standard Webhooks headers under the `webhook-` or `svix-` names.
fn headers(family: &str, id: &str, ts: i64, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    let name = |suffix: &str| {
        http::HeaderName::from_bytes(format!("{family}-{suffix}").as_bytes()).unwrap()
    };
    map.insert(name("id"), HeaderValue::from_str(id).unwrap());
    map.insert(name("timestamp"), HeaderValue::from(ts));
    map.insert(name("signature"), HeaderValue::from_str(signature).unwrap());
    map
}

/// Renames our `webhook-*` headers to `svix-*`.
fn to_svix(signed: &HeaderMap) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in signed {
        let renamed = name.as_str().replacen("webhook-", "svix-", 1);
        map.insert(
            http::HeaderName::from_bytes(renamed.as_bytes()).unwrap(),
            value.clone(),
        );
    }
    map
}

#[test]
fn standardwebhooks_signs_we_verify() {
    let mut rng = Rng::from_env("standardwebhooks_signs_we_verify");
    for round in 0..ROUNDS {
        let secret = whsec(&rng.key());
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let theirs = standardwebhooks::Webhook::new(&secret).unwrap();
        let signature = theirs.sign(&id, ts, body.as_bytes()).unwrap();
        let verified = ours(&secret)
            .verify(&headers("webhook", &id, ts, &signature), Bytes::from(body))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(verified.id(), id);
        assert_eq!(verified.timestamp(), Some(ts));
    }
}

#[test]
fn we_sign_standardwebhooks_verifies() {
    let mut rng = Rng::from_env("we_sign_standardwebhooks_verifies");
    for round in 0..ROUNDS {
        let secret = whsec(&rng.key());
        let (id, body) = (rng.id(), rng.utf8_body());
        let secrets = SecretSet::single(Secret::from_whsec(&secret).unwrap()).unwrap();
        let signed = Scheme::standard()
            .sign(&secrets, &Message::new(&id, now(), body.as_bytes()))
            .unwrap();
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(body.as_bytes(), &signed)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

#[test]
fn svix_signs_we_verify_under_both_header_names() {
    let mut rng = Rng::from_env("svix_signs_we_verify_under_both_header_names");
    for round in 0..ROUNDS {
        let secret = whsec(&rng.key());
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let theirs = svix::webhooks::Webhook::new(&secret).unwrap();
        let signature = theirs.sign(&id, ts, body.as_bytes()).unwrap();
        for family in ["webhook", "svix"] {
            let verified = ours(&secret)
                .verify(
                    &headers(family, &id, ts, &signature),
                    Bytes::from(body.clone()),
                )
                .unwrap_or_else(|e| panic!("round {round}, {family}-*: {e}"));
            assert_eq!(verified.id(), id);
        }
    }
}

#[test]
fn we_sign_svix_verifies_under_both_header_names() {
    let mut rng = Rng::from_env("we_sign_svix_verifies_under_both_header_names");
    for round in 0..ROUNDS {
        let secret = whsec(&rng.key());
        let (id, body) = (rng.id(), rng.utf8_body());
        let secrets = SecretSet::single(Secret::from_whsec(&secret).unwrap()).unwrap();
        let signed = Scheme::standard()
            .sign(&secrets, &Message::new(&id, now(), body.as_bytes()))
            .unwrap();
        let theirs = svix::webhooks::Webhook::new(&secret).unwrap();
        theirs
            .verify(body.as_bytes(), &signed)
            .unwrap_or_else(|e| panic!("round {round}, webhook-*: {e}"));
        theirs
            .verify(body.as_bytes(), &to_svix(&signed))
            .unwrap_or_else(|e| panic!("round {round}, svix-*: {e}"));
    }
}

#[test]
fn rotation_works_with_both_libraries() {
    let mut rng = Rng::from_env("rotation_works_with_both_libraries");
    for _ in 0..50 {
        let (new, old) = (whsec(&rng.key()), whsec(&rng.key()));
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let both = SecretSet::new([
            Secret::from_whsec(&new).unwrap(),
            Secret::from_whsec(&old).unwrap(),
        ])
        .unwrap();

        // We sign with both: a header with two `v1,` signatures that a
        // receiver holding either secret accepts.
        let signed = Scheme::standard()
            .sign(&both, &Message::new(&id, ts, body.as_bytes()))
            .unwrap();
        let value = signed["webhook-signature"].to_str().unwrap();
        assert_eq!(value.split(' ').count(), 2, "{value}");
        svix::webhooks::Webhook::new(&old)
            .unwrap()
            .verify(body.as_bytes(), &signed)
            .unwrap();
        standardwebhooks::Webhook::new(&new)
            .unwrap()
            .verify(body.as_bytes(), &signed)
            .unwrap();

        // They sign with the old secret only: we accept and say which matched.
        let sig = svix::webhooks::Webhook::new(&old)
            .unwrap()
            .sign(&id, ts, body.as_bytes())
            .unwrap();
        let verifier = Verifier::new(Scheme::standard(), both.clone());
        let verified = verifier
            .verify(&headers("svix", &id, ts, &sig), Bytes::from(body.clone()))
            .unwrap();
        assert_eq!(verified.secret_index(), 1);
        let sig = standardwebhooks::Webhook::new(&new)
            .unwrap()
            .sign(&id, ts, body.as_bytes())
            .unwrap();
        let verified = verifier
            .verify(&headers("webhook", &id, ts, &sig), Bytes::from(body))
            .unwrap();
        assert_eq!(verified.secret_index(), 0);
    }
}

#[test]
fn non_utf8_bodies_are_signed_and_verified_by_us_only() {
    let mut rng = Rng::from_env("non_utf8_bodies_are_signed_and_verified_by_us_only");
    for round in 0..ROUNDS {
        let key = rng.key();
        let secret = whsec(&key);
        let (id, body, ts) = (rng.id(), rng.non_utf8_body(), now());

        // Both libraries take `&[u8]` but refuse bytes that are not UTF-8.
        assert!(matches!(
            standardwebhooks::Webhook::new(&secret)
                .unwrap()
                .sign(&id, ts, &body),
            Err(standardwebhooks::WebhookError::InvalidPayload)
        ));
        assert!(matches!(
            svix::webhooks::Webhook::new(&secret)
                .unwrap()
                .sign(&id, ts, &body),
            Err(svix::webhooks::WebhookError::InvalidPayload)
        ));

        // We sign the raw bytes: the signature is HMAC-SHA256 over
        // `{id}.{ts}.` followed by the bytes, as the specification says.
        let secrets = SecretSet::single(Secret::from_whsec(&secret).unwrap()).unwrap();
        let signed = Scheme::standard()
            .sign(&secrets, &Message::new(&id, ts, &body))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
        assert_eq!(
            signed["webhook-signature"],
            expected.as_str(),
            "round {round}"
        );

        let verified = ours(&secret)
            .verify(&signed, Bytes::from(body.clone()))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(verified.body().as_ref(), &body[..]);
    }
}

#[test]
fn tampered_deliveries_signed_by_them_are_rejected() {
    let mut rng = Rng::from_env("tampered_deliveries_signed_by_them_are_rejected");
    for round in 0..100 {
        let secret = whsec(&rng.key());
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let signature = svix::webhooks::Webhook::new(&secret)
            .unwrap()
            .sign(&id, ts, body.as_bytes())
            .unwrap();
        let verifier = ours(&secret);
        let reject = |headers: HeaderMap, body: Vec<u8>, what: &str| {
            let err = verifier.verify(&headers, Bytes::from(body)).unwrap_err();
            assert_eq!(
                err.kind(),
                VerifyErrorKind::InvalidSignature,
                "round {round}, {what}: {err}"
            );
        };

        if !body.is_empty() {
            let mut changed = body.clone().into_bytes();
            let at = rng.below(changed.len());
            changed[at] ^= 1 << rng.below(8);
            reject(headers("webhook", &id, ts, &signature), changed, "body bit");
        }
        let mut longer = body.clone().into_bytes();
        longer.push(b' ');
        reject(
            headers("webhook", &id, ts, &signature),
            longer,
            "body longer",
        );
        reject(
            headers("webhook", &format!("{id}x"), ts, &signature),
            body.clone().into_bytes(),
            "id",
        );
        reject(
            headers("webhook", &id, ts - 1, &signature),
            body.clone().into_bytes(),
            "timestamp",
        );
        // Flip one bit of the decoded signature and encode it again, so the
        // header stays well-formed.
        let mut sig = B64.decode(&signature[3..]).unwrap();
        sig[rng.below(32)] ^= 1 << rng.below(8);
        let forged = format!("v1,{}", B64.encode(sig));
        reject(
            headers("webhook", &id, ts, &forged),
            body.into_bytes(),
            "signature bit",
        );
    }
}

/// The whole path over real HTTP: a `VerifyLayer` server on loopback, given
/// the `whsec_` text as the provider prints it, accepts deliveries signed by
/// both libraries and refuses a tampered one.
#[tokio::test]
async fn receiver_over_http_accepts_deliveries_signed_by_both_libraries() {
    use axum::{Router, routing::post};
    use webhook_guard::{Verified, VerifyLayer};

    let mut rng = Rng::from_env("receiver_over_http_accepts_deliveries_signed_by_both_libraries");
    let secret = whsec(&rng.key());
    let secrets = SecretSet::single(secret.as_str()).unwrap();
    let app = Router::new()
        .route(
            "/webhooks",
            post(|v: Verified| async move { format!("{} {}", v.id(), v.body().len()) }),
        )
        .layer(VerifyLayer::new(secrets).scheme(Scheme::standard()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    for round in 0..40 {
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let (family, signature) = if round % 2 == 0 {
            let wh = standardwebhooks::Webhook::new(&secret).unwrap();
            ("webhook", wh.sign(&id, ts, body.as_bytes()).unwrap())
        } else {
            let wh = svix::webhooks::Webhook::new(&secret).unwrap();
            ("svix", wh.sign(&id, ts, body.as_bytes()).unwrap())
        };
        let res = client
            .post(&url)
            .headers(headers(family, &id, ts, &signature))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "round {round}");
        assert_eq!(res.text().await.unwrap(), format!("{id} {}", body.len()));

        let res = client
            .post(&url)
            .headers(headers(family, &id, ts, &signature))
            .body(format!("{body}!"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "round {round}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "round {round}"
        );
        let problem: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("#variant.InvalidSignature"),
            "{problem}"
        );
        assert!(!problem.to_string().contains(&secret[6..]));
    }
    server.abort();
}

#[cfg(feature = "ed25519")]
mod ed25519 {
    use super::*;
    use webhook_guard::scheme::{
        Ed25519PublicKey, Ed25519SigningKey, MAX_ED25519_CHECKS, SignatureAlgorithm,
    };

    /// A secret set that signs nothing at the messages' times, so that
    /// `sign` emits the `v1a` signature alone.
    fn no_active_hmac() -> SecretSet {
        SecretSet::single(Secret::from("expired").expires_at(1)).unwrap()
    }

    fn seed(rng: &mut Rng) -> [u8; 32] {
        rng.bytes(32).try_into().unwrap()
    }

    /// One body per case: text or raw bytes, both are signed as bytes.
    fn body(rng: &mut Rng, round: usize) -> Vec<u8> {
        if round % 2 == 0 {
            rng.utf8_body().into_bytes()
        } else {
            rng.non_utf8_body()
        }
    }

    fn v1a_of(signed: &HeaderMap) -> [u8; 64] {
        let value = signed["webhook-signature"].to_str().unwrap();
        let b64 = value.strip_prefix("v1a,").expect(value);
        B64.decode(b64).unwrap().try_into().unwrap()
    }

    #[test]
    fn v1a_signed_with_secret_key_verifies_with_public_key() {
        let mut rng = Rng::from_env("v1a_signed_with_secret_key_verifies_with_public_key");
        for round in 0..100 {
            let key = Ed25519SigningKey::from_seed(&seed(&mut rng));
            let public = Ed25519PublicKey::from_whpk(&key.public_key().to_whpk()).unwrap();
            let (id, body, ts) = (rng.id(), body(&mut rng, round), now());
            let signer = Scheme::standard().with_signing_key(key);
            let signed = signer
                .sign(&no_active_hmac(), &Message::new(&id, ts, &body))
                .unwrap();
            let verifier = Verifier::new(
                Scheme::standard().with_public_keys([public]),
                no_active_hmac(),
            );
            let verified = verifier
                .verify(&signed, Bytes::from(body.clone()))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
            assert_eq!(verified.id(), id);

            // Another key's public half does not verify it.
            let stranger = Ed25519SigningKey::from_seed(&seed(&mut rng)).public_key();
            let err = Verifier::new(
                Scheme::standard().with_public_keys([stranger]),
                no_active_hmac(),
            )
            .verify(&signed, Bytes::from(body.clone()))
            .unwrap_err();
            assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature);

            // Nor does it survive a changed body.
            let mut changed = body;
            changed.push(0);
            let err = verifier.verify(&signed, Bytes::from(changed)).unwrap_err();
            assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature);
        }
    }

    #[test]
    fn v1a_beside_a_failing_v1_still_verifies() {
        let mut rng = Rng::from_env("v1a_beside_a_failing_v1_still_verifies");
        let key = Ed25519SigningKey::from_seed(&seed(&mut rng));
        let public = key.public_key();
        let (id, body, ts) = (rng.id(), rng.utf8_body(), now());
        let sender_secrets = SecretSet::single(Secret::new(rng.key())).unwrap();
        let signed = Scheme::standard()
            .with_signing_key(key)
            .sign(&sender_secrets, &Message::new(&id, ts, body.as_bytes()))
            .unwrap();
        let value = signed["webhook-signature"].to_str().unwrap();
        assert!(
            value.starts_with("v1,") && value.contains(" v1a,"),
            "{value}"
        );
        // The receiver holds a different HMAC secret but the right public key.
        let receiver = Verifier::new(
            Scheme::standard().with_public_keys([public]),
            SecretSet::single(Secret::new(rng.key())).unwrap(),
        );
        let verified = receiver.verify(&signed, Bytes::from(body)).unwrap();
        assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
    }

    /// A `v1a` signature by `key` over `{id}.{ts}.{body}`, as `v1a,<base64>`.
    fn v1a_signature(key: &Ed25519SigningKey, id: &str, ts: i64, body: &[u8]) -> String {
        let signed = Scheme::standard()
            .with_signing_key(key.clone())
            .sign(&no_active_hmac(), &Message::new(id, ts, body))
            .unwrap();
        signed["webhook-signature"].to_str().unwrap().to_owned()
    }

    #[test]
    fn v1a_checks_per_request_are_bounded() {
        let [old, new, stranger] = [1u8, 2, 3].map(|i| Ed25519SigningKey::from_seed(&[i; 32]));
        let (id, ts, body) = ("msg_v1a_bound", now(), vec![b'x'; 64 * 1024]);
        let genuine = v1a_signature(&new, id, ts, &body);
        let foreign = v1a_signature(&stranger, id, ts, &body);
        let receiver = Verifier::new(
            Scheme::standard().with_public_keys([old.public_key(), new.public_key()]),
            no_active_hmac(),
        );
        let verify = |signatures: &[&str]| {
            let headers = headers("webhook", id, ts, &signatures.join(" "));
            receiver.verify(&headers, Bytes::from(body.clone()))
        };

        // A rotation on both sides at once: 2 signatures × 2 keys passes.
        let verified = verify(&[&foreign, &genuine]).unwrap();
        assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
        assert_eq!(verified.secret_index(), 1);

        // 16 signatures × 2 keys would be 32 checks of the whole content:
        // none runs, even though the last signature is genuine. The answer
        // is the one any unmatched request gets (the bound depends on the
        // receiver's keys); the log's receiver detail says why.
        let mut flood = vec![foreign.as_str(); 15];
        flood.push(&genuine);
        let err = verify(&flood).unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature);
        assert!(!err.detail().contains("2 public keys"), "{err}");
        let receiver_detail = err.receiver_detail().unwrap_or_default();
        assert!(
            receiver_detail.contains("32 ed25519 checks")
                && receiver_detail.contains(&format!("{MAX_ED25519_CHECKS} allowed")),
            "{receiver_detail}"
        );
        // Just over the bound: 3 × 2.
        let err = verify(&[&foreign, &foreign, &genuine]).unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature, "{err}");

        // One or two signatures (a sender rotating its key) are always
        // checked, whatever the number of keys the receiver chose.
        let many_keys = (10..16u8).map(|i| Ed25519SigningKey::from_seed(&[i; 32]).public_key());
        let receiver = Verifier::new(
            Scheme::standard().with_public_keys(many_keys.chain([new.public_key()])),
            no_active_hmac(),
        );
        for signatures in [
            vec![genuine.as_str()],
            vec![foreign.as_str(), genuine.as_str()],
        ] {
            let headers = headers("webhook", id, ts, &signatures.join(" "));
            let verified = receiver
                .verify(&headers, Bytes::from(body.clone()))
                .unwrap();
            assert_eq!(verified.secret_index(), 6);
        }
        // A third signature against those 7 keys is refused.
        let headers = headers(
            "webhook",
            id,
            ts,
            &[foreign.as_str(), &foreign, &genuine].join(" "),
        );
        let err = receiver
            .verify(&headers, Bytes::from(body.clone()))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::InvalidSignature, "{err}");
    }

    /// Which independent ed25519 implementations run here: python's
    /// `cryptography` package and node's `crypto` module.
    fn independent_implementations() -> Vec<&'static str> {
        let mut found = Vec::new();
        if signers_support::python_has("cryptography") {
            found.push("python-cryptography");
        }
        if signers_support::node_available() {
            found.push("node-crypto");
        }
        assert!(
            !found.is_empty(),
            "neither python3 with `cryptography` nor node is available for the independent ed25519 check"
        );
        found
    }

    const PYTHON_ED25519: &str = r#"
import sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
for line in sys.stdin:
    fields = line.split()
    op = fields[0]
    a, b = (bytes.fromhex(x[1:]) for x in fields[1:3])
    if op == 'sign':
        key = Ed25519PrivateKey.from_private_bytes(a)
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        print(key.sign(b).hex(), pub.hex())
    else:
        try:
            Ed25519PublicKey.from_public_bytes(a).verify(bytes.fromhex(fields[3][1:]), b)
            print('ok')
        except InvalidSignature:
            print('bad')
"#;

    const NODE_ED25519: &str = r#"
const crypto = require('crypto');
const PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const hex = (s) => Buffer.from(s.slice(1), 'hex');
const out = [];
for (const line of require('fs').readFileSync(0, 'utf8').split('\n')) {
  if (!line) continue;
  const [op, a, b, c] = line.split(' ');
  if (op === 'sign') {
    const key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8, hex(a)]), format: 'der', type: 'pkcs8' });
    const pub = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32);
    out.push(crypto.sign(null, hex(b), key).toString('hex') + ' ' + pub.toString('hex'));
  } else {
    const pub = crypto.createPublicKey({ key: Buffer.concat([SPKI, hex(a)]), format: 'der', type: 'spki' });
    out.push(crypto.verify(null, hex(b), pub, hex(c)) ? 'ok' : 'bad');
  }
}
process.stdout.write(out.join('\n') + '\n');
"#;

    /// Runs a batch of `sign <seed> <msg>` / `verify <pub> <msg> <sig>`
    /// lines (each field `h` + hex, so empty fields survive splitting).
    fn run_batch(implementation: &str, lines: &[String]) -> Vec<String> {
        let input = lines.join("\n") + "\n";
        let out = match implementation {
            "python-cryptography" => signers_support::python(PYTHON_ED25519, input.as_bytes()),
            "node-crypto" => signers_support::run("node", &["-e", NODE_ED25519], input.as_bytes()),
            other => unreachable!("{other}"),
        };
        let out: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(out.len(), lines.len(), "{implementation}");
        out
    }

    fn h(bytes: &[u8]) -> String {
        format!("h{}", hex::encode(bytes))
    }

    fn signed_content(id: &str, ts: i64, body: &[u8]) -> Vec<u8> {
        let mut content = format!("{id}.{ts}.").into_bytes();
        content.extend_from_slice(body);
        content
    }

    #[test]
    fn v1a_agrees_with_an_independent_ed25519_implementation() {
        let mut rng = Rng::from_env("v1a_agrees_with_an_independent_ed25519_implementation");
        struct Case {
            seed: [u8; 32],
            id: String,
            ts: i64,
            body: Vec<u8>,
            ours: [u8; 64],
        }
        let cases: Vec<Case> = (0..100)
            .map(|round| {
                let seed = seed(&mut rng);
                let (id, body, ts) = (rng.id(), body(&mut rng, round), now());
                let signed = Scheme::standard()
                    .with_signing_key(Ed25519SigningKey::from_seed(&seed))
                    .sign(&no_active_hmac(), &Message::new(&id, ts, &body))
                    .unwrap();
                let ours = v1a_of(&signed);
                Case {
                    seed,
                    id,
                    ts,
                    body,
                    ours,
                }
            })
            .collect();

        for implementation in independent_implementations() {
            eprintln!("independent ed25519 check with {implementation}");
            let mut lines = Vec::new();
            for c in &cases {
                let public = Ed25519SigningKey::from_seed(&c.seed).public_key();
                let public = Ed25519PublicKey::from_whpk(&public.to_whpk()).unwrap();
                let pub_bytes = B64.decode(&public.to_whpk()[5..]).unwrap();
                let content = signed_content(&c.id, c.ts, &c.body);
                lines.push(format!("sign {} {}", h(&c.seed), h(&content)));
                lines.push(format!(
                    "verify {} {} {}",
                    h(&pub_bytes),
                    h(&content),
                    h(&c.ours)
                ));
                // A control that must fail, so a verifier that says `ok` to
                // everything is caught.
                let mut wrong = c.ours;
                wrong[0] ^= 1;
                lines.push(format!(
                    "verify {} {} {}",
                    h(&pub_bytes),
                    h(&content),
                    h(&wrong)
                ));
            }
            let out = run_batch(implementation, &lines);
            for (i, c) in cases.iter().enumerate() {
                let (theirs_sig, theirs_pub) = out[3 * i].split_once(' ').unwrap();
                // They accept our signature and reject a flipped one.
                assert_eq!(out[3 * i + 1], "ok", "{implementation}, case {i}");
                assert_eq!(out[3 * i + 2], "bad", "{implementation}, case {i}");
                // Ed25519 is deterministic: same seed, same content, same bytes.
                assert_eq!(
                    theirs_sig,
                    hex::encode(c.ours),
                    "{implementation}, case {i}"
                );

                // We accept their signature with the public key they derived.
                let pub_bytes: [u8; 32] = hex::decode(theirs_pub).unwrap().try_into().unwrap();
                let verifier = Verifier::new(
                    Scheme::standard()
                        .with_public_keys([Ed25519PublicKey::from_bytes(&pub_bytes).unwrap()]),
                    no_active_hmac(),
                );
                let sig = hex::decode(theirs_sig).unwrap();
                let headers = headers(
                    if i % 2 == 0 { "webhook" } else { "svix" },
                    &c.id,
                    c.ts,
                    &format!("v1a,{}", B64.encode(sig)),
                );
                let verified = verifier
                    .verify(&headers, Bytes::from(c.body.clone()))
                    .unwrap_or_else(|e| panic!("{implementation}, case {i}: {e}"));
                assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
            }
        }
    }
}
