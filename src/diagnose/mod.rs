//! Why a webhook does not verify: the normal checks, then the likely cause.
//!
//! [`diagnose`] runs exactly what [`Verifier`](crate::Verifier) runs (the
//! signature against every active secret, then the replay window) and, when
//! that fails, looks for the reason a person would otherwise hunt for by hand:
//!
//! - which header the scheme needs is missing, and whether the headers of
//!   **another** scheme are there instead ("this looks like a GitHub
//!   delivery");
//! - whether the timestamp is outside the window, by how much, and whether it
//!   was sent in milliseconds (or micro-, nanoseconds) instead of seconds;
//! - whether the signature **would** match after a common change to the body
//!   between signing and checking: a trailing newline added or removed, LF and
//!   CRLF line endings swapped, the JSON re-serialized (compact, pretty with
//!   two spaces, or `", "`/`": "` separated), a UTF-8 byte order mark added or
//!   removed — and pairs of these;
//! - whether it would match with the secret read another way: base64-decoded
//!   instead of raw bytes (or the reverse), with the `whsec_` prefix kept or
//!   stripped, hex-decoded.
//!
//! The diagnosis never contains a secret or an expected signature: only
//! header names, counts, timestamps and the names of the changes that make
//! the signature match.
//!
//! # Cost
//!
//! Every guess copies and hashes the body, so a diagnosis bounds its own
//! work and says what it left out ([`Finding::GuessesSkipped`]): changes to
//! the body are tried only for bodies of at most [`MAX_BODY_FOR_CHANGES`]
//! bytes, a JSON body laid out anew may grow to eight times its size and no
//! more, and all guesses together build and hash at most [`GUESS_BUDGET`]
//! bytes. A diagnosis of a body under 1 MiB takes milliseconds and a few
//! megabytes, whatever its shape. It is still synchronous CPU work: a server
//! that diagnoses requests should run it off its async threads (for example
//! in `tokio::task::spawn_blocking`) and limit how often it does.
//!
//! ```
//! use webhook_guard::diagnose::{BodyChange, Finding, diagnose};
//! use webhook_guard::{Message, Scheme, SecretSet};
//!
//! let secrets = SecretSet::single("my-secret")?;
//! let scheme = Scheme::native();
//! let signed = br#"{"event":"kpi.alert","data":{"value":97.5}}"#;
//! let headers = scheme.sign(&secrets, &Message::new("evt_1", 1_700_000_000, signed))?;
//!
//! // Untouched, it verifies.
//! assert!(diagnose(&scheme, &secrets, &headers, signed, 1_700_000_010).is_verified());
//!
//! // A proxy pretty-printed the JSON on the way: the diagnosis says so.
//! let received = b"{\n  \"event\": \"kpi.alert\",\n  \"data\": {\n    \"value\": 97.5\n  }\n}";
//! let diagnosis = diagnose(&scheme, &secrets, &headers, received, 1_700_000_010);
//! assert!(!diagnosis.is_verified());
//! assert!(diagnosis.findings().contains(&Finding::BodyChanged {
//!     changes: vec![BodyChange::JsonReformattedFromCompact],
//! }));
//! assert!(!diagnosis.to_string().contains("my-secret"));
//!
//! // Milliseconds instead of seconds are named as such.
//! let headers = scheme.sign(&secrets, &Message::new("evt_2", 1_700_000_000_000, signed))?;
//! let diagnosis = diagnose(&scheme, &secrets, &headers, signed, 1_700_000_010);
//! assert!(diagnosis.to_string().contains("milliseconds"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod budget;
mod finding;
mod headers;
mod secret;
mod time;

use std::fmt;

use http::HeaderMap;

pub use body::BodyChange;
pub use finding::{Finding, SkipReason};
pub use secret::SecretEncoding;
pub use time::TimestampUnit;

use crate::error::{VerifyError, VerifyErrorKind};
use crate::replay::{FixedClock, ReplayWindow};
use crate::scheme::{Scheme, SchemeName, SignatureMatch};
use crate::secret::SecretSet;
use budget::Budget;
use headers::{missing_headers, other_schemes};

/// The largest body searched for changes made after signing; for a larger
/// one the diagnosis says [`SkipReason::BodyTooLarge`] instead.
///
/// Each of the 81 candidate bodies (nine changes and their pairs) is a
/// copy of the body, hashed with every secret.
pub const MAX_BODY_FOR_CHANGES: usize = 64 * 1024;

/// The most bytes one diagnosis builds and hashes while guessing: candidate
/// bodies, the body checked with other schemes and with secrets read other
/// ways. The guesses left when it is spent are not tried, and the diagnosis
/// says [`SkipReason::BudgetSpent`].
pub const GUESS_BUDGET: usize = 16 * 1024 * 1024;

/// Diagnoses a request with the default replay window (300 s each way) at
/// `now` (unix seconds).
///
/// See the [module docs](self) for what is checked.
pub fn diagnose(
    scheme: &Scheme,
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Diagnosis {
    let window = ReplayWindow::new().clock(FixedClock::at(now));
    diagnose_with_window(scheme, secrets, headers, body, &window)
}

/// Diagnoses a request against `window` (its tolerance, future skew and
/// clock).
pub fn diagnose_with_window(
    scheme: &Scheme,
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    window: &ReplayWindow,
) -> Diagnosis {
    let now = window.now_unix();
    let signature = scheme.verify_signature(secrets, headers, body, now);
    let result = signature
        .clone()
        .and_then(|matched| match matched.timestamp() {
            Some(ts) => window.check_at(ts, now).map(|()| matched),
            None => Ok(matched),
        });
    let mut diagnosis = Diagnosis {
        scheme: scheme.name(),
        now,
        result,
        findings: Vec::new(),
        guessed_bytes: 0,
    };
    let Err(err) = &diagnosis.result else {
        return diagnosis;
    };
    let kind = err.kind();
    let findings = &mut diagnosis.findings;
    let mut budget = Budget::default();

    if kind == VerifyErrorKind::MissingHeader {
        for header in missing_headers(scheme.name(), headers) {
            findings.push(Finding::MissingHeader { header });
        }
    }
    let request = Request {
        secrets,
        headers,
        body,
        now,
    };
    findings.extend(other_schemes(scheme.name(), &request, &mut budget));
    findings.extend(time::outside_window(
        scheme, &signature, headers, body, window, now,
    ));

    if kind == VerifyErrorKind::InvalidSignature {
        findings.push(explain_signature(scheme, &request, &mut budget));
    }
    diagnosis.guessed_bytes = budget.spent;
    diagnosis
}

/// What one diagnosis checks: the request as received.
struct Request<'a> {
    secrets: &'a SecretSet,
    headers: &'a HeaderMap,
    body: &'a [u8],
    now: i64,
}

impl Request<'_> {
    /// Whether the signature matches `body` (in place of the received one)
    /// with `scheme` and `secrets`.
    fn verifies(&self, scheme: &Scheme, secrets: &SecretSet, body: &[u8]) -> bool {
        signature_matches(&scheme.verify_signature(secrets, self.headers, body, self.now))
    }
}

/// The likely cause of a signature that does not match: a change to the
/// body, a secret read another way, or neither (or guesses left untried).
fn explain_signature(scheme: &Scheme, request: &Request<'_>, budget: &mut Budget) -> Finding {
    let body = request.body;
    let mut skipped = None;
    if body.len() > MAX_BODY_FOR_CHANGES {
        skipped = Some(SkipReason::BodyTooLarge {
            len: body.len(),
            limit: MAX_BODY_FOR_CHANGES,
        });
    } else {
        // Each candidate is built once and hashed by every check.
        let cost = 1 + scheme.checks_per_verification(request.secrets);
        let verifies = |candidate: &[u8], budget: &mut Budget| {
            budget.charge(candidate.len().saturating_mul(cost))?;
            Ok(request.verifies(scheme, request.secrets, candidate))
        };
        match body::find_body_changes(body, budget, verifies) {
            Ok(Some(changes)) => return Finding::BodyChanged { changes },
            Ok(None) => {}
            Err(reason) => skipped = Some(reason),
        }
    }
    match secret::find_secret_encoding(scheme, request, budget) {
        Ok(Some(encoding)) => Finding::SecretEncoding { encoding },
        Ok(None) => skipped.map_or(Finding::NoCauseFound, |reason| Finding::GuessesSkipped {
            reason,
        }),
        Err(reason) => Finding::GuessesSkipped {
            reason: skipped.unwrap_or(reason),
        },
    }
}

/// The outcome of [`diagnose`]: the verification result and, on failure,
/// what was found about the cause.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    scheme: SchemeName,
    now: i64,
    result: Result<SignatureMatch, VerifyError>,
    findings: Vec<Finding>,
    /// Bytes built and hashed by the guesses (at most [`GUESS_BUDGET`]).
    guessed_bytes: usize,
}

impl Diagnosis {
    /// Whether the request passes verification (signature and replay window).
    pub fn is_verified(&self) -> bool {
        self.result.is_ok()
    }

    /// What matched, when the request passes.
    pub fn signature_match(&self) -> Option<&SignatureMatch> {
        self.result.as_ref().ok()
    }

    /// The error a receiver would answer with, when the request fails.
    pub fn error(&self) -> Option<&VerifyError> {
        self.result.as_ref().err()
    }

    /// What was found about the cause of a failure, most specific first.
    /// Empty when the request passes.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The scheme the request was checked with.
    pub fn scheme(&self) -> SchemeName {
        self.scheme
    }

    /// The time the request was checked at (unix seconds).
    pub fn now(&self) -> i64 {
        self.now
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(m) => {
                write!(
                    f,
                    "verified with the `{}` scheme: secret #{} matched",
                    self.scheme,
                    m.secret_index()
                )?;
                if let Some(id) = m.id() {
                    write!(f, "; id `{id}`")?;
                }
                if let Some(ts) = m.timestamp() {
                    write!(
                        f,
                        "; timestamp {ts} ({})",
                        time::describe_offset(ts, self.now)
                    )?;
                }
                Ok(())
            }
            Err(err) => {
                write!(
                    f,
                    "not verified with the `{}` scheme ({}): {err}",
                    self.scheme,
                    err.kind()
                )?;
                if let Some(receiver) = err.receiver_detail() {
                    write!(f, "\n- receiver: {receiver}")?;
                }
                for finding in &self.findings {
                    write!(f, "\n- {finding}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a verification result means the signature matched (body-only mode
/// checks the body's timestamp only after the signature).
fn signature_matches(result: &Result<SignatureMatch, VerifyError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => e.kind() == VerifyErrorKind::MissingTimestamp,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::Message;
    use crate::scheme::{NATIVE_ID_HEADER, NATIVE_SIGNATURE_HEADER, NATIVE_TIMESTAMP_HEADER};
    use body::tests::deep_json;

    pub(in crate::diagnose) const NOW: i64 = 1_700_000_000;

    pub(in crate::diagnose) fn fake_signature() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(NATIVE_ID_HEADER, "evt_1".parse().unwrap());
        headers.insert(NATIVE_TIMESTAMP_HEADER, NOW.into());
        let signature = format!("sha256={}", "ab".repeat(32));
        headers.insert(NATIVE_SIGNATURE_HEADER, signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_large_body_is_not_searched_for_changes_and_the_diagnosis_says_so() {
        let secrets = SecretSet::single("s").unwrap();
        let body = deep_json(126, 1024 * 1024);
        let d = diagnose(&Scheme::native(), &secrets, &fake_signature(), &body, NOW);
        assert_eq!(
            d.findings(),
            &[Finding::GuessesSkipped {
                reason: SkipReason::BodyTooLarge {
                    len: body.len(),
                    limit: MAX_BODY_FOR_CHANGES,
                },
            }],
            "{d}"
        );
        // Only the secret readings were tried: six checks of the body.
        assert!(d.guessed_bytes <= 6 * body.len(), "{}", d.guessed_bytes);
        assert!(d.to_string().contains("were not tried"), "{d}");
    }

    #[test]
    fn no_cause_with_a_different_secret() {
        let scheme = Scheme::native();
        let headers = scheme
            .sign(
                &SecretSet::single("k3y-of-the-sender").unwrap(),
                &Message::new("e", NOW, b"{}"),
            )
            .unwrap();
        let d = diagnose(
            &scheme,
            &SecretSet::single("k3y-of-the-receiver").unwrap(),
            &headers,
            b"{}",
            NOW,
        );
        assert_eq!(d.findings(), &[Finding::NoCauseFound]);
        let text = d.to_string();
        assert!(!text.contains("k3y-of"), "{text}");
        let signature = headers[NATIVE_SIGNATURE_HEADER].to_str().unwrap();
        assert!(!text.contains(&signature[7..]), "{text}");
    }
}
