//! Shared secrets and the set of secrets a receiver accepts.
//!
//! A [`Secret`] is raw key bytes. Where a platform hands out a string, decide
//! which bytes it means:
//!
//! - [`Secret::from`] a `&str` uses the string's own bytes (what Node's
//!   `createHmac('sha256', secret)`, GitHub, Stripe, Slack and Shopify do);
//! - [`Secret::from_whsec`] decodes a Standard Webhooks / Svix `whsec_<base64>`
//!   secret into the bytes it stands for.
//!
//! A [`SecretSet`] holds every secret that is currently active. During a
//! rotation it holds the old and the new one; a request signed with either
//! passes, and [`Verified::secret_index`](crate::Verified::secret_index) says
//! which one matched, so operators can see when the old one is no longer used.
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

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::ConfigError;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Prefix of Standard Webhooks / Svix secrets: `whsec_` followed by base64.
pub const WHSEC_PREFIX: &str = "whsec_";

/// A shared secret: raw key bytes, wiped from memory on drop, never printed.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    not_after: Option<i64>,
}

impl Secret {
    /// A secret made of exactly these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.into()),
            not_after: None,
        }
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

    /// The raw key bytes.
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
fn describe_base64_error(e: &base64::DecodeError) -> String {
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
        Self::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
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

/// One secret with its precomputed keyed HMAC-SHA256 state.
#[derive(Clone)]
pub(crate) struct KeyedSecret {
    pub(crate) secret: Secret,
    pub(crate) hmac: HmacSha256,
}

/// The secrets a receiver currently accepts, in order of preference.
///
/// Any match of any active secret passes. The keyed HMAC state of each secret
/// is computed once here and cloned per request.
#[derive(Clone)]
pub struct SecretSet {
    keys: Vec<KeyedSecret>,
}

impl SecretSet {
    /// Builds a set from one or more secrets.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecrets`] for an empty list and
    /// [`ConfigError::InvalidSecret`] for a secret with no bytes.
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
            let hmac = HmacSha256::new_from_slice(secret.expose_bytes()).map_err(|_| {
                ConfigError::InvalidSecret {
                    reason: format!("secret #{index} cannot key HMAC-SHA256"),
                }
            })?;
            keys.push(KeyedSecret { secret, hmac });
        }
        if keys.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        Ok(Self { keys })
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

    #[test]
    fn expiry_is_exclusive() {
        let s = Secret::from("x").expires_at(100);
        assert!(s.is_active_at(99));
        assert!(!s.is_active_at(100));
    }
}
