use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::identity::{Identities, VerifierId};
use crate::error::{ConfigError, VerifyError};
use crate::replay::ReplayWindow;
use crate::scheme::{
    IdSource, Scheme, SchemeName, SignatureAlgorithm, SignatureMatch, TimestampSource,
};
use crate::secret::SecretSet;
use crate::trace_context::TraceParent;

/// Proof that a request passed verification, with what was learned from it.
///
/// [`VerifyLayer`](crate::VerifyLayer) puts one in the request's extensions;
/// handlers take it as an extractor. Cheap to clone.
#[derive(Clone)]
pub struct Verified {
    inner: Arc<Inner>,
}

struct Inner {
    matched: SignatureMatch,
    scheme: SchemeName,
    verifier: VerifierId,
    id_source: IdSource,
    body: Bytes,
    content_id: OnceLock<String>,
    traceparent: Option<TraceParent>,
}

impl Verified {
    pub(crate) fn new(
        matched: SignatureMatch,
        scheme: &Scheme,
        verifier: VerifierId,
        body: Bytes,
        traceparent: Option<TraceParent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                matched,
                scheme: scheme.name(),
                verifier,
                id_source: scheme.id_source(),
                body,
                content_id: OnceLock::new(),
                traceparent,
            }),
        }
    }

    /// The authenticated id of the event: the signed id when the scheme
    /// carries one, otherwise `sha256:<hex>` of the signed body.
    ///
    /// It never comes from an unsigned header, so an attacker cannot vary it
    /// to slip a replay past deduplication.
    pub fn id(&self) -> &str {
        match &self.inner.matched.id {
            Some(id) => id,
            None => self.inner.content_id.get_or_init(|| {
                let digest = Sha256::digest(&self.inner.body);
                format!("sha256:{}", hex::encode(digest))
            }),
        }
    }

    /// Where [`id`](Self::id) came from.
    pub fn id_source(&self) -> IdSource {
        self.inner.id_source
    }

    /// The signed timestamp (unix seconds) that passed the replay window, if
    /// the request carried one.
    pub fn timestamp(&self) -> Option<i64> {
        self.inner.matched.timestamp
    }

    /// Where [`timestamp`](Self::timestamp) came from.
    pub fn timestamp_source(&self) -> TimestampSource {
        self.inner.matched.timestamp_source
    }

    /// The scheme that verified the request.
    pub fn scheme(&self) -> SchemeName {
        self.inner.scheme
    }

    /// Who vouched for this request: the configured tenant, or a fingerprint
    /// of the verifier's keys (all of them, whichever matched; see
    /// [`VerifierId`]). Never derived from the request itself, so
    /// two senders with different secrets always get different identities;
    /// [`IdempotencyLayer`](crate::IdempotencyLayer) scopes its keys by it.
    pub fn verifier(&self) -> &VerifierId {
        &self.inner.verifier
    }

    /// Index in the [`SecretSet`] of the secret that matched. During a
    /// rotation, watch this to see when the old secret stops being used.
    pub fn secret_index(&self) -> usize {
        self.inner.matched.secret_index
    }

    /// The algorithm of the signature that matched (HMAC-SHA256, or Ed25519
    /// for Standard Webhooks `v1a`).
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.matched.algorithm
    }

    /// The provider's own delivery id (`X-GitHub-Delivery`,
    /// `X-Shopify-Event-Id`) for schemes without a signed id. **Not signed**:
    /// for logs and support tickets only; [`id`](Self::id) is the one to
    /// deduplicate on.
    pub fn delivery_id(&self) -> Option<&str> {
        self.inner.matched.delivery_id.as_deref()
    }

    /// The raw body bytes exactly as verified.
    pub fn body(&self) -> &Bytes {
        &self.inner.body
    }

    /// The sender's trace: the request's `traceparent` header when it is
    /// one well-formed W3C value (see [`crate::trace_context`]); a
    /// malformed one is ignored. **Not signed**: for joining traces only.
    pub fn traceparent(&self) -> Option<&TraceParent> {
        self.inner.traceparent.as_ref()
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("id", &self.inner.matched.id)
            .field("id_source", &self.inner.id_source)
            .field("timestamp", &self.inner.matched.timestamp)
            .field("timestamp_source", &self.inner.matched.timestamp_source)
            .field("scheme", &self.inner.scheme)
            .field("verifier", &self.inner.verifier)
            .field("secret_index", &self.inner.matched.secret_index)
            .field("algorithm", &self.inner.matched.algorithm)
            .field("delivery_id", &self.inner.matched.delivery_id)
            .field("body_len", &self.inner.body.len())
            .field("traceparent", &self.inner.traceparent)
            .finish()
    }
}

/// Everything needed to verify a request, without the tower plumbing.
///
/// [`VerifyLayer`](crate::VerifyLayer) uses one; use it directly where there
/// is no tower stack (a serverless function, a queue consumer).
///
/// ```
/// use bytes::Bytes;
/// use webhook_guard::{FixedClock, Message, ReplayWindow, Scheme, SecretSet, Verifier};
///
/// let secrets = SecretSet::single("s3cr3t")?;
/// let body = Bytes::from_static(br#"{"event":"kpi.alert"}"#);
/// let headers = Scheme::native().sign(&secrets, &Message::new("evt_9", 1_700_000_000, &body))?;
///
/// let verifier = Verifier::new(Scheme::native(), secrets)
///     .replay_window(ReplayWindow::new().clock(FixedClock::at(1_700_000_030)));
/// let verified = verifier.verify(&headers, body)?;
/// assert_eq!(verified.id(), "evt_9");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
    secrets: SecretSet,
    window: ReplayWindow,
    identities: Identities,
}

impl Verifier {
    /// A verifier for `scheme` accepting any of `secrets`, with the default
    /// replay window (300 s each way, system clock).
    pub fn new(scheme: Scheme, secrets: SecretSet) -> Self {
        Self {
            identities: Identities::of_keys(&scheme, &secrets),
            scheme,
            secrets,
            window: ReplayWindow::new(),
        }
    }

    /// Names the sender this verifier stands for. Every request it verifies
    /// then carries the identity `tenant:<name>` ([`Verified::verifier`])
    /// instead of the fingerprint of its keys, so deduplication
    /// keys stay the same across every secret rotation.
    ///
    /// Give each verifier that shares an idempotency store a name of its
    /// own: two verifiers with the same name share deduplication keys, and
    /// either sender could then mark the other's events as processed.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty name or one longer than
    /// 256 bytes.
    pub fn tenant(mut self, name: impl AsRef<str>) -> Result<Self, ConfigError> {
        self.identities = Identities::tenant(name.as_ref())?;
        Ok(self)
    }

    /// The name set with [`tenant`](Self::tenant), if any.
    pub fn tenant_name(&self) -> Option<&str> {
        self.identities.tenant_name()
    }

    /// The same verifier for another wire format: same secrets, window and
    /// tenant.
    pub(crate) fn with_scheme(self, scheme: Scheme) -> Self {
        let identities = match self.identities {
            tenant @ Identities::Tenant(_) => tenant,
            Identities::Keys(_) => Identities::of_keys(&scheme, &self.secrets),
        };
        Self {
            scheme,
            identities,
            ..self
        }
    }

    /// Replaces the replay window.
    #[must_use]
    pub fn replay_window(mut self, window: ReplayWindow) -> Self {
        self.window = window;
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    /// The secrets.
    pub fn secrets(&self) -> &SecretSet {
        &self.secrets
    }

    /// Checks the signature (constant time, any active secret), then the
    /// signed timestamp against the replay window.
    ///
    /// The signature is checked first, so a timestamp rejection always means
    /// an authentic but stale (or early) request, never a forgery.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] whose [`kind`](VerifyError::kind) says why.
    pub fn verify(&self, headers: &HeaderMap, body: Bytes) -> Result<Verified, VerifyError> {
        self.verify_at(headers, body, self.window.now_unix())
    }

    /// [`verify`](Self::verify) at `now` (unix seconds, read from the
    /// window's clock by the caller).
    pub(crate) fn verify_at(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let matched = self
            .scheme
            .verify_signature(&self.secrets, headers, &body, now)?;
        if let Some(ts) = matched.timestamp {
            self.window.check_at(ts, now)?;
        }
        let verifier = self.identities.id().clone();
        let traceparent = TraceParent::from_headers(headers);
        Ok(Verified::new(
            matched,
            &self.scheme,
            verifier,
            body,
            traceparent,
        ))
    }
}
