//! Shared secrets and the set of secrets a receiver accepts.
//!
//! A [`Secret`] is key bytes. Where a platform hands out a string, the wire
//! format decides which bytes it means, so a secret made from text remembers
//! that it is text:
//!
//! - [`Secret::from`] a `&str` or `String` is *text*. Every scheme keys its
//!   HMAC with the text's own bytes (what Node's `createHmac('sha256',
//!   secret)`, GitHub, Stripe — `whsec_...` included —, Slack and Shopify
//!   do), except [`Scheme::standard`](crate::Scheme::standard), which reads a
//!   text starting with `whsec_` the way the Standard Webhooks and Svix
//!   libraries do: the base64 after the prefix is the key. So
//!   `SecretSet::single("whsec_...")` under the standard scheme verifies what
//!   Svix signs, and the same text given to a sender destination signs what
//!   the official libraries verify.
//! - [`Secret::new`] and [`Secret::from`] bytes (`&[u8]`, `Vec<u8>`) are the
//!   key as given, never reinterpreted;
//! - [`Secret::from_whsec`] decodes `whsec_<base64>` into those bytes
//!   explicitly.
//!
//! Secrets under [`MIN_SECRET_LEN`] (24) bytes are refused for sender
//! destinations; a receiver takes a provider's secret as it is and logs a
//! warning.
//!
//! A [`SecretSet`] holds every secret that is currently active. During a
//! rotation it holds the old and the new one; a request signed with either
//! passes, and [`Verified::secret_index`](crate::Verified::secret_index) says
//! which one matched, so operators can see when the old one is no longer used.
//! [`VerifyLayer`](crate::VerifyLayer) counts the matches of each secret by
//! its [label](Secret::labelled) (or position) and keeps the time each was
//! last used (see [`verify::metric_names`](crate::verify::metric_names)).
//! A secret can carry an expiry time after which it stops matching.
//!
//! Neither type ever prints its bytes: `Debug` shows `Secret(..redacted..)`.
//!
//! ```
//! use webhook_guard::{Secret, SecretSet};
//!
//! let secrets = SecretSet::new([
//!     Secret::from("new-secret"),
//!     Secret::from("old-secret").expires_at(1_767_225_600), // 2026-01-01T00:00:00Z
//! ])?;
//! assert_eq!(secrets.len(), 2);
//! assert_eq!(format!("{:?}", Secret::from("hunter2")), "Secret(..redacted..)");
//! # Ok::<(), webhook_guard::ConfigError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use hmac::digest::FixedOutputReset;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::ConfigError;
use crate::scheme::SchemeName;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Prefix of Standard Webhooks / Svix secrets: `whsec_` followed by base64.
pub const WHSEC_PREFIX: &str = "whsec_";

/// The fewest key bytes a sender destination's secret may have (192 bits).
///
/// [`Sender::add_destination`](crate::sender::Sender::add_destination) and
/// `rotate_secret` refuse shorter ones; a receiver's [`VerifyLayer`](crate::VerifyLayer)
/// accepts a provider's shorter secret as it is and logs a warning.
pub const MIN_SECRET_LEN: usize = 24;

/// Where a secret's bytes came from, which decides whether a scheme may
/// read them in its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Key bytes given as such: used as they are by every scheme.
    Bytes,
    /// Text, as a provider prints it: read the way the scheme's libraries do.
    Text,
}

/// A shared secret: key bytes, wiped from memory on drop, never printed.
///
/// A secret made from text (`&str`, `String`) remembers it, so that the
/// scheme can read it the way its providers mean it (see the
/// [module docs](self)); one made from bytes is never reinterpreted.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    origin: Origin,
    not_after: Option<i64>,
    label: Option<Arc<str>>,
}

/// The longest [`Secret::labelled`] label, in bytes.
pub const MAX_KEY_LABEL_LEN: usize = 32;

/// Checks a key label: 1 to [`MAX_KEY_LABEL_LEN`] ASCII letters, digits,
/// `-`, `_` or `.`, so that it is safe as a metric label value and in logs.
/// The error says where the label is wrong without quoting it (a secret
/// passed as a label by mistake is not printed).
pub(crate) fn check_key_label(label: &str) -> Result<Arc<str>, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidSetting {
        setting: "key label",
        reason,
    };
    if label.is_empty() || label.len() > MAX_KEY_LABEL_LEN {
        return Err(invalid(format!(
            "a key label has 1 to {MAX_KEY_LABEL_LEN} bytes, this one has {}",
            label.len()
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if let Some(position) = label.chars().position(|c| !allowed(c)) {
        return Err(invalid(format!(
            "character {} of the key label is not an ASCII letter, digit, `-`, `_` or `.`",
            position + 1
        )));
    }
    Ok(label.into())
}

impl Secret {
    /// A secret made of exactly these bytes; no scheme reinterprets them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.into()),
            origin: Origin::Bytes,
            not_after: None,
            label: None,
        }
    }

    /// A secret given as text (what `From<&str>` and `From<String>` build).
    fn text(text: impl Into<Vec<u8>>) -> Self {
        Self {
            origin: Origin::Text,
            ..Self::new(text)
        }
    }

    /// Whether the secret was given as text, so that a scheme may read it
    /// its own way (see the [module docs](self)).
    pub fn is_text(&self) -> bool {
        self.origin == Origin::Text
    }

    /// Whether the secret is text starting with `whsec_`.
    pub(crate) fn is_whsec_text(&self) -> bool {
        self.is_text() && self.bytes.starts_with(WHSEC_PREFIX.as_bytes())
    }

    /// A text secret starting with `whsec_`, decoded into its key bytes
    /// (keeping the expiry); `None` for any other secret.
    pub(crate) fn decode_whsec_text(&self) -> Option<Result<Self, ConfigError>> {
        if !self.is_whsec_text() {
            return None;
        }
        // The prefix is ASCII, so the rest is text whenever the whole is.
        let text = std::str::from_utf8(&self.bytes).ok()?;
        Some(Self::from_whsec(text).map(|s| Self {
            not_after: self.not_after,
            label: self.label.clone(),
            ..s
        }))
    }

    /// Decodes a Standard Webhooks / Svix secret of the form `whsec_<base64>`.
    ///
    /// The prefix is optional: plain base64 is accepted too, as the
    /// Standard Webhooks libraries do.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] when the part after the prefix is not
    /// standard base64 or decodes to nothing.
    pub fn from_whsec(encoded: &str) -> Result<Self, ConfigError> {
        let b64 = encoded.strip_prefix(WHSEC_PREFIX).unwrap_or(encoded);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| ConfigError::InvalidSecret {
                reason: format!(
                    "a `whsec_` secret must be base64 after the prefix: {}",
                    describe_base64_error(&e)
                ),
            })?;
        if bytes.is_empty() {
            return Err(ConfigError::InvalidSecret {
                reason: "the `whsec_` secret decodes to zero bytes".into(),
            });
        }
        Ok(Self::new(bytes))
    }

    /// Makes this secret stop matching at `unix_seconds` (exclusive): a request
    /// verified at or after that time no longer passes with it.
    ///
    /// Use it for the old secret during a rotation.
    #[must_use]
    pub fn expires_at(mut self, unix_seconds: i64) -> Self {
        self.not_after = Some(unix_seconds);
        self
    }

    /// The expiry time set with [`Secret::expires_at`], in unix seconds.
    pub fn expiry(&self) -> Option<i64> {
        self.not_after
    }

    /// Names this secret in metrics and logs, for example `"old"` and
    /// `"new"` during a rotation. The receiver's metrics say which secret
    /// matched by this label (by the secret's position in its
    /// [`SecretSet`], `"0"`, `"1"`, ..., when it has none), so an operator
    /// sees when the old one is no longer used (see
    /// [`verify::metric_names`](crate::verify::metric_names)).
    ///
    /// ```
    /// use webhook_guard::{Secret, SecretSet};
    ///
    /// let secrets = SecretSet::new([
    ///     Secret::from("new-secret").labelled("2026-06")?,
    ///     Secret::from("old-secret").labelled("2025-12")?,
    /// ])?;
    /// assert_eq!(secrets.iter().next().and_then(Secret::label), Some("2026-06"));
    /// assert!(Secret::from("s").labelled("has space").is_err());
    /// # Ok::<(), webhook_guard::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for a label that is empty, longer
    /// than [`MAX_KEY_LABEL_LEN`] bytes, or has a character other than an
    /// ASCII letter, digit, `-`, `_` or `.`.
    pub fn labelled(mut self, label: &str) -> Result<Self, ConfigError> {
        self.label = Some(check_key_label(label)?);
        Ok(self)
    }

    /// The label set with [`Secret::labelled`].
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The bytes as given: for a secret made from text, the text's bytes,
    /// before any scheme reads them its own way ([`Scheme::read_secret`](crate::Scheme::read_secret)
    /// gives the key a scheme signs with).
    ///
    /// Handle with care: this is the only way to read the secret.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the secret has no bytes (an empty secret is refused by
    /// [`SecretSet::new`]).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn is_active_at(&self, now: i64) -> bool {
        self.not_after.is_none_or(|t| now < t)
    }
}

/// Says where base64 decoding failed without quoting the offending byte,
/// which would be a byte of the secret.
pub(crate) fn describe_base64_error(e: &base64::DecodeError) -> String {
    use base64::DecodeError as E;
    match e {
        E::InvalidByte(offset, _) => format!("character {} is not base64", offset + 1),
        E::InvalidLength(len) => format!("{len} base64 characters cannot encode whole bytes"),
        E::InvalidLastSymbol(offset, _) => {
            format!(
                "the last character (number {}) is not valid there",
                offset + 1
            )
        }
        E::InvalidPadding => "the `=` padding is wrong".to_owned(),
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..redacted..)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::text(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::text(s.into_bytes())
    }
}

impl From<&[u8]> for Secret {
    fn from(b: &[u8]) -> Self {
        Self::new(b.to_vec())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(b: Vec<u8>) -> Self {
        Self::new(b)
    }
}

/// An HMAC-SHA256 state with nothing absorbed: what a keyed state is
/// overwritten with when it is dropped.
static BLANK_STATE: LazyLock<HmacSha256> =
    LazyLock::new(|| <HmacSha256 as Mac>::new(&Default::default()));

/// A keyed HMAC-SHA256 state, overwritten when dropped.
///
/// The inner and outer hash states after absorbing the key are as good as
/// the key for forging signatures. The `hmac` crate (0.12) does not wipe
/// them, so this wrapper overwrites its own copy with a blank state on drop;
/// `black_box` keeps the compiler from dropping that store as dead. What the
/// `hmac` and `sha2` crates copy onto the stack while computing one tag is
/// beyond reach.
pub(crate) struct KeyState(HmacSha256);

impl KeyState {
    fn new(key: &[u8]) -> Option<Self> {
        HmacSha256::new_from_slice(key).ok().map(Self)
    }

    /// HMAC-SHA256 over the concatenation of `parts`, from a copy of this
    /// state that is wiped after use.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Self(self.0.clone());
        for part in parts {
            mac.0.update(part);
        }
        mac.0.finalize_fixed_reset().into()
    }
}

impl Clone for KeyState {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl KeyState {
    /// Overwrites the state in place with one keyed with nothing.
    fn wipe(&mut self) {
        self.0.clone_from(&BLANK_STATE);
        std::hint::black_box(&self.0);
    }
}

impl Drop for KeyState {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// One secret with its precomputed keyed HMAC-SHA256 states.
#[derive(Clone)]
pub(crate) struct KeyedSecret {
    pub(crate) secret: Secret,
    /// Keyed with the secret's bytes as they are.
    bytes: KeyState,
    /// For a text secret `whsec_<base64>`: keyed with the decoded bytes,
    /// which is how the standard scheme reads it.
    whsec: Option<KeyState>,
}

impl KeyedSecret {
    fn new(index: usize, secret: Secret) -> Result<Self, ConfigError> {
        let state = |bytes: &[u8]| {
            KeyState::new(bytes).ok_or_else(|| ConfigError::InvalidSecret {
                reason: format!("secret #{index} cannot key HMAC-SHA256"),
            })
        };
        let bytes = state(secret.expose_bytes())?;
        let whsec = match secret.decode_whsec_text() {
            Some(Ok(decoded)) => Some(state(decoded.expose_bytes())?),
            _ => None,
        };
        Ok(Self {
            secret,
            bytes,
            whsec,
        })
    }

    /// The state keyed with the secret's bytes as they are.
    pub(crate) fn bytes_state(&self) -> &KeyState {
        &self.bytes
    }

    /// The state the standard scheme uses: a text `whsec_` secret's decoded
    /// key, otherwise the bytes as they are.
    pub(crate) fn standard_state(&self) -> &KeyState {
        self.whsec.as_ref().unwrap_or(&self.bytes)
    }

    /// The state `scheme` signs and verifies with: the standard scheme's
    /// ([`standard_state`](Self::standard_state)) or the bytes as they are.
    pub(crate) fn state_for(&self, scheme: SchemeName) -> &KeyState {
        match scheme {
            SchemeName::Standard => self.standard_state(),
            _ => self.bytes_state(),
        }
    }
}

/// The secrets a receiver currently accepts, in order of preference.
///
/// Any match of any active secret passes. The keyed HMAC state of each secret
/// is computed once here, copied per request and overwritten when dropped.
#[derive(Clone)]
pub struct SecretSet {
    keys: Vec<KeyedSecret>,
}

impl SecretSet {
    /// Builds a set from one or more secrets.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecrets`] for an empty list,
    /// [`ConfigError::InvalidSecret`] for a secret with no bytes and
    /// [`ConfigError::InvalidSetting`] when two secrets would carry the same
    /// [label](Secret::labelled) in metrics (a secret without one is named
    /// by its position).
    pub fn new<I, T>(secrets: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<Secret>,
    {
        let mut keys = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret: Secret = secret.into();
            if secret.is_empty() {
                return Err(ConfigError::InvalidSecret {
                    reason: format!("secret #{index} is empty"),
                });
            }
            keys.push(KeyedSecret::new(index, secret)?);
        }
        if keys.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        let set = Self { keys };
        check_unique_labels(set.iter().map(Secret::label))?;
        Ok(set)
    }

    /// A set holding one secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] for a secret with no bytes.
    pub fn single(secret: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::new([secret.into()])
    }

    /// How many secrets the set holds (expired ones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a set holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The secrets, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.keys.iter().map(|k| &k.secret)
    }

    /// The first secret that is active at `now` (unix seconds): the one a
    /// sender signs with.
    pub fn primary_at(&self, now: i64) -> Option<&Secret> {
        self.iter().find(|s| s.is_active_at(now))
    }

    /// The name of the secret at `index` in metrics: its
    /// [label](Secret::labelled), or its position.
    pub(crate) fn metric_label(&self, index: usize) -> Cow<'_, str> {
        let label = self.keys.get(index).and_then(|k| k.secret.label());
        key_metric_label(label, index)
    }

    /// Keyed states of every secret, expired ones included, in index order.
    pub(crate) fn keyed(&self) -> impl Iterator<Item = &KeyedSecret> {
        self.keys.iter()
    }

    /// Keyed states of the secrets active at `now`, with their index in the set.
    pub(crate) fn active_at(&self, now: i64) -> impl Iterator<Item = (usize, &KeyedSecret)> {
        self.keys
            .iter()
            .enumerate()
            .filter(move |(_, k)| k.secret.is_active_at(now))
    }
}

/// The name of the key at `index` in metrics: its label, or its position.
pub(crate) fn key_metric_label(label: Option<&str>, index: usize) -> Cow<'_, str> {
    match label {
        Some(label) => Cow::Borrowed(label),
        None => Cow::Owned(index.to_string()),
    }
}

/// Refuses keys whose names in metrics (label or position) collide.
pub(crate) fn check_unique_labels<'a>(
    labels: impl Iterator<Item = Option<&'a str>>,
) -> Result<(), ConfigError> {
    let names: Vec<Cow<'a, str>> = labels
        .enumerate()
        .map(|(index, label)| key_metric_label(label, index))
        .collect();
    for (index, name) in names.iter().enumerate() {
        if let Some(other) = names[..index].iter().position(|n| n == name) {
            return Err(ConfigError::InvalidSetting {
                setting: "key label",
                reason: format!(
                    "keys #{other} and #{index} would have the same name in metrics; give each \
                     key a label of its own (a key without one is named by its position)"
                ),
            });
        }
    }
    Ok(())
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.secret))
            .finish()
    }
}

impl TryFrom<Secret> for SecretSet {
    type Error = ConfigError;
    fn try_from(secret: Secret) -> Result<Self, ConfigError> {
        Self::single(secret)
    }
}

impl TryFrom<&str> for SecretSet {
    type Error = ConfigError;
    fn try_from(secret: &str) -> Result<Self, ConfigError> {
        Self::single(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(..redacted..)");
        let set = SecretSet::new(["hunter2", "swordfish"]).unwrap();
        let shown = format!("{set:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("swordfish"));
    }

    #[test]
    fn whsec_decodes_base64() {
        let s = Secret::from_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.expose_bytes().len(), 24);
        assert!(Secret::from_whsec("whsec_!!!").is_err());
        // The error says where, never what: `Q` is byte 81 of the secret.
        let err = Secret::from_whsec("whsec_AAAAQ!").unwrap_err().to_string();
        assert!(err.contains("character 6 is not base64"), "{err}");
        assert!(!err.contains("33") && !err.contains('!'), "{err}");
        assert!(Secret::from_whsec("whsec_").is_err());
    }

    #[test]
    fn empty_sets_and_secrets_are_refused() {
        assert!(matches!(
            SecretSet::new(Vec::<Secret>::new()),
            Err(ConfigError::NoSecrets)
        ));
        assert!(matches!(
            SecretSet::new([""]),
            Err(ConfigError::InvalidSecret { .. })
        ));
    }

    fn reference_tag(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn whsec_text_keys_the_decoded_bytes_for_the_standard_scheme_only() {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = Secret::from_whsec(text).unwrap();
        let set = SecretSet::single(text).unwrap();
        let keyed = &set.keys[0];
        let standard = reference_tag(key.expose_bytes(), b"a.b");
        assert_eq!(keyed.standard_state().tag(&[b"a", b".b"]), standard);
        // The per-request copy leaves the stored state as it was.
        assert_eq!(keyed.standard_state().tag(&[b"a.b"]), standard);
        assert_eq!(
            keyed.bytes_state().tag(&[b"a.b"]),
            reference_tag(text.as_bytes(), b"a.b")
        );
        // Bytes are never decoded, and text without the prefix is its bytes.
        for other in [
            Secret::new(text.as_bytes()),
            Secret::from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ] {
            let set = SecretSet::single(other.clone()).unwrap();
            assert!(set.keys[0].whsec.is_none());
            assert_eq!(
                set.keys[0].standard_state().tag(&[b"a.b"]),
                reference_tag(other.expose_bytes(), b"a.b")
            );
        }
        // The expiry survives the reading.
        let read = Secret::from(text)
            .expires_at(5)
            .decode_whsec_text()
            .unwrap()
            .unwrap();
        assert_eq!(read.expiry(), Some(5));
        assert!(!read.is_text());
    }

    #[test]
    fn wiping_a_key_state_leaves_nothing_of_the_key() {
        let mut state = KeyState::new(b"key-that-must-not-linger").unwrap();
        assert_eq!(
            state.tag(&[b"m"]),
            reference_tag(b"key-that-must-not-linger", b"m")
        );
        state.wipe();
        // Keyed with nothing (an empty key pads to the same zero block).
        assert_eq!(state.tag(&[b"m"]), reference_tag(&[], b"m"));
    }

    #[test]
    fn labels_are_checked_and_unique_in_a_set() {
        let s = Secret::from("x").labelled("old-2025.12_a").unwrap();
        assert_eq!(s.label(), Some("old-2025.12_a"));
        for bad in [
            "",
            "has space",
            "é",
            "a\nb",
            &"x".repeat(MAX_KEY_LABEL_LEN + 1),
        ] {
            let err = Secret::from("x").labelled(bad).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
        }
        // The error says where, never the label itself.
        let err = Secret::from("x")
            .labelled("hunter 2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("character 7") && !err.contains("hunter"),
            "{err}"
        );
        // A label may not take the name another secret has by position.
        let err = SecretSet::new([Secret::from("a").labelled("1").unwrap(), Secret::from("b")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("#0 and #1"), "{err}");
        let set = SecretSet::new([
            Secret::from("a").labelled("new").unwrap(),
            Secret::from("b"),
        ])
        .unwrap();
        assert_eq!(set.metric_label(0), "new");
        assert_eq!(set.metric_label(1), "1");
        // The label survives reading a `whsec_` text.
        let read = Secret::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .labelled("std")
            .unwrap()
            .decode_whsec_text()
            .unwrap()
            .unwrap();
        assert_eq!(read.label(), Some("std"));
    }

    #[test]
    fn expiry_is_exclusive() {
        let s = Secret::from("x").expires_at(100);
        assert!(s.is_active_at(99));
        assert!(!s.is_active_at(100));
    }
}
