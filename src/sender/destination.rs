//! Destinations: where events go, signed how, and which events.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::ConfigError;
use crate::scheme::{Scheme, SchemeName};
use crate::secret::{MIN_SECRET_LEN, Secret};

/// The key a destination signs with for `secret` under `scheme`: text read
/// the scheme's way ([`Scheme::read_secret`]), then at least
/// [`MIN_SECRET_LEN`] bytes.
pub(crate) fn signing_key(scheme: &Scheme, secret: Secret) -> Result<Secret, ConfigError> {
    let key = scheme.read_secret(secret)?;
    let len = key.expose_bytes().len();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::InvalidSecret {
            reason: format!(
                "a destination secret must be at least {MIN_SECRET_LEN} bytes of key, and this one is {len}; \
                 use 32 random bytes (`openssl rand -hex 32`, or leave `secret` out in the console to have one generated)"
            ),
        });
    }
    Ok(key)
}

/// Which event types a destination receives.
///
/// A pattern is an exact event type (`ingestion.completed`), `*` (every
/// type) or a prefix followed by `.*` (`kpi.*` matches `kpi.alert` and
/// `kpi.computed`, not `kpis.x`).
///
/// ```
/// use webhook_guard::sender::EventFilter;
///
/// let f = EventFilter::only(["kpi.*", "ingestion.completed"]);
/// assert!(f.matches("kpi.alert"));
/// assert!(f.matches("ingestion.completed"));
/// assert!(!f.matches("ingestion.failed"));
/// assert!(EventFilter::All.matches("anything"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "types", rename_all = "camelCase")]
pub enum EventFilter {
    /// Every event.
    All,
    /// Only the event types matching one of these patterns.
    Only(Vec<String>),
}

impl EventFilter {
    /// Only events whose type matches one of `patterns`.
    pub fn only<I, T>(patterns: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::Only(patterns.into_iter().map(Into::into).collect())
    }

    /// Whether an event of type `event_type` goes to this destination.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(patterns) => patterns.iter().any(|p| pattern_matches(p, event_type)),
        }
    }
}

fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// A registered destination, as stored and as shown to operators.
///
/// Serializes (camelCase) without the secret bytes: `secrets` lists only
/// each secret's expiry.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Destination {
    /// Stable id (`dst_...` unless chosen at registration).
    pub id: String,
    /// The URL events are POSTed to.
    pub url: String,
    /// The wire format; serialized as its name ([`SchemeName::as_str`]),
    /// and stored as that text.
    pub scheme: SchemeName,
    /// Which events this destination receives.
    pub events: EventFilter,
    /// Whether deliveries are attempted. A disabled destination receives no
    /// new deliveries; its pending ones wait until it is enabled again.
    pub enabled: bool,
    /// Why it was disabled (by an operator, or after a `410 Gone`).
    pub disabled_reason: Option<String>,
    /// When it was registered, unix milliseconds.
    pub created_at_ms: i64,
    /// Signing secrets, newest first; during a rotation the old one carries
    /// an expiry. Serialized as expiries only.
    #[serde(serialize_with = "serialize_secret_expiries")]
    pub secrets: Vec<Secret>,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("scheme", &self.scheme)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretSummary {
    expires_at: Option<i64>,
}

fn serialize_secret_expiries<S: Serializer>(
    secrets: &[Secret],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(secrets.iter().map(|s| SecretSummary {
        expires_at: s.expiry(),
    }))
}

/// What to register: a URL, its secret(s), scheme and event filter.
///
/// A secret given as text is read the way the scheme's receivers read it
/// ([`Scheme::read_secret`]) when the destination is added: under
/// [`Scheme::standard`], `whsec_<base64>` signs with the decoded key, as the
/// Standard Webhooks and Svix libraries verify; elsewhere the text's bytes
/// are the key. Every key must be at least
/// [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) (24) bytes.
///
/// ```
/// use webhook_guard::Scheme;
/// use webhook_guard::sender::{EventFilter, NewDestination};
///
/// let d = NewDestination::new("https://example.com/hooks", "plain-secret-of-24-bytes-or-more")
///     .scheme(Scheme::native_body_only())
///     .events(EventFilter::only(["kpi.*"]));
/// assert!(!format!("{d:?}").contains("plain-secret"));
///
/// // As Svix prints it: signs with the base64-decoded key.
/// let svix = NewDestination::new("https://example.com/svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .scheme(Scheme::standard());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewDestination {
    pub(crate) id: Option<String>,
    pub(crate) url: String,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) scheme: Scheme,
    pub(crate) events: EventFilter,
}

impl NewDestination {
    /// A destination receiving every event at `url`, signed with `secret`
    /// in the native scheme.
    pub fn new(url: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            id: None,
            url: url.into(),
            secrets: vec![secret.into()],
            scheme: Scheme::native(),
            events: EventFilter::All,
        }
    }

    /// Chooses the destination's id instead of a generated one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds another signing secret (every active secret signs each request).
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// The wire format (default [`Scheme::native`]).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Which events the destination receives (default [`EventFilter::All`]).
    pub fn events(mut self, events: EventFilter) -> Self {
        self.events = events;
        self
    }
}
