use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::scheme::Scheme;
use crate::secret::SecretSet;

/// The label each key is fingerprinted over. The domain separation keeps a
/// fingerprint unrelated to any signature a scheme makes with the same key.
const FINGERPRINT_LABEL: &[u8] = b"webhook-guard/verifier-id/v1";

/// Bytes of a fingerprint kept (128 bits: no two keys collide in practice).
const FINGERPRINT_LEN: usize = 16;

/// Longest tenant name accepted by [`Verifier::tenant`](super::Verifier::tenant).
pub(crate) const MAX_TENANT_LEN: usize = 256;

/// Who vouched for a verified request: the keys of the verifier that
/// verified it, or the tenant named in the configuration. It scopes
/// idempotency keys, so that one sender can never mark another sender's
/// events as processed.
///
/// The value is one of:
///
/// - `tenant:<name>`, when the verifier was named with
///   [`VerifyLayer::tenant`](crate::VerifyLayer::tenant) or
///   [`Verifier::tenant`](super::Verifier::tenant);
/// - for a verifier with one key, that key's fingerprint: `hmac:<32 hex>`,
///   the first 128 bits of HMAC-SHA256, keyed with the shared secret, over a
///   fixed label, or `ed25519:<32 hex>`, the first 128 bits of SHA-256 over a
///   fixed label and the public key (Standard Webhooks `v1a`);
/// - for a verifier with several keys, `keys:<32 hex>`: the first 128 bits
///   of SHA-256 over those fingerprints, in sorted order (the order of the
///   [`SecretSet`] does not count).
///
/// It is not secret and never reveals a secret: it is a one-way, keyed
/// digest, and lets one test a guessed secret no faster than any signed
/// delivery already does. It is meant for store keys and logs.
///
/// # Rotation
///
/// The identity belongs to the verifier's whole key list, never to the key
/// that happened to match: a delivery signed with several keys (every
/// secret of a rotation, or `v1` and `v1a`) would otherwise get whichever
/// identity a replayer picks by removing signatures from the unsigned
/// signature header, and be processed once per key. So adding the new
/// secret, and later removing the old one, each change the identity: a
/// retry that straddles either redeploy is processed once more, within the
/// done TTL only. Name the verifier with a tenant to keep one identity
/// across every rotation.
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

/// The identity a verifier stamps on every request, computed once.
#[derive(Clone)]
pub(crate) enum Identities {
    /// The configured tenant.
    Tenant(VerifierId),
    /// The fingerprint of the verifier's key list.
    Keys(VerifierId),
}

impl Identities {
    pub(crate) fn of_keys(scheme: &Scheme, secrets: &SecretSet) -> Self {
        let name = scheme.name();
        let hmac = secrets
            .keyed()
            .map(|k| VerifierId::of_secret(k.state_for(name)));
        let ed25519 = scheme
            .ed25519_public_key_bytes()
            .iter()
            .map(VerifierId::of_public_key)
            .collect::<Vec<_>>();
        let mut keys: Vec<VerifierId> = hmac.chain(ed25519).collect();
        if keys.len() == 1 {
            return Self::Keys(keys.remove(0));
        }
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        keys.dedup();
        let mut all = Sha256::new().chain_update(FINGERPRINT_LABEL);
        for id in &keys {
            all.update(id.as_str().as_bytes());
            all.update([0]);
        }
        Self::Keys(VerifierId::tagged("keys", &all.finalize()))
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

    /// The identity of every request this verifier verifies, whichever of
    /// its keys matched.
    pub(crate) fn id(&self) -> &VerifierId {
        match self {
            Self::Tenant(id) | Self::Keys(id) => id,
        }
    }

    /// The tenant name, if one was configured.
    pub(crate) fn tenant_name(&self) -> Option<&str> {
        match self {
            Self::Tenant(id) => id.as_str().strip_prefix("tenant:"),
            Self::Keys(_) => None,
        }
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(id) => f.debug_tuple("Tenant").field(id).finish(),
            Self::Keys(id) => f.debug_tuple("Keys").field(id).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(secrets: &SecretSet) -> VerifierId {
        Identities::of_keys(&Scheme::native(), secrets).id().clone()
    }

    #[test]
    fn one_key_is_its_fingerprint_and_hides_it() {
        let one = id_of(&SecretSet::new(["alpha"]).unwrap());
        let text = one.as_str();
        assert!(text.starts_with("hmac:") && text.len() == 5 + 32, "{text}");
        assert!(!text.contains(&hex::encode("alpha")), "{text}");
        // Not a plain hash of the secret either.
        let plain = hex::encode(Sha256::digest(b"alpha"));
        assert!(!plain.starts_with(&text[5..]), "{text}");
        assert_ne!(one, id_of(&SecretSet::new(["beta"]).unwrap()));
    }

    #[test]
    fn several_keys_are_one_identity_whatever_their_order() {
        let ab = id_of(&SecretSet::new(["alpha", "beta"]).unwrap());
        let ba = id_of(&SecretSet::new(["beta", "alpha"]).unwrap());
        assert_eq!(ab, ba);
        assert!(ab.as_str().starts_with("keys:") && ab.as_str().len() == 5 + 32);
        for other in [&["alpha"][..], &["beta"], &["alpha", "gamma"]] {
            assert_ne!(
                ab,
                id_of(&SecretSet::new(other.iter().copied()).unwrap()),
                "{other:?}"
            );
        }
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

    /// A delivery carrying `v1` and `v1a` gets the same identity with
    /// either signature removed.
    #[cfg(feature = "ed25519")]
    #[test]
    fn v1_and_v1a_matches_share_the_identity() {
        use crate::scheme::{Ed25519SigningKey, Message, SignatureAlgorithm};
        let key = Ed25519SigningKey::from_seed(&[7; 32]);
        let public = key.public_key();
        let hmac = SecretSet::single("shared-hmac-secret").unwrap();
        let signer = Scheme::standard().with_signing_key(key);
        let msg = Message::new("evt_1", 1_700_000_000, b"{}");
        let headers = signer.sign(&hmac, &msg).unwrap();
        let verifier = super::super::Verifier::new(
            Scheme::standard().with_public_keys([public]),
            hmac.clone(),
        )
        .replay_window(crate::ReplayWindow::new().clock(crate::FixedClock::at(1_700_000_000)));
        let only = |prefix: &str| {
            let mut h = headers.clone();
            let all = h["webhook-signature"].to_str().unwrap().to_owned();
            let kept: Vec<&str> = all.split(' ').filter(|s| s.starts_with(prefix)).collect();
            assert_eq!(kept.len(), 1, "{all}");
            h.insert("webhook-signature", kept[0].parse().unwrap());
            verifier
                .verify(&h, bytes::Bytes::from_static(b"{}"))
                .unwrap()
        };
        let (by_hmac, by_ed25519) = (only("v1,"), only("v1a,"));
        assert_eq!(by_hmac.algorithm(), SignatureAlgorithm::HmacSha256);
        assert_eq!(by_ed25519.algorithm(), SignatureAlgorithm::Ed25519);
        assert_eq!(by_hmac.verifier(), by_ed25519.verifier());
        assert!(by_hmac.verifier().as_str().starts_with("keys:"));
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!(Identities::tenant("").is_err());
        assert!(Identities::tenant(&"x".repeat(MAX_TENANT_LEN + 1)).is_err());
        let t = Identities::tenant("acme").unwrap();
        assert_eq!(t.tenant_name(), Some("acme"));
    }
}
