//! How the SQLite and PostgreSQL stores write destination secrets: as JSON,
//! each key in base64, sealed first when a [`SecretSeal`] is set.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::Secret;
use crate::sender::error::DeliveryStoreError;

/// Seals destination keys before the SQLite or PostgreSQL store writes them
/// and opens them when it reads them, so that the database holds no key in
/// the clear.
///
/// A sender must hold its destinations' keys to sign, so they cannot be
/// hashed; without a seal the store keeps them as base64, readable by anyone
/// who can read the file (and its `-wal` file and backups). Implement this
/// trait with the platform's key management, for example:
///
/// - a cloud KMS's `Encrypt`/`Decrypt` (the master key never leaves the KMS);
/// - an AEAD such as `chacha20poly1305` or `aes-gcm` with a random nonce per
///   key, keyed with a key-encryption key loaded from a secret manager or
///   the environment, never from the database.
///
/// Set it with [`SqliteStore::with_secret_seal`](crate::sender::SqliteStore::with_secret_seal)
/// or [`PgStore::with_secret_seal`](crate::sender::PgStore::with_secret_seal).
/// Rows written before a seal was set are still read (they are marked as
/// plain) and are sealed the next time the destination is saved (any
/// update, a rotation for instance). A store that finds a sealed key and
/// has no seal refuses to read it rather than sign with the wrong key.
///
/// Other ways to keep the file's secrets encrypted at rest: an encrypted
/// volume, or an encrypting SQLite build (SQLCipher) linked in place of the
/// bundled SQLite.
///
/// ```
/// use webhook_guard::sender::{SecretSeal, DeliveryStoreError};
/// use zeroize::Zeroizing;
///
/// /// Stands in for a KMS client: XOR with a pad (not encryption; use an AEAD).
/// struct Pad(Vec<u8>);
///
/// impl SecretSeal for Pad {
///     fn seal(&self, key: &[u8]) -> Result<Vec<u8>, DeliveryStoreError> {
///         Ok(key.iter().zip(self.0.iter().cycle()).map(|(k, p)| k ^ p).collect())
///     }
///     fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DeliveryStoreError> {
///         Ok(Zeroizing::new(self.seal(sealed)?))
///     }
/// }
/// # let pad = Pad(vec![0x5a; 8]);
/// # assert_eq!(*pad.open(&pad.seal(b"key").unwrap()).unwrap(), b"key".to_vec());
/// ```
pub trait SecretSeal: Send + Sync + 'static {
    /// Seals one key for storage.
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] (never holding the key) when sealing fails; the
    /// destination is then not saved.
    fn seal(&self, key: &[u8]) -> Result<Vec<u8>, DeliveryStoreError>;

    /// Opens what [`seal`](Self::seal) returned.
    ///
    /// # Errors
    ///
    /// A [`DeliveryStoreError`] (never holding the key) when the sealed bytes cannot
    /// be opened: a wrong key-encryption key, or tampering.
    fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, DeliveryStoreError>;
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSecret {
    key: String,
    expires_at: Option<i64>,
    /// Whether `key` is the base64 of sealed bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sealed: bool,
}

/// The JSON the store keeps for a destination's secrets.
pub(super) fn encode_secrets(
    secrets: &[Secret],
    seal: Option<&dyn SecretSeal>,
) -> Result<String, DeliveryStoreError> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let stored = secrets
        .iter()
        .map(|s| {
            let key = match seal {
                Some(seal) => b64.encode(seal.seal(s.expose_bytes())?),
                None => b64.encode(s.expose_bytes()),
            };
            Ok(StoredSecret {
                key,
                expires_at: s.expiry(),
                sealed: seal.is_some(),
            })
        })
        .collect::<Result<Vec<_>, DeliveryStoreError>>()?;
    serde_json::to_string(&stored)
        .map_err(|e| DeliveryStoreError::new(format!("encoding secrets: {e}")))
}

/// The secrets back from their JSON, as key bytes (never read as text).
pub(super) fn decode_secrets(
    text: &str,
    seal: Option<&dyn SecretSeal>,
) -> Result<Vec<Secret>, DeliveryStoreError> {
    let stored: Vec<StoredSecret> = serde_json::from_str(text)
        .map_err(|e| DeliveryStoreError::new(format!("a stored secret list is corrupt: {e}")))?;
    stored
        .into_iter()
        .map(|s| {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(&s.key)
                    .map_err(|_| DeliveryStoreError::new("a stored secret is not base64"))?,
            );
            let secret = match (s.sealed, seal) {
                (false, _) => Secret::new(bytes.as_slice()),
                (true, Some(seal)) => Secret::new(seal.open(&bytes)?.as_slice()),
                (true, None) => {
                    return Err(DeliveryStoreError::new(
                        "a stored secret is sealed and this store has no SecretSeal to open it; \
                         open the store with `with_secret_seal` and the seal that wrote it",
                    ));
                }
            };
            Ok(match s.expires_at {
                Some(t) => secret.expires_at(t),
                None => secret,
            })
        })
        .collect()
}
