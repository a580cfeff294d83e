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

use std::fmt;

use base64::Engine as _;
use http::HeaderMap;

use crate::error::{VerifyError, VerifyErrorKind};
use crate::replay::{FixedClock, ReplayWindow};
use crate::scheme::{Scheme, SchemeName, SignatureMatch};
use crate::secret::{Secret, SecretSet, WHSEC_PREFIX};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

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

/// How many times larger than the received body JSON laid out anew may
/// grow (pretty-printing deeply nested JSON multiplies it) before that
/// guess is given up.
const MAX_REFORMAT_GROWTH: usize = 8;

/// A body this small may always be laid out anew in full.
const MIN_REFORMAT_LIMIT: usize = 4 * 1024;

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

    let signature_ok = signature_matches(&signature);
    let claimed = match &signature {
        Ok(matched) => matched.timestamp(),
        Err(_) => scheme.name().claimed_timestamp(headers, body),
    };
    if let Some(timestamp) = claimed {
        if window.check_at(timestamp, now).is_err() {
            findings.push(Finding::TimestampOutsideWindow {
                timestamp,
                now,
                tolerance: window.tolerance_value().as_secs(),
                future_skew: window.future_skew_value().as_secs(),
                unit: TimestampUnit::guess(timestamp, now),
                signature_verified: signature_ok,
            });
        }
    }

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

/// The bytes built and hashed by the guesses of one diagnosis, against
/// [`GUESS_BUDGET`].
#[derive(Default)]
struct Budget {
    spent: usize,
}

impl Budget {
    /// Charges `bytes`, or refuses (charging nothing) when that would pass
    /// the budget.
    fn charge(&mut self, bytes: usize) -> Result<(), SkipReason> {
        let total = self.spent.saturating_add(bytes);
        if total > GUESS_BUDGET {
            return Err(SkipReason::BudgetSpent {
                budget: GUESS_BUDGET,
            });
        }
        self.spent = total;
        Ok(())
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
        match find_body_changes(body, budget, verifies) {
            Ok(Some(changes)) => return Finding::BodyChanged { changes },
            Ok(None) => {}
            Err(reason) => skipped = Some(reason),
        }
    }
    match find_secret_encoding(scheme, request, budget) {
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
                    write!(f, "; timestamp {ts} ({})", describe_offset(ts, self.now))?;
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

/// One thing learned about why a request does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// A header the scheme needs is absent.
    MissingHeader {
        /// The header's name (lower case).
        header: &'static str,
    },
    /// The request carries the signature header of another scheme.
    LooksLikeOtherScheme {
        /// The scheme the headers belong to.
        scheme: SchemeName,
        /// The provider's name, such as `GitHub`.
        provider: &'static str,
        /// The header that gave it away.
        header: &'static str,
        /// Whether the request verifies with that scheme and the same secrets.
        verifies: bool,
    },
    /// The timestamp is outside the replay window.
    TimestampOutsideWindow {
        /// The timestamp as sent.
        timestamp: i64,
        /// The time of the check (unix seconds).
        now: i64,
        /// How old a timestamp may be, in seconds.
        tolerance: u64,
        /// How far in the future a timestamp may be, in seconds.
        future_skew: u64,
        /// The unit the value appears to be in.
        unit: TimestampUnit,
        /// Whether the signature itself is valid (then only the time is wrong).
        signature_verified: bool,
    },
    /// The signature matches the body after undoing these changes, in order:
    /// the body was changed between signing and checking.
    BodyChanged {
        /// What happened to the body after it was signed.
        changes: Vec<BodyChange>,
    },
    /// The signature matches when the secret is read another way.
    SecretEncoding {
        /// How the sender reads the secret.
        encoding: SecretEncoding,
    },
    /// The signature matches neither the body with any common change nor the
    /// secret read any other way.
    NoCauseFound,
    /// Nothing tried matched, but some guesses were left out to keep the
    /// diagnosis cheap (see the [module docs](self#cost)): the cause may be
    /// among them.
    GuessesSkipped {
        /// Why they were left out.
        reason: SkipReason,
    },
}

/// Why a diagnosis left some guesses out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The body is larger than [`MAX_BODY_FOR_CHANGES`]: no change to it was
    /// tried.
    BodyTooLarge {
        /// The body's length in bytes.
        len: usize,
        /// The largest body that is searched.
        limit: usize,
    },
    /// The guesses tried built and hashed [`GUESS_BUDGET`] bytes: the rest
    /// were not tried.
    BudgetSpent {
        /// The budget, in bytes.
        budget: usize,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge { len, limit } => write!(
                f,
                "changes to the body after signing were not tried: the body is {len} bytes, \
                 more than the {limit} that are searched"
            ),
            Self::BudgetSpent { budget } => write!(
                f,
                "not every change to the body or reading of the secret was tried: \
                 together they would build and hash more than {budget} bytes"
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader { header } => write!(f, "the `{header}` header is missing"),
            Self::LooksLikeOtherScheme {
                scheme,
                provider,
                header,
                verifies,
            } => {
                write!(
                    f,
                    "this looks like a {provider} delivery (it carries `{header}`): use the `{scheme}` scheme"
                )?;
                if *verifies {
                    f.write_str("; the request verifies with it")?;
                }
                Ok(())
            }
            Self::TimestampOutsideWindow {
                timestamp,
                now,
                tolerance,
                future_skew,
                unit,
                signature_verified,
            } => {
                if *unit == TimestampUnit::Seconds {
                    let age = i128::from(*now) - i128::from(*timestamp);
                    let limit = if age >= 0 { tolerance } else { future_skew };
                    write!(
                        f,
                        "the timestamp {timestamp} is {}; the window allows {limit} s: \
                         check the sender's and this machine's clocks, or whether the request is a late retry or a replay",
                        describe_offset(*timestamp, *now)
                    )?;
                } else {
                    let divisor = unit.per_second();
                    let seconds = i128::from(*timestamp) / divisor;
                    let off = i128::from(*now) - seconds;
                    write!(
                        f,
                        "the timestamp {timestamp} looks like {unit} (as seconds it would be {seconds}, {} s {} now): \
                         the sender must send unix time in whole seconds",
                        off.abs(),
                        if off >= 0 { "before" } else { "after" }
                    )?;
                }
                if !signature_verified {
                    f.write_str(" (the signature does not verify either)")?;
                }
                Ok(())
            }
            Self::BodyChanged { changes } => {
                f.write_str("the signature matches the body as it was before it was changed: ")?;
                for (i, change) in changes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", and ")?;
                    }
                    write!(f, "{change}")?;
                }
                f.write_str(
                    "; verify the raw bytes exactly as received, before any parsing or re-encoding",
                )
            }
            Self::SecretEncoding { encoding } => write!(
                f,
                "the signature matches with the secret {encoding}: the sender reads the secret differently from this receiver"
            ),
            Self::NoCauseFound => f.write_str(
                "the signature matches no common change to the body and no other reading of the secret: \
                 most likely the secret differs from the sender's (a rotated, test-mode or other endpoint's secret), \
                 or the body was changed in another way",
            ),
            Self::GuessesSkipped { reason } => write!(
                f,
                "the signature matches nothing that was tried; {reason}"
            ),
        }
    }
}

/// The unit a timestamp appears to be in, judged by how close it lands to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestampUnit {
    /// Unix seconds, as every scheme expects.
    Seconds,
    /// Unix milliseconds (JavaScript's `Date.now()`).
    Milliseconds,
    /// Unix microseconds.
    Microseconds,
    /// Unix nanoseconds.
    Nanoseconds,
}

impl TimestampUnit {
    /// The unit `timestamp` is most likely in, given `now` in seconds: a
    /// sub-second unit when the value divided accordingly lands within a
    /// year of now, or else when it has that unit's number of digits for any
    /// date between 1973 and 5138 (13 digits for milliseconds, 16 for
    /// microseconds, 19 for nanoseconds, give or take one).
    pub fn guess(timestamp: i64, now: i64) -> Self {
        let near = |divisor: i128| {
            (i128::from(timestamp) / divisor - i128::from(now)).abs() <= 366 * 86_400
        };
        if near(1) {
            return Self::Seconds;
        }
        for unit in [Self::Milliseconds, Self::Microseconds, Self::Nanoseconds] {
            if near(unit.per_second()) {
                return unit;
            }
        }
        match timestamp.checked_ilog10().map(|log| log + 1) {
            Some(12..=14) => Self::Milliseconds,
            Some(15..=17) => Self::Microseconds,
            Some(18..=19) => Self::Nanoseconds,
            _ => Self::Seconds,
        }
    }

    fn per_second(self) -> i128 {
        match self {
            Self::Seconds => 1,
            Self::Milliseconds => 1_000,
            Self::Microseconds => 1_000_000,
            Self::Nanoseconds => 1_000_000_000,
        }
    }
}

impl fmt::Display for TimestampUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seconds => "seconds",
            Self::Milliseconds => "milliseconds",
            Self::Microseconds => "microseconds",
            Self::Nanoseconds => "nanoseconds",
        })
    }
}

/// A change made to a body after it was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyChange {
    /// A trailing newline was added (an editor, `echo`, a logging proxy).
    TrailingNewlineAdded,
    /// The trailing newline was removed (a framework that trims bodies).
    TrailingNewlineRemoved,
    /// LF line endings became CRLF (a Windows tool or a text-mode transfer).
    LfBecameCrlf,
    /// CRLF line endings became LF.
    CrlfBecameLf,
    /// Compact JSON was re-serialized in another layout (pretty-printed,
    /// spaced): the sender signed the compact form.
    JsonReformattedFromCompact,
    /// JSON pretty-printed with two spaces was re-serialized: the sender
    /// signed the pretty form.
    JsonReformattedFromPretty,
    /// JSON with `", "` and `": "` separators (Python's `json.dumps`
    /// default) was re-serialized: the sender signed that form.
    JsonReformattedFromSpaced,
    /// A UTF-8 byte order mark was added in front.
    BomAdded,
    /// The UTF-8 byte order mark in front was removed.
    BomRemoved,
}

impl BodyChange {
    /// Every change that is tried, in the order tried.
    pub const ALL: [Self; 9] = [
        Self::TrailingNewlineAdded,
        Self::TrailingNewlineRemoved,
        Self::LfBecameCrlf,
        Self::CrlfBecameLf,
        Self::JsonReformattedFromCompact,
        Self::JsonReformattedFromPretty,
        Self::JsonReformattedFromSpaced,
        Self::BomAdded,
        Self::BomRemoved,
    ];

    /// The body as it was before this change, if the change can have
    /// happened to `received` (`None` otherwise). Laying JSON out anew is
    /// given up (`None`) once the result would be more than eight times as
    /// large as `received` (and over 4 KiB).
    pub fn undo(self, received: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::TrailingNewlineAdded => received
                .strip_suffix(b"\r\n")
                .or_else(|| received.strip_suffix(b"\n"))
                .map(<[u8]>::to_vec),
            Self::TrailingNewlineRemoved => {
                (!received.ends_with(b"\n")).then(|| [received, b"\n"].concat())
            }
            Self::LfBecameCrlf => contains(received, b"\r\n").then(|| replace_crlf(received)),
            Self::CrlfBecameLf => (received.contains(&b'\n') && !received.contains(&b'\r'))
                .then(|| replace_lf(received)),
            Self::JsonReformattedFromCompact => reformat_json(received, JsonLayout::Compact),
            Self::JsonReformattedFromPretty => reformat_json(received, JsonLayout::Pretty),
            Self::JsonReformattedFromSpaced => reformat_json(received, JsonLayout::Spaced),
            Self::BomAdded => received.strip_prefix(UTF8_BOM).map(<[u8]>::to_vec),
            Self::BomRemoved => {
                (!received.starts_with(UTF8_BOM)).then(|| [UTF8_BOM, received].concat())
            }
        }
        .filter(|before| before != received)
    }
}

impl fmt::Display for BodyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TrailingNewlineAdded => "a trailing newline was added after signing",
            Self::TrailingNewlineRemoved => "the trailing newline was removed after signing",
            Self::LfBecameCrlf => "LF line endings were turned into CRLF after signing",
            Self::CrlfBecameLf => "CRLF line endings were turned into LF after signing",
            Self::JsonReformattedFromCompact => {
                "the JSON was signed compact and re-serialized in another layout after signing"
            }
            Self::JsonReformattedFromPretty => {
                "the JSON was signed pretty-printed (2 spaces) and re-serialized in another layout after signing"
            }
            Self::JsonReformattedFromSpaced => {
                "the JSON was signed with `, ` and `: ` separators (Python's json.dumps) and re-serialized after signing"
            }
            Self::BomAdded => "a UTF-8 byte order mark was added in front after signing",
            Self::BomRemoved => "the UTF-8 byte order mark in front was removed after signing",
        })
    }
}

/// A way of reading a secret other than the one in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretEncoding {
    /// The secret text base64-decoded (after any `whsec_` prefix), as
    /// Standard Webhooks and Svix do, where this receiver uses its raw text.
    Base64Decoded,
    /// The text after the `whsec_` prefix used as raw bytes.
    WhsecPrefixStripped,
    /// The `whsec_<base64>` text itself used as raw bytes (as Stripe does),
    /// where this receiver decodes it.
    WhsecTextAsBytes,
    /// The base64 text without a prefix used as raw bytes, where this
    /// receiver decodes it.
    Base64TextAsBytes,
    /// The secret text hex-decoded, where this receiver uses its raw text.
    HexDecoded,
    /// The hex text used as raw bytes, where this receiver decodes it.
    HexTextAsBytes,
}

impl SecretEncoding {
    /// Every reading that is tried, in the order tried.
    pub const ALL: [Self; 6] = [
        Self::Base64Decoded,
        Self::WhsecPrefixStripped,
        Self::WhsecTextAsBytes,
        Self::Base64TextAsBytes,
        Self::HexDecoded,
        Self::HexTextAsBytes,
    ];

    /// The key bytes this reading gives for `secret`'s bytes, if it applies
    /// and differs from them.
    fn reread(self, bytes: &[u8]) -> Option<Vec<u8>> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        match self {
            Self::Base64Decoded => {
                let text = text?;
                let encoded = text.strip_prefix(WHSEC_PREFIX).unwrap_or(text);
                b64.decode(encoded).ok()
            }
            Self::WhsecPrefixStripped => text?
                .strip_prefix(WHSEC_PREFIX)
                .map(|rest| rest.as_bytes().to_vec()),
            Self::WhsecTextAsBytes => {
                Some(format!("{WHSEC_PREFIX}{}", b64.encode(bytes)).into_bytes())
            }
            Self::Base64TextAsBytes => Some(b64.encode(bytes).into_bytes()),
            Self::HexDecoded => hex::decode(text?).ok(),
            Self::HexTextAsBytes => Some(hex::encode(bytes).into_bytes()),
        }
        .filter(|key| !key.is_empty() && key != bytes)
    }
}

impl fmt::Display for SecretEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Base64Decoded => {
                "base64-decoded (after the `whsec_` prefix) instead of used as raw bytes"
            }
            Self::WhsecPrefixStripped => "used as raw bytes with the `whsec_` prefix stripped",
            Self::WhsecTextAsBytes => {
                "used as the raw bytes of its `whsec_...` text instead of base64-decoded"
            }
            Self::Base64TextAsBytes => {
                "used as the raw bytes of its base64 text (no `whsec_` prefix) instead of decoded"
            }
            Self::HexDecoded => "hex-decoded instead of used as raw bytes",
            Self::HexTextAsBytes => "used as the raw bytes of its hex text instead of hex-decoded",
        })
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

/// The change, or pair of changes, whose undoing makes the signature match;
/// `verifies` charges `budget` for each candidate it checks.
///
/// # Errors
///
/// [`SkipReason::BudgetSpent`] when the budget ran out first.
fn find_body_changes(
    body: &[u8],
    budget: &mut Budget,
    verifies: impl Fn(&[u8], &mut Budget) -> Result<bool, SkipReason>,
) -> Result<Option<Vec<BodyChange>>, SkipReason> {
    for change in BodyChange::ALL {
        if let Some(before) = change.undo(body) {
            if verifies(&before, budget)? {
                return Ok(Some(vec![change]));
            }
        }
    }
    // Two changes in a row: the last one made is undone first.
    for last in BodyChange::ALL {
        let Some(middle) = last.undo(body) else {
            continue;
        };
        budget.charge(middle.len())?;
        for first in BodyChange::ALL {
            if first == last {
                continue;
            }
            if let Some(before) = first.undo(&middle) {
                if before != body && verifies(&before, budget)? {
                    return Ok(Some(vec![first, last]));
                }
            }
        }
    }
    Ok(None)
}

/// The reading of a secret that makes the signature match.
///
/// # Errors
///
/// [`SkipReason::BudgetSpent`] when the budget ran out first.
fn find_secret_encoding(
    scheme: &Scheme,
    request: &Request<'_>,
    budget: &mut Budget,
) -> Result<Option<SecretEncoding>, SkipReason> {
    for encoding in SecretEncoding::ALL {
        for secret in request.secrets.iter() {
            let Some(key) = encoding.reread(secret.expose_bytes()) else {
                continue;
            };
            let Ok(set) = SecretSet::single(Secret::new(key)) else {
                continue;
            };
            let checks = scheme.checks_per_verification(&set);
            budget.charge(request.body.len().saturating_mul(checks))?;
            if request.verifies(scheme, &set, request.body) {
                return Ok(Some(encoding));
            }
        }
    }
    Ok(None)
}

/// The headers `scheme` needs that `headers` lacks.
fn missing_headers(scheme: SchemeName, headers: &HeaderMap) -> Vec<&'static str> {
    scheme
        .required_headers(headers)
        .iter()
        .copied()
        .filter(|h| !headers.contains_key(*h))
        .collect()
}

/// Schemes other than `current` whose signature header the request carries,
/// the providers' first and the crate's own modes last.
///
/// Each is checked once with the request's secrets: at most six checks,
/// charged to `budget` (never refused, so that the finding is complete).
fn other_schemes(current: SchemeName, request: &Request<'_>, budget: &mut Budget) -> Vec<Finding> {
    let headers = request.headers;
    let (native, providers): (Vec<_>, Vec<_>) = SchemeName::ALL
        .into_iter()
        .partition(|name| name.is_native());
    let mut found = Vec::new();
    for name in providers.into_iter().chain(native) {
        if name == current || !name.fits(headers) {
            continue;
        }
        let Some(&(header, provider)) = name
            .identifying_headers()
            .iter()
            .find(|(header, _)| headers.contains_key(*header))
        else {
            continue;
        };
        let other = Scheme::for_name(name);
        let checks = other.checks_per_verification(request.secrets);
        budget.spent = budget
            .spent
            .saturating_add(request.body.len().saturating_mul(checks));
        let verifies = request.verifies(&other, request.secrets, request.body);
        if name.is_native() && current.is_native() && !verifies {
            continue;
        }
        found.push(Finding::LooksLikeOtherScheme {
            scheme: name,
            provider,
            header,
            verifies,
        });
    }
    found
}

/// "412 s in the past", "3 s in the future", "now".
fn describe_offset(timestamp: i64, now: i64) -> String {
    let age = i128::from(now) - i128::from(timestamp);
    match age {
        0 => "now".to_owned(),
        a if a > 0 => format!("{a} s in the past"),
        a => format!("{} s in the future", -a),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

fn replace_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 16);
    for &b in body {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonLayout {
    /// No whitespace at all (`JSON.stringify(x)`, `serde_json::to_vec`).
    Compact,
    /// Two-space indentation (`JSON.stringify(x, null, 2)`,
    /// `serde_json::to_vec_pretty`, `json.dumps(x, indent=2)`).
    Pretty,
    /// One line with `", "` and `": "` (`json.dumps(x)` in Python).
    Spaced,
}

/// Lays out valid JSON anew without touching its tokens: key order, number
/// spelling and string escapes stay exactly as they were. `None` when the
/// body is not JSON, or when the new layout would grow past
/// [`reformat_limit`] (pretty-printing deeply nested JSON can multiply its
/// size a hundredfold).
fn reformat_json(body: &[u8], layout: JsonLayout) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let limit = reformat_limit(body.len());
    let mut out = Vec::with_capacity((body.len() + body.len() / 2).min(limit));
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut depth = 0usize;
    let mut just_opened = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                if just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                out.push(b);
                depth += 1;
                just_opened = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if !just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                just_opened = false;
                out.push(b);
            }
            b',' => {
                out.push(b',');
                match layout {
                    JsonLayout::Pretty => newline(&mut out, depth),
                    JsonLayout::Spaced => out.push(b' '),
                    JsonLayout::Compact => {}
                }
            }
            b':' => {
                out.push(b':');
                if layout != JsonLayout::Compact {
                    out.push(b' ');
                }
            }
            _ => {
                if just_opened && layout == JsonLayout::Pretty {
                    newline(&mut out, depth);
                }
                just_opened = false;
                if b == b'"' {
                    let start = i;
                    i += 1;
                    while i < body.len() {
                        match body[i] {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    let end = (i + 1).min(body.len());
                    out.extend_from_slice(&body[start..end]);
                } else {
                    out.push(b);
                }
            }
        }
        if out.len() > limit {
            return None;
        }
        i += 1;
    }
    Some(out)
}

/// The most bytes JSON of `len` bytes may take once laid out anew.
fn reformat_limit(len: usize) -> usize {
    len.saturating_mul(MAX_REFORMAT_GROWTH)
        .max(MIN_REFORMAT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;
    use crate::scheme::NATIVE_SIGNATURE_HEADER;
    use crate::scheme::{NATIVE_ID_HEADER, NATIVE_TIMESTAMP_HEADER};

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn reformat_matches_serde_json_layouts() {
        let value = serde_json::json!({
            "a": [1, 2, {"b": null, "c": "x,y: \"z\""}],
            "d": {},
            "e": [],
            "f": [[]],
        });
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(reformat_json(&compact, JsonLayout::Pretty).unwrap(), pretty);
        assert_eq!(
            reformat_json(&pretty, JsonLayout::Compact).unwrap(),
            compact
        );
        assert_eq!(
            reformat_json(br#"{"a":[1,{"b":"c"}]}"#, JsonLayout::Spaced).unwrap(),
            br#"{"a": [1, {"b": "c"}]}"#
        );
        assert!(reformat_json(b"not json", JsonLayout::Compact).is_none());
    }

    /// JSON nested `depth` deep around a flat array of ones, `len` bytes.
    fn deep_json(depth: usize, len: usize) -> Vec<u8> {
        let mut body = vec![b'['; depth];
        while body.len() + depth + 2 < len {
            body.extend_from_slice(b"1,");
        }
        body.push(b'1');
        body.extend(std::iter::repeat_n(b']', depth));
        body
    }

    #[test]
    fn reformatting_stops_once_it_outgrows_the_body() {
        // Pretty-printed, every `1` would sit on its own line behind 252
        // spaces: over 100 times the body's size.
        let body = deep_json(126, 60 * 1024);
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok());
        assert!(reformat_json(&body, JsonLayout::Pretty).is_none());
        assert!(BodyChange::JsonReformattedFromPretty.undo(&body).is_none());
        // Compact and spaced layouts stay within the bound and are built.
        let spaced = reformat_json(&body, JsonLayout::Spaced).unwrap();
        assert!(spaced.len() <= reformat_limit(body.len()));
        // Small bodies are laid out in full, however deep.
        let small = deep_json(20, 100);
        let pretty = reformat_json(&small, JsonLayout::Pretty).unwrap();
        assert!(pretty.len() > 8 * small.len());
    }

    fn fake_signature() -> HeaderMap {
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

    /// Compact JSON with `rows` small objects, keys in sorted order (as
    /// `serde_json::Value` writes them back), and the same laid out pretty
    /// behind a byte order mark: a pair of changes, about 60 KiB.
    fn rows_signed_and_received(rows: usize) -> (Vec<u8>, Vec<u8>) {
        let rows: Vec<String> = (0..rows)
            .map(|i| format!(r#"{{"region":"r{i}","rows":{i}}}"#))
            .collect();
        let signed = format!(r#"{{"data":[{}],"event":"e"}}"#, rows.join(",")).into_bytes();
        let value: serde_json::Value = serde_json::from_slice(&signed).unwrap();
        let received = [UTF8_BOM, &serde_json::to_vec_pretty(&value).unwrap()].concat();
        assert!(
            (MAX_BODY_FOR_CHANGES / 2..=MAX_BODY_FOR_CHANGES).contains(&received.len()),
            "{}",
            received.len()
        );
        (signed, received)
    }

    #[test]
    fn a_change_to_a_body_near_the_size_limit_is_still_found() {
        let secrets = SecretSet::single("s").unwrap();
        let scheme = Scheme::native();
        let (signed, received) = rows_signed_and_received(700);
        let headers = scheme
            .sign(&secrets, &Message::new("e", NOW, &signed))
            .unwrap();
        let d = diagnose(&scheme, &secrets, &headers, &received, NOW);
        assert_eq!(
            d.findings(),
            &[Finding::BodyChanged {
                changes: vec![BodyChange::JsonReformattedFromCompact, BodyChange::BomAdded],
            }],
            "{d}"
        );
        assert!(d.guessed_bytes <= GUESS_BUDGET, "{}", d.guessed_bytes);
    }

    #[test]
    fn guesses_stop_when_the_budget_is_spent() {
        // 32 secrets, none the sender's: every candidate body is hashed
        // 32 times, and the search would go through every pair of the
        // many changes that apply to pretty JSON.
        let secrets = SecretSet::new((0..32).map(|i| format!("receiver-{i}"))).unwrap();
        let (_, received) = rows_signed_and_received(700);
        let received = &received[UTF8_BOM.len()..];
        let d = diagnose(
            &Scheme::native(),
            &secrets,
            &fake_signature(),
            received,
            NOW,
        );
        assert_eq!(
            d.findings(),
            &[Finding::GuessesSkipped {
                reason: SkipReason::BudgetSpent {
                    budget: GUESS_BUDGET
                },
            }],
            "{d}"
        );
        assert!(d.guessed_bytes <= GUESS_BUDGET, "{}", d.guessed_bytes);
        assert!(d.to_string().contains("not every change"), "{d}");
    }

    #[test]
    fn pairs_of_changes_are_found() {
        let secrets = SecretSet::single("s").unwrap();
        let scheme = Scheme::github();
        let signed = b"line one\nline two\n";
        let headers = scheme
            .sign(&secrets, &Message::new("d", NOW, signed))
            .unwrap();
        let received = [UTF8_BOM, &replace_lf(signed)].concat();
        let d = diagnose(&scheme, &secrets, &headers, &received, NOW);
        assert!(
            d.findings().iter().any(|f| matches!(
                f,
                Finding::BodyChanged { changes } if changes.len() == 2
                    && changes.contains(&BodyChange::BomAdded)
                    && changes.contains(&BodyChange::LfBecameCrlf)
            )),
            "{d}"
        );
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

    #[test]
    fn native_modes_point_at_each_other_only_when_that_verifies() {
        let secrets = SecretSet::single("s").unwrap();
        let body = br#"{"timestamp":1700000000}"#;
        let body_only = Scheme::native_body_only()
            .sign(&secrets, &Message::new("e", NOW, body))
            .unwrap();
        let d = diagnose(&Scheme::native(), &secrets, &body_only, body, NOW);
        assert!(
            d.findings().contains(&Finding::LooksLikeOtherScheme {
                scheme: SchemeName::NativeBodyOnly,
                provider: "body-only native",
                header: NATIVE_SIGNATURE_HEADER,
                verifies: true,
            }),
            "{d}"
        );
        let signed = Scheme::native()
            .sign(&secrets, &Message::new("e", NOW, body))
            .unwrap();
        let d = diagnose(&Scheme::native_body_only(), &secrets, &signed, body, NOW);
        assert!(
            d.findings().iter().any(|f| matches!(
                f,
                Finding::LooksLikeOtherScheme {
                    scheme: SchemeName::Native,
                    verifies: true,
                    ..
                }
            )),
            "{d}"
        );
        // A wrong secret: no advice to switch between the native modes.
        let other = SecretSet::single("other").unwrap();
        let d = diagnose(&Scheme::native_body_only(), &other, &signed, body, NOW);
        assert!(
            !d.findings()
                .iter()
                .any(|f| matches!(f, Finding::LooksLikeOtherScheme { .. })),
            "{d}"
        );
    }

    #[test]
    fn unit_guess() {
        assert_eq!(
            TimestampUnit::guess(NOW - 5000, NOW),
            TimestampUnit::Seconds
        );
        assert_eq!(
            TimestampUnit::guess(NOW * 1000, NOW),
            TimestampUnit::Milliseconds
        );
        assert_eq!(
            TimestampUnit::guess(NOW * 1_000_000, NOW),
            TimestampUnit::Microseconds
        );
        // Far from now, the number of digits decides.
        assert_eq!(
            TimestampUnit::guess(1_500_000_000_000, NOW),
            TimestampUnit::Milliseconds
        );
        assert_eq!(
            TimestampUnit::guess(1_000_000_000_000_000_000, NOW),
            TimestampUnit::Nanoseconds
        );
        assert_eq!(
            TimestampUnit::guess(i64::MAX, NOW),
            TimestampUnit::Nanoseconds
        );
        assert_eq!(
            TimestampUnit::guess(99_999_999_999, NOW),
            TimestampUnit::Seconds
        );
        assert_eq!(TimestampUnit::guess(i64::MIN, NOW), TimestampUnit::Seconds);
    }
}
