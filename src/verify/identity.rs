use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::scheme::{Scheme, SchemeName, SignatureAlgorithm, SignatureMatch};
use crate::secret::SecretSet;

/// The label each key is fingerprinted over. The domain separation keeps a
/// fingerprint unrelated to any signature a scheme makes with the same key.
const FINGERPRINT_LABEL: &[u8] = b"webhook-guard/verifier-id/v1";

/// Bytes of a fingerprint kept (128 bits: no two keys collide in practice).
const FINGERPRINT_LEN: usize = 16;

/// Longest tenant name accepted by [`Verifier::tenant`](super::Verifier::tenant).
pub(crate) const MAX_TENANT_LEN: usize = 256;

/// Who vouched for a verified request: the key that verified it, or the
/// tenant named in the configuration. It scopes idempotency keys, so that one
/// sender can never mark another sender's events as processed.
///
/// The value is one of:
///
/// - `tenant:<name>`, when the verifier was named with
///   [`VerifyLayer::tenant`](crate::VerifyLayer::tenant) or
///   [`Verifier::tenant`](super::Verifier::tenant);
/// - `hmac:<32 hex>`, the first 128 bits of HMAC-SHA256, keyed with the
///   shared secret that matched, over a fixed label;
/// - `ed25519:<32 hex>`, the first 128 bits of SHA-256 over a fixed label and
///   the public key that matched (Standard Webhooks `v1a`).
///
/// It is not secret and never reveals the secret: it is a one-way, keyed
/// digest, and lets one test a guessed secret no faster than any signed
/// delivery already does. It is meant for store keys and logs.
///
/// # Rotation
///
/// The fingerprint belongs to the **secret that matched**, not to the whole
/// [`SecretSet`]: adding or removing another secret changes nothing. When a
/// sender moves from the old to the new secret, a delivery signed with the
/// old one and a retry signed with the new one carry different identities, so
/// such a retry is processed once more, within the done TTL only. Name the
/// verifier with a tenant to keep one identity across every rotation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifierId(Arc<str>);

impl VerifierId {
    fn tenant(name: &str) -> Self {
        Self(format!("tenant:{name}").into())
    }

    /// HMAC-SHA256 keyed with the secret as the scheme reads it, over a
    /// fixed label.
    fn of_secret(key: &crate::secret::KeyState) -> Self {
        Self::tagged("hmac", &key.tag(&[FINGERPRINT_LABEL]))
    }

    fn of_public_key(key: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(key)
            .finalize();
        Self::tagged("ed25519", &digest)
    }

    fn tagged(kind: &str, digest: &[u8]) -> Self {
        let kept = digest.get(..FINGERPRINT_LEN).unwrap_or(digest);
        Self(format!("{kind}:{}", hex::encode(kept)).into())
    }

    /// The identity as text: `tenant:<name>`, `hmac:<hex>` or `ed25519:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VerifierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VerifierId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierId({})", self.0)
    }
}

/// The identities a verifier can stamp on a request, computed once.
#[derive(Clone)]
pub(crate) enum Identities {
    /// Every request gets the configured tenant.
    Tenant(VerifierId),
    /// Each request gets the fingerprint of the key that matched.
    Keys {
        /// One per secret of the set, by index.
        hmac: Vec<VerifierId>,
        /// One per ed25519 public key of the scheme, by index.
        ed25519: Vec<VerifierId>,
    },
}

impl Identities {
    pub(crate) fn of_keys(scheme: &Scheme, secrets: &SecretSet) -> Self {
        Self::Keys {
            hmac: secrets
                .keyed()
                .map(|k| match scheme.name() {
                    SchemeName::Standard => VerifierId::of_secret(k.standard_state()),
                    _ => VerifierId::of_secret(k.bytes_state()),
                })
                .collect(),
            ed25519: scheme
                .ed25519_public_key_bytes()
                .iter()
                .map(VerifierId::of_public_key)
                .collect(),
        }
    }

    pub(crate) fn tenant(name: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || name.len() > MAX_TENANT_LEN {
            return Err(ConfigError::InvalidSetting {
                setting: "tenant",
                reason: format!(
                    "a tenant name must be 1 to {MAX_TENANT_LEN} bytes long, found {}",
                    name.len()
                ),
            });
        }
        Ok(Self::Tenant(VerifierId::tenant(name)))
    }

    /// The identity of the key that produced `matched`.
    ///
    /// The index always comes from the same list the identities were built
    /// from; were it ever out of range, the identity of the whole key list is
    /// used, which still belongs to this verifier alone.
    pub(crate) fn of(&self, matched: &SignatureMatch) -> VerifierId {
        let (hmac, ed25519) = match self {
            Self::Tenant(id) => return id.clone(),
            Self::Keys { hmac, ed25519 } => (hmac, ed25519),
        };
        let list = match matched.algorithm() {
            SignatureAlgorithm::Ed25519 => ed25519,
            SignatureAlgorithm::HmacSha256 => hmac,
        };
        match list.get(matched.secret_index()) {
            Some(id) => id.clone(),
            None => {
                let mut all = Sha256::new();
                for id in hmac.iter().chain(ed25519) {
                    all.update(id.as_str().as_bytes());
                    all.update([0]);
                }
                VerifierId::tagged("keys", &all.finalize())
            }
        }
    }

    /// The tenant name, if one was configured.
    pub(crate) fn tenant_name(&self) -> Option<&str> {
        match self {
            Self::Tenant(id) => id.as_str().strip_prefix("tenant:"),
            Self::Keys { .. } => None,
        }
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(id) => f.debug_tuple("Tenant").field(id).finish(),
            Self::Keys { hmac, ed25519 } => f
                .debug_struct("Keys")
                .field("hmac", hmac)
                .field("ed25519", ed25519)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_ids(secrets: &SecretSet) -> Vec<VerifierId> {
        match Identities::of_keys(&Scheme::native(), secrets) {
            Identities::Keys { hmac, .. } => hmac,
            Identities::Tenant(_) => unreachable!(),
        }
    }

    #[test]
    fn fingerprints_are_per_secret_and_hide_it() {
        let one = hmac_ids(&SecretSet::new(["alpha"]).unwrap());
        let two = hmac_ids(&SecretSet::new(["beta", "alpha"]).unwrap());
        // Adding a secret leaves the existing one's identity as it was.
        assert_eq!(one[0], two[1]);
        assert_ne!(two[0], two[1]);
        let text = one[0].as_str();
        assert!(text.starts_with("hmac:") && text.len() == 5 + 32, "{text}");
        assert!(!text.contains(&hex::encode("alpha")), "{text}");
        // Not a plain hash of the secret either.
        let plain = hex::encode(Sha256::digest(b"alpha"));
        assert!(!plain.starts_with(&text[5..]), "{text}");
    }

    #[test]
    fn a_tenant_outlives_a_change_of_scheme() {
        let verifier =
            super::super::Verifier::new(Scheme::native(), SecretSet::single("s").unwrap())
                .tenant("acme")
                .unwrap()
                .with_scheme(Scheme::github());
        assert_eq!(verifier.tenant_name(), Some("acme"));
    }

    #[cfg(feature = "ed25519")]
    #[test]
    fn an_ed25519_match_gets_the_public_key_identity() {
        use crate::scheme::{Ed25519SigningKey, Message};
        let key = Ed25519SigningKey::from_seed(&[7; 32]);
        let public = key.public_key();
        let signer = Scheme::standard().with_signing_key(key);
        let sender_secret = SecretSet::single("sender-hmac").unwrap();
        let msg = Message::new("evt_1", 1_700_000_000, b"{}");
        let headers = signer.sign(&sender_secret, &msg).unwrap();
        // The receiver does not know the sender's HMAC secret: only `v1a` matches.
        let receiving = Scheme::standard().with_public_keys([public]);
        let public_bytes = receiving.ed25519_public_key_bytes()[0];
        let verifier =
            super::super::Verifier::new(receiving, SecretSet::single("receiver-hmac").unwrap())
                .replay_window(
                    crate::ReplayWindow::new().clock(crate::FixedClock::at(1_700_000_000)),
                );
        let verified = verifier
            .verify(&headers, bytes::Bytes::from_static(b"{}"))
            .unwrap();
        assert_eq!(verified.algorithm(), SignatureAlgorithm::Ed25519);
        assert_eq!(
            verified.verifier(),
            &VerifierId::of_public_key(&public_bytes)
        );
        assert!(verified.verifier().as_str().starts_with("ed25519:"));
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(Identities::tenant("").is_err());
        assert!(Identities::tenant(&"x".repeat(MAX_TENANT_LEN + 1)).is_err());
        let t = Identities::tenant("acme").unwrap();
        assert_eq!(t.tenant_name(), Some("acme"));
    }
}
