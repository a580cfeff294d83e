//! Standard Webhooks / Svix: `webhook-signature: v1,<base64> [v1a,<base64>]`
//! over `{id}.{timestamp}.{body}`.

use std::fmt;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

use super::{
    MAX_SIGNATURES_PER_HEADER, Message, SignError, SignatureMatch, Tag, TimestampSource,
    decode_b64_exact, find_match, required_header, required_text, signature_value, validate_id,
};
use crate::error::VerifyError;
use crate::replay::parse_unix_seconds;
use crate::secret::{KeyedSecret, SecretSet};

/// Standard Webhooks id header.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks timestamp header (unix seconds).
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks signature header.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";
/// Svix's name for the id header.
pub const SVIX_ID_HEADER: &str = "svix-id";
/// Svix's name for the timestamp header.
pub const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
/// Svix's name for the signature header.
pub const SVIX_SIGNATURE_HEADER: &str = "svix-signature";

/// The most `v1a` (ed25519) checks one request may cost: its `v1a`
/// signatures times the configured public keys.
///
/// Each check hashes the whole signed content, so without a bound one
/// request with [`MAX_SIGNATURES_PER_HEADER`](super::MAX_SIGNATURES_PER_HEADER)
/// signatures would cost that many hashes of the body per public key. Four
/// covers a rotation on both sides at once (two signatures, two keys). A
/// request over the bound gets no `v1a` check at all and is rejected as
/// [`InvalidSignature`](crate::VerifyErrorKind::InvalidSignature), with the
/// answer any unmatched request gets (the bound depends on the receiver's
/// keys, which the answer must not reveal); the
/// [receiver detail](crate::VerifyError::receiver_detail) in the log says
/// the bound was hit. A request with up to [`ALWAYS_CHECKED_V1A_SIGNATURES`]
/// signatures is always checked, whatever the number of keys: that is a
/// sender in the middle of a rotation, and the cost per signature is the
/// receiver's own choice of keys.
pub const MAX_ED25519_CHECKS: usize = 4;

/// How many `v1a` signatures a request may always carry, whatever the
/// number of public keys: two, for a sender signing with its old and its
/// new key during a rotation. More are checked only while they stay within
/// [`MAX_ED25519_CHECKS`].
pub const ALWAYS_CHECKED_V1A_SIGNATURES: usize = 2;

/// Asymmetric keys of a Standard Webhooks scheme (feature `ed25519`).
#[derive(Clone, Default)]
pub(super) struct StandardKeys {
    #[cfg(feature = "ed25519")]
    public: Vec<Ed25519PublicKey>,
    #[cfg(feature = "ed25519")]
    signing: Option<Ed25519SigningKey>,
}

impl StandardKeys {
    pub(super) fn can_sign(&self) -> bool {
        #[cfg(feature = "ed25519")]
        {
            self.signing.is_some()
        }
        #[cfg(not(feature = "ed25519"))]
        {
            false
        }
    }

    /// The public keys' bytes, in index order.
    pub(super) fn public_key_bytes(&self) -> Vec<[u8; 32]> {
        #[cfg(feature = "ed25519")]
        {
            self.public.iter().map(|k| k.key.to_bytes()).collect()
        }
        #[cfg(not(feature = "ed25519"))]
        {
            Vec::new()
        }
    }

    /// The public keys' labels, in index order.
    pub(super) fn public_key_labels(&self) -> Vec<Option<&str>> {
        #[cfg(feature = "ed25519")]
        {
            self.public.iter().map(|k| k.label.as_deref()).collect()
        }
        #[cfg(not(feature = "ed25519"))]
        {
            Vec::new()
        }
    }

    pub(super) fn public_key_count(&self) -> usize {
        #[cfg(feature = "ed25519")]
        {
            self.public.len()
        }
        #[cfg(not(feature = "ed25519"))]
        {
            0
        }
    }
}

impl fmt::Debug for StandardKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardKeys")
            .field("public_keys", &self.public_key_count())
            .field("signing_key", &self.can_sign())
            .finish()
    }
}

pub(super) fn sign(
    std_keys: &StandardKeys,
    keys: &[&KeyedSecret],
    msg: &Message<'_>,
) -> Result<HeaderMap, SignError> {
    validate_id(msg.id.as_bytes()).map_err(|reason| SignError::InvalidId { reason })?;
    let id = HeaderValue::from_str(msg.id).map_err(|_| SignError::InvalidId {
        reason: "the id cannot be carried in a header",
    })?;
    let ts = msg.timestamp.to_string();
    let b64 = &base64::engine::general_purpose::STANDARD;
    #[cfg_attr(not(feature = "ed25519"), allow(unused_mut))]
    let mut signatures: Vec<String> = keys
        .iter()
        .map(|k| {
            let tag =
                k.standard_state()
                    .tag(&[msg.id.as_bytes(), b".", ts.as_bytes(), b".", msg.body]);
            format!("v1,{}", b64.encode(tag))
        })
        .collect();
    #[cfg(feature = "ed25519")]
    if let Some(signing) = &std_keys.signing {
        use ed25519_dalek::Signer as _;
        let content = signed_content(msg.id.as_bytes(), ts.as_bytes(), msg.body);
        let sig = signing.0.sign(&content);
        signatures.push(format!("v1a,{}", b64.encode(sig.to_bytes())));
    }
    #[cfg(not(feature = "ed25519"))]
    let _ = std_keys;
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(STANDARD_ID_HEADER, id);
    headers.insert(STANDARD_TIMESTAMP_HEADER, HeaderValue::from(msg.timestamp));
    headers.insert(
        STANDARD_SIGNATURE_HEADER,
        signature_value(signatures.join(" ")),
    );
    Ok(headers)
}

#[cfg(feature = "ed25519")]
fn signed_content(id: &[u8], ts: &[u8], body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    content.extend_from_slice(id);
    content.push(b'.');
    content.extend_from_slice(ts);
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The index of the public key that verifies one of `candidates` over the
/// content `content` builds (built once, only when a check runs).
///
/// # Errors
///
/// The number of checks, when they would exceed [`MAX_ED25519_CHECKS`];
/// none was run.
#[cfg(feature = "ed25519")]
fn find_ed25519_match(
    std_keys: &StandardKeys,
    candidates: &[[u8; 64]],
    content: impl FnOnce() -> Vec<u8>,
) -> Result<Option<usize>, usize> {
    if candidates.is_empty() || std_keys.public.is_empty() {
        return Ok(None);
    }
    let checks = candidates.len() * std_keys.public.len();
    if candidates.len() > ALWAYS_CHECKED_V1A_SIGNATURES && checks > MAX_ED25519_CHECKS {
        return Err(checks);
    }
    let content = content();
    for (index, key) in std_keys.public.iter().enumerate() {
        for candidate in candidates {
            let sig = ed25519_dalek::Signature::from_bytes(candidate);
            if key.key.verify_strict(&content, &sig).is_ok() {
                return Ok(Some(index));
            }
        }
    }
    Ok(None)
}

/// Picks the header family: `webhook-*` when `webhook-signature` is present,
/// else `svix-*` when `svix-signature` is.
fn header_family(headers: &HeaderMap) -> (&'static str, &'static str, &'static str) {
    if !headers.contains_key(STANDARD_SIGNATURE_HEADER)
        && headers.contains_key(SVIX_SIGNATURE_HEADER)
    {
        (SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER)
    } else {
        (
            STANDARD_ID_HEADER,
            STANDARD_TIMESTAMP_HEADER,
            STANDARD_SIGNATURE_HEADER,
        )
    }
}

/// The `v1` (HMAC) and `v1a` (Ed25519) signatures of the signature header
/// `value`, at least one and at most [`MAX_SIGNATURES_PER_HEADER`] in all;
/// pieces of other versions are skipped.
fn parse_signatures(
    sig_name: &'static str,
    value: &str,
) -> Result<(Vec<Tag>, Vec<[u8; 64]>), VerifyError> {
    let mut hmac_candidates: Vec<Tag> = Vec::with_capacity(1);
    let mut ed_candidates: Vec<[u8; 64]> = Vec::new();
    // Signatures are separated by spaces; runs of spaces are tolerated as the
    // `standardwebhooks` and `svix` libraries skip the empty pieces. Tabs and
    // other whitespace are not separators there, and are not here either.
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        let Some((version, b64)) = token.split_once(',') else {
            return Err(VerifyError::malformed(
                sig_name,
                "each signature must be `v1,<base64>` or `v1a,<base64>`, separated by spaces",
            ));
        };
        if hmac_candidates.len() + ed_candidates.len() == MAX_SIGNATURES_PER_HEADER {
            return Err(VerifyError::malformed(
                sig_name,
                format!("more than {MAX_SIGNATURES_PER_HEADER} signatures"),
            ));
        }
        match version {
            "v1" => hmac_candidates.push(decode_b64_exact::<32>(sig_name, "`v1`", b64)?),
            "v1a" => ed_candidates.push(decode_b64_exact::<64>(sig_name, "`v1a`", b64)?),
            // Unknown versions are skipped, as the specification asks.
            _ => {}
        }
    }
    if hmac_candidates.is_empty() && ed_candidates.is_empty() {
        return Err(VerifyError::malformed(
            sig_name,
            "no `v1,` or `v1a,` signature in the header",
        ));
    }
    Ok((hmac_candidates, ed_candidates))
}

pub(super) fn verify(
    std_keys: &StandardKeys,
    secrets: &SecretSet,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<SignatureMatch, VerifyError> {
    let (id_name, ts_name, sig_name) = header_family(headers);
    let id = required_header(headers, id_name)?;
    validate_id(id).map_err(|why| VerifyError::malformed(id_name, why))?;
    let ts_raw = required_header(headers, ts_name)?;
    let timestamp = parse_unix_seconds(ts_name, ts_raw)?;
    let ts_raw = ts_raw.trim_ascii();

    let value = required_text(headers, sig_name)?;
    let (hmac_candidates, ed_candidates) = parse_signatures(sig_name, value)?;

    let signed_id = Some(String::from_utf8_lossy(id).into_owned());
    let hmac_result = if hmac_candidates.is_empty() {
        None
    } else {
        Some(find_match(secrets, now, &hmac_candidates, |k| {
            k.standard_state().tag(&[id, b".", ts_raw, b".", body])
        }))
    };
    if let Some(Ok(index)) = hmac_result {
        return Ok(SignatureMatch::hmac(
            signed_id,
            Some(timestamp),
            TimestampSource::SignedHeader,
            index,
        ));
    }

    // The number of `v1a` checks skipped as over the bound, if they were.
    #[cfg(feature = "ed25519")]
    let skipped = match find_ed25519_match(std_keys, &ed_candidates, || {
        signed_content(id, ts_raw, body)
    }) {
        Ok(Some(index)) => {
            return Ok(SignatureMatch::new(
                super::SignatureAlgorithm::Ed25519,
                signed_id,
                Some(timestamp),
                TimestampSource::SignedHeader,
                index,
            ));
        }
        Ok(None) => None,
        Err(checks) => Some(checks),
    };
    #[cfg(not(feature = "ed25519"))]
    let skipped = None;

    if let Some(Err(err)) = hmac_result {
        if ed_candidates.is_empty() {
            return Err(err);
        }
    }
    Err(no_match(
        (hmac_candidates.len(), ed_candidates.len()),
        secrets.active_at(now).count(),
        std_keys.public_key_count(),
        skipped,
    ))
}

/// Neither a `v1` nor a `v1a` signature matched. The answer depends only on
/// the request; the receiver detail says what was configured.
/// `skipped` is the number of `v1a` checks not run because they were over
/// [`MAX_ED25519_CHECKS`]: it depends on the keys, so only the log says it.
fn no_match(
    (hmac, ed): (usize, usize),
    active: usize,
    public: usize,
    skipped: Option<usize>,
) -> VerifyError {
    let mut receiver = format!("{active} active secret(s), {public} ed25519 public key(s)");
    if let Some(checks) = skipped {
        receiver.push_str(&format!(
            "; no `v1a` signature was checked: {ed} of them against {public} public keys would \
             take {checks} ed25519 checks, more than the {MAX_ED25519_CHECKS} allowed per request \
             (a sender signs with at most two keys at a time)"
        ));
    }
    if ed > 0 && public == 0 {
        receiver.push_str(
            "; the request carries `v1a` (ed25519) signatures: add a public key with \
             `Scheme::standard().with_public_keys(..)` (feature `ed25519`) to accept them",
        );
    }
    VerifyError::new(
        crate::error::VerifyErrorKind::InvalidSignature,
        format!(
            "none of the {hmac} `v1` and {ed} `v1a` signature(s) in the request matches an active secret or public key; {}",
            crate::error::CHECK_SECRET_AND_BODY
        ),
    )
    .with_receiver_detail(receiver)
}

#[cfg(feature = "ed25519")]
mod ed25519_keys {
    use std::fmt;
    use std::sync::Arc;

    use base64::Engine as _;

    use crate::error::ConfigError;
    use crate::scheme::{Kind, Scheme};

    /// Prefix of Standard Webhooks ed25519 public keys.
    pub const WHPK_PREFIX: &str = "whpk_";
    /// Prefix of Standard Webhooks ed25519 secret keys.
    pub const WHSK_PREFIX: &str = "whsk_";

    fn decode_32(text: &str, prefix: &str, what: &str) -> Result<[u8; 32], ConfigError> {
        let b64 = text.trim();
        let b64 = b64.strip_prefix(prefix).unwrap_or(b64);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| ConfigError::InvalidSecret {
                reason: format!(
                    "a `{prefix}` {what} must be base64 after the prefix: {}",
                    crate::secret::describe_base64_error(&e)
                ),
            })?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| ConfigError::InvalidSecret {
            reason: format!(
                "a `{prefix}` {what} must be 32 bytes, found {}",
                bytes.len()
            ),
        })
    }

    /// An ed25519 public key that verifies Standard Webhooks `v1a` signatures.
    ///
    /// Two keys are equal when their key bytes are, whatever their labels.
    #[derive(Clone)]
    pub struct Ed25519PublicKey {
        pub(super) key: ed25519_dalek::VerifyingKey,
        pub(super) label: Option<Arc<str>>,
    }

    impl PartialEq for Ed25519PublicKey {
        fn eq(&self, other: &Self) -> bool {
            self.key == other.key
        }
    }

    impl Eq for Ed25519PublicKey {}

    impl Ed25519PublicKey {
        /// Decodes `whpk_<base64 of the 32-byte key>` (the prefix is optional).
        ///
        /// # Errors
        ///
        /// [`ConfigError::InvalidSecret`] for bad base64, a wrong length or a
        /// point that is not a valid public key.
        pub fn from_whpk(text: &str) -> Result<Self, ConfigError> {
            Self::from_bytes(&decode_32(text, WHPK_PREFIX, "public key")?)
        }

        /// A public key from its 32 bytes.
        ///
        /// # Errors
        ///
        /// [`ConfigError::InvalidSecret`] when the bytes are not a valid key.
        pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ConfigError> {
            ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map(|key| Self { key, label: None })
                .map_err(|_| ConfigError::InvalidSecret {
                    reason: "the bytes are not a valid ed25519 public key".into(),
                })
        }

        /// The key as `whpk_<base64>`.
        pub fn to_whpk(&self) -> String {
            format!(
                "{WHPK_PREFIX}{}",
                base64::engine::general_purpose::STANDARD.encode(self.key.as_bytes())
            )
        }

        /// Names this key in metrics and logs, as
        /// [`Secret::labelled`](crate::Secret::labelled) does for a secret;
        /// without one, a key is named by its position among the scheme's
        /// public keys.
        ///
        /// # Errors
        ///
        /// [`ConfigError::InvalidSetting`] for a label that is empty, longer
        /// than [`MAX_KEY_LABEL_LEN`](crate::secret::MAX_KEY_LABEL_LEN)
        /// bytes, or has a character other than an ASCII letter, digit, `-`,
        /// `_` or `.`.
        pub fn labelled(mut self, label: &str) -> Result<Self, ConfigError> {
            self.label = Some(crate::secret::check_key_label(label)?);
            Ok(self)
        }

        /// The label set with [`labelled`](Self::labelled).
        pub fn label(&self) -> Option<&str> {
            self.label.as_deref()
        }
    }

    impl fmt::Debug for Ed25519PublicKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple("Ed25519PublicKey")
                .field(&self.to_whpk())
                .finish()
        }
    }

    /// An ed25519 secret key that signs Standard Webhooks `v1a` signatures.
    /// `Debug` never shows it.
    #[derive(Clone)]
    pub struct Ed25519SigningKey(pub(super) ed25519_dalek::SigningKey);

    impl Ed25519SigningKey {
        /// Decodes `whsk_<base64 of the 32-byte seed>` (the prefix is optional).
        ///
        /// # Errors
        ///
        /// [`ConfigError::InvalidSecret`] for bad base64 or a wrong length.
        pub fn from_whsk(text: &str) -> Result<Self, ConfigError> {
            Ok(Self::from_seed(&decode_32(
                text,
                WHSK_PREFIX,
                "secret key",
            )?))
        }

        /// A signing key from its 32-byte seed.
        pub fn from_seed(seed: &[u8; 32]) -> Self {
            Self(ed25519_dalek::SigningKey::from_bytes(seed))
        }

        /// The matching public key, to hand to receivers.
        pub fn public_key(&self) -> Ed25519PublicKey {
            Ed25519PublicKey {
                key: self.0.verifying_key(),
                label: None,
            }
        }

        /// The key as `whsk_<base64>`. Handle with care.
        pub fn expose_whsk(&self) -> String {
            format!(
                "{WHSK_PREFIX}{}",
                base64::engine::general_purpose::STANDARD.encode(self.0.to_bytes())
            )
        }
    }

    impl fmt::Debug for Ed25519SigningKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Ed25519SigningKey(..redacted..)")
        }
    }

    impl Scheme {
        /// Standard Webhooks: also accept `v1a` (ed25519) signatures made by
        /// the secret key of any of these public keys. Several keys allow a
        /// rotation; [`Verified::secret_index`](crate::Verified::secret_index)
        /// is then the index among these keys. Has no effect on other schemes.
        #[must_use]
        pub fn with_public_keys(
            mut self,
            keys: impl IntoIterator<Item = Ed25519PublicKey>,
        ) -> Self {
            if let Kind::Standard(std_keys) = &mut self.kind {
                std_keys.public.extend(keys);
            }
            self
        }

        /// Standard Webhooks: also sign with this ed25519 key (a `v1a`
        /// signature beside any `v1` ones). Has no effect on other schemes.
        #[must_use]
        pub fn with_signing_key(mut self, key: Ed25519SigningKey) -> Self {
            if let Kind::Standard(std_keys) = &mut self.kind {
                std_keys.signing = Some(key);
            }
            self
        }
    }
}

#[cfg(feature = "ed25519")]
pub use ed25519_keys::{Ed25519PublicKey, Ed25519SigningKey, WHPK_PREFIX, WHSK_PREFIX};
