//! The operator console: a JSON API and a web page for destinations,
//! delivery history and the dead letter queue (feature `console`).
//!
//! [`Console::router`] returns an axum [`Router`] that a platform mounts
//! anywhere in its own app (`Router::nest("/admin/webhooks", ..)`). It serves
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the web page (HTML, CSS and JavaScript embedded in the crate) |
//! | `GET /api/destinations` | every destination, with `paused` (circuit breaker) |
//! | `POST /api/destinations` | register `{url, scheme?, secret?, events?, id?}`; `201` with the secret, shown this once |
//! | `GET /api/destinations/{id}` | one destination |
//! | `PATCH /api/destinations/{id}` | `{enabled?, disabledReason?, events?}`: pause or resume, change the event filter (`null`: every event) |
//! | `DELETE /api/destinations/{id}` | delete (pending deliveries are dead-lettered) |
//! | `POST /api/destinations/{id}/test` | send a `webhook.test` event |
//! | `POST /api/destinations/{id}/rotate-secret` | `{secret?, overlapSeconds?}`: a new secret (shown this once), the old one keeps signing during the overlap (default 24 h) |
//! | `GET /api/deliveries?destinationId=&status=&eventType=&limit=&beforeSeq=` | history, newest first, paged (`nextCursor` → `beforeSeq`) |
//! | `GET /api/deliveries/{id}` | one delivery with all its attempts |
//! | `POST /api/deliveries/{id}/resend` | send a finished delivery again |
//! | `GET /api/dead-letters` | the dead letter queue (same paging) |
//! | `POST /api/dead-letters/{id}/replay` | replay one dead letter |
//! | `POST /api/dead-letters/replay-all` | replay every dead letter |
//! | `/api/inbox/...` | the [inbox](#the-inbox), when one is attached |
//! | `GET /api/health` | per destination: attempts, successes, p50/p99 response time over the last hour and day, 24 hourly slots, the last error, the queue ([`Sender::destination_health`](crate::sender::Sender::destination_health)) |
//!
//! `scheme` is a wire format's name as [`Scheme::from_name`] reads it
//! ([`SCHEME_NAMES`]: `native`, the default, `native-body-only`,
//! `standard`, `github`, `stripe`, `slack`, `shopify`). A secret is given
//! and returned in the form that scheme's receivers are configured with,
//! and read the way [`Scheme::parse_secret`] reads it: for `standard`,
//! `whsec_` followed by the base64 of the key bytes (the sender signs with
//! the decoded bytes); for the others, the string itself. The key must be
//! at least [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) (24) bytes.
//!
//! Secrets are write-only: `POST /api/destinations` returns the secret once
//! (the one given, or a generated one when `secret` is absent: 32 random
//! bytes, as `whsec_<base64>` for `standard` and as 64 hex digits
//! otherwise); no other answer contains it. `rotate-secret` does the same
//! in the destination's scheme. Bad input gets an RFC 9457 problem
//! response naming what is wrong: a URL that does not parse or is not
//! http(s) (`422`, type `…#invalid-destination`), a URL whose host resolves
//! to no address the SSRF guard allows (`422`, `…#forbidden-address`, one
//! message that names no address and does not tell an internal host from
//! one that does not resolve; the server log has the detail), an unknown
//! scheme (`422`,
//! `…#invalid-scheme`, naming the accepted ones), an unknown event type or
//! an empty event list (`422`, `…#invalid-event-filter`), a secret the
//! scheme cannot read (`422`, `…#invalid-input`), malformed JSON (`400`). An
//! operation the current state does not allow (a test event to a disabled
//! destination, a resend of a pending delivery) gets `409`,
//! `…#wrong-state`.
//!
//! # The inbox
//!
//! A service that also receives webhooks into an
//! [`Inbox`](crate::inbox::Inbox) (feature `inbox`) can show it in the same
//! console with [`Console::inbox`]: the page gains an inbox view (counts by
//! state, the events of one state, replay of dead letters) and the API
//! these routes, behind the same host, cross-site, content-type and
//! authentication checks as every other route. The inbox's store type need
//! not be the sender's.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/inbox/counts` | `{received, processing, retrying, done, deadLettered}`: how many events are in each [`InboxState`](crate::inbox::InboxState) |
//! | `GET /api/inbox/events?state=&limit=&beforeSeq=` | events, newest first, of one state (`received`, `processing`, `retrying`, `done`, `dead_lettered`) or all, paged like the deliveries (`nextCursor` → `beforeSeq`) |
//! | `GET /api/inbox/events/{id}` | one event: state, attempts, last error, timestamps, body length, the `traceparent` it came with |
//! | `GET /api/inbox/dead-letters?limit=&beforeSeq=` | the inbox's dead letters (same paging) |
//! | `POST /api/inbox/dead-letters/{id}/replay` | replay one dead letter (`409`, `…#wrong-state`, for an event that is not one) |
//! | `POST /api/inbox/dead-letters/replay-all` | replay every dead letter |
//! | `POST /api/inbox/dead-letters/replay-between` | `{sinceMs, untilMs}`: replay those dead-lettered in `[sinceMs, untilMs)` |
//!
//! Replays answer `202` with `{replayed: n}`. An id the inbox does not hold
//! gets `404`, `…#not-found`. As with deliveries, no answer contains an
//! event's body (only its length). A page of one of the states that split
//! `pending` (`received`, `processing`, `retrying`) reads at most 10,000
//! pending events; when it stops there it carries a `nextCursor` to read
//! on from. Without an inbox, every `/api/inbox/` route answers `404` and
//! the page shows no inbox view.
//!
//! [`Console::inbox`] has an example.
//!
//! A console shows a sender always: the console is built around one, and
//! an inbox-only service without a sender has no console yet.
//!
//! # Authentication
//!
//! The console can change where events go, so it must not be reachable
//! without authentication, and it has no router until its authentication
//! is chosen (a program that forgets does not compile). Put it behind the
//! app's own auth layer, like any other admin route, with
//! [`Console::auth_layer`]:
//!
//! ```
//! use axum::{extract::Request, middleware::{self, Next}, response::Response};
//! use http::StatusCode;
//! use webhook_guard::sender::{MemoryStore, Sender, console::Console};
//!
//! /// The app's own check (a session cookie, an SSO header, ...).
//! async fn require_admin(req: Request, next: Next) -> Result<Response, StatusCode> {
//!     let is_admin = req.headers().get("x-admin-session").is_some_and(|v| v == "valid");
//!     if is_admin { Ok(next.run(req).await) } else { Err(StatusCode::FORBIDDEN) }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::builder(MemoryStore::new()).build()?;
//! let console = Console::new(sender)
//!     .allowed_hosts(["admin.example.com"])?
//!     .auth_layer(middleware::from_fn(require_admin));
//! let app: axum::Router = axum::Router::new().nest("/admin/webhooks", console.router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! Forgetting to choose is a compile error:
//!
//! ```compile_fail
//! # use webhook_guard::sender::{MemoryStore, Sender, console::Console};
//! # let sender = Sender::builder(MemoryStore::new()).build().unwrap();
//! let app = Console::new(sender).router(); // error: authentication is not chosen
//! ```
//!
//! For services without one, [`Console::bearer_token`] guards the JSON API
//! with [`BearerAuthLayer`] (constant-time comparison); the page itself
//! holds no data and asks the operator for the token, which it keeps in the
//! tab's `sessionStorage` only.
//!
//! ```
//! use tower::ServiceExt;
//! use webhook_guard::sender::{MemoryStore, Sender, console::Console};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::builder(MemoryStore::new()).build()?;
//! let app = axum::Router::new()
//!     .nest("/admin/webhooks", Console::new(sender).bearer_token("console-token").router());
//!
//! let get = |uri: &str, token: Option<&str>| {
//!     let mut req = http::Request::get(uri).header("host", "localhost:8080");
//!     if let Some(t) = token {
//!         req = req.header("authorization", format!("Bearer {t}"));
//!     }
//!     req.body(axum::body::Body::empty()).unwrap()
//! };
//! let page = app.clone().oneshot(get("/admin/webhooks", None)).await?;
//! assert_eq!(page.status(), 200);
//! let denied = app.clone().oneshot(get("/admin/webhooks/api/destinations", None)).await?;
//! assert_eq!(denied.status(), 401);
//! let listed = app
//!     .oneshot(get("/admin/webhooks/api/destinations", Some("console-token")))
//!     .await?;
//! assert_eq!(listed.status(), 200);
//! # Ok(()) }
//! ```
//!
//! [`Console::allow_unauthenticated`] serves the API to anyone who reaches
//! it: only for a console bound to a loopback port on the operator's own
//! machine.
//!
//! # Other hosts and other sites
//!
//! Before authentication, every request goes through three checks, each
//! refusing with a problem response:
//!
//! - <a id="misdirected-request"></a>The host the request names (`Host`)
//!   must be one the console answers for: `localhost`, `127.0.0.1` and
//!   `[::1]` on any port unless [`Console::allowed_hosts`] lists others.
//!   Another host gets `421 Misdirected Request`, type
//!   `…#misdirected-request`: the request reached a server that does not
//!   serve that name (no credential would help, hence not `403`). This
//!   keeps out a page on a DNS name rebound to the console's address, which
//!   the browser would otherwise treat as the console's own origin.
//! - <a id="cross-site-request"></a>A state-changing request (`POST`,
//!   `PATCH`, `DELETE`) whose `Sec-Fetch-Site` is other than `same-origin`
//!   or `none` (a sibling subdomain's `same-site` included), or whose
//!   `Origin` is not the console's own (`http(s)://` and the `Host`), gets
//!   `403`, type `…#cross-site-request`. Requests without these headers
//!   (`curl`, scripts) pass.
//! - <a id="unsupported-media-type"></a>A state-changing request must say
//!   `Content-Type: application/json`, body-less ones included (test,
//!   resend, replay, replay-all); anything else gets `415`, type
//!   `…#unsupported-media-type`. An HTML form on another site cannot send
//!   that type, and a script on another site cannot without a CORS
//!   preflight, which the console does not grant.
//!
//! ```
//! use tower::ServiceExt;
//! use webhook_guard::sender::{MemoryStore, Sender, console::Console};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::builder(MemoryStore::new()).build()?;
//! let app = Console::new(sender).allow_unauthenticated().router();
//! let replay_all = |host: &str, origin: &str, content_type: &str| {
//!     http::Request::post("/api/dead-letters/replay-all")
//!         .header("host", host)
//!         .header("origin", origin)
//!         .header("content-type", content_type)
//!         .body(axum::body::Body::empty())
//!         .unwrap()
//! };
//! let ok = replay_all("127.0.0.1:8080", "http://127.0.0.1:8080", "application/json");
//! assert_eq!(app.clone().oneshot(ok).await?.status(), 202);
//! let rebound = replay_all("evil.example:8080", "http://evil.example:8080", "application/json");
//! assert_eq!(app.clone().oneshot(rebound).await?.status(), 421);
//! let cross_site = replay_all("127.0.0.1:8080", "http://evil.example", "application/json");
//! assert_eq!(app.clone().oneshot(cross_site).await?.status(), 403);
//! let form = replay_all("127.0.0.1:8080", "http://127.0.0.1:8080", "text/plain");
//! assert_eq!(app.oneshot(form).await?.status(), 415);
//! # Ok(()) }
//! ```

mod auth;
mod guard;
mod health;
#[cfg(feature = "inbox")]
mod inbox;
mod page;
mod problems;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};

pub use auth::{BearerAuth, BearerAuthLayer};

use guard::AllowedHosts;
use problems::ProblemKind;

use super::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStore, Destination, EventFilter,
    NewDestination, Page, Sender, SenderError,
};
use crate::error::ConfigError;
use crate::event::Event;
use crate::problem::Problem;
use crate::scheme::{SCHEME_NAMES, Scheme, SchemeName};
use crate::secret::Secret;

/// Configures the console; [`router`](Self::router) builds it once
/// [authentication is chosen](AuthNotChosen).
#[must_use]
pub struct Console<S, A> {
    sender: Sender<S>,
    event_types: Vec<String>,
    auth: A,
    refresh_seconds: u32,
    allowed_hosts: AllowedHosts,
    #[cfg(feature = "inbox")]
    inbox: Option<inbox::SharedInbox>,
}

impl<S, A: std::fmt::Debug> std::fmt::Debug for Console<S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("event_types", &self.event_types)
            .field("auth", &self.auth)
            .field("refresh_seconds", &self.refresh_seconds)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("inbox", &self.has_inbox())
            .finish_non_exhaustive()
    }
}

impl<S, A> Console<S, A> {
    /// Whether an inbox is attached.
    fn has_inbox(&self) -> bool {
        #[cfg(feature = "inbox")]
        return self.inbox.is_some();
        #[cfg(not(feature = "inbox"))]
        false
    }
}

/// A [`Console`] whose authentication is not chosen yet: it has no
/// [`router`](Console::router) until one of
/// [`bearer_token`](Console::bearer_token),
/// [`auth_layer`](Console::auth_layer) or
/// [`allow_unauthenticated`](Console::allow_unauthenticated) is called, so
/// an open console is never built by omission.
#[derive(Debug, Clone, Copy)]
pub struct AuthNotChosen;

/// A [`Console`] whose authentication is chosen; it can build its router.
pub struct AuthChosen(ConsoleAuth);

enum ConsoleAuth {
    Bearer(BearerAuthLayer),
    /// The app's own layer, around the page and the API.
    AppLayer(Box<dyn FnOnce(Router) -> Router + Send + Sync>),
    Unauthenticated,
}

impl std::fmt::Debug for AuthChosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ConsoleAuth::Bearer(layer) => layer.fmt(f),
            ConsoleAuth::AppLayer(_) => f.write_str("AppLayer"),
            ConsoleAuth::Unauthenticated => f.write_str("Unauthenticated"),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::AuthChosen {}
}

/// Implemented by [`AuthChosen`] only: [`Console::router`] needs it.
#[diagnostic::on_unimplemented(
    message = "the console's authentication is not chosen, so it has no router yet",
    label = "choose how operators authenticate first",
    note = "call `.bearer_token(token)`, `.auth_layer(your_auth_layer)` or, when only trusted operators can reach it, `.allow_unauthenticated()` before `.router()`"
)]
pub trait ChosenAuth: sealed::Sealed {
    #[doc(hidden)]
    fn into_chosen(self) -> AuthChosen;
}

impl ChosenAuth for AuthChosen {
    fn into_chosen(self) -> AuthChosen {
        self
    }
}

impl<S: DeliveryStore> Console<S, AuthNotChosen> {
    /// A console over `sender` with the built-in event catalogue
    /// ([`Event::CATALOGUE`]), answering on the loopback names only.
    pub fn new(sender: Sender<S>) -> Self {
        Self {
            sender,
            event_types: Event::CATALOGUE.iter().map(|s| (*s).to_owned()).collect(),
            auth: AuthNotChosen,
            refresh_seconds: 5,
            allowed_hosts: AllowedHosts::loopback(),
            #[cfg(feature = "inbox")]
            inbox: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every API request
    /// ([`BearerAuthLayer`]); the page asks the operator for the token.
    pub fn bearer_token(self, token: impl AsRef<[u8]>) -> Console<S, AuthChosen> {
        self.with_auth(ConsoleAuth::Bearer(BearerAuthLayer::new(token)))
    }

    /// Puts the app's own authentication layer (a session check, an SSO
    /// header, ...) around the page and the API. It runs after the
    /// console's host and cross-site checks.
    pub fn auth_layer<L>(self, layer: L) -> Console<S, AuthChosen>
    where
        L: tower_layer::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower_service::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Response:
            IntoResponse + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Error:
            Into<std::convert::Infallible> + 'static,
        <L::Service as tower_service::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.with_auth(ConsoleAuth::AppLayer(Box::new(move |router: Router| {
            router.layer(layer)
        })))
    }

    /// Serves the API to anyone who reaches it. Only for a console that
    /// only trusted operators can reach (a loopback port on their own
    /// machine); the host and cross-site checks still apply.
    pub fn allow_unauthenticated(self) -> Console<S, AuthChosen> {
        self.with_auth(ConsoleAuth::Unauthenticated)
    }

    fn with_auth(self, auth: ConsoleAuth) -> Console<S, AuthChosen> {
        Console {
            sender: self.sender,
            event_types: self.event_types,
            auth: AuthChosen(auth),
            refresh_seconds: self.refresh_seconds,
            allowed_hosts: self.allowed_hosts,
            #[cfg(feature = "inbox")]
            inbox: self.inbox,
        }
    }
}

impl<S: DeliveryStore, A> Console<S, A> {
    /// The event types operators can subscribe destinations to (replaces
    /// the built-in catalogue). Filters may also use `*` and `prefix.*`
    /// patterns that match at least one of them.
    pub fn event_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// How often the page refreshes its tables, in seconds (default 5;
    /// at least 1).
    pub fn refresh_seconds(mut self, seconds: u32) -> Self {
        self.refresh_seconds = seconds.max(1);
        self
    }

    /// The hosts the console answers for (replaces the default:
    /// `localhost`, `127.0.0.1` and `[::1]` on any port). Each is a name
    /// or an address (IPv6 in brackets), with `:port` to allow that port
    /// only. A request for another host gets `421`: this keeps pages on a
    /// DNS name rebound to the console's address away from it. Behind a
    /// reverse proxy, have it pass the `Host` the operators use on, and
    /// list that name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an empty list or an entry that
    /// is not a host.
    pub fn allowed_hosts<I, T>(mut self, hosts: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.allowed_hosts = AllowedHosts::parse(hosts)?;
        Ok(self)
    }

    /// Attaches `inbox`: the page gains an inbox view, and the API the
    /// [`/api/inbox/` routes](self#the-inbox), behind the same host,
    /// cross-site and authentication checks as the rest. The inbox's store
    /// type need not be the sender's.
    ///
    /// ```
    /// use webhook_guard::inbox::{Inbox, MemoryInboxStore};
    /// use webhook_guard::sender::{MemoryStore, Sender, console::Console};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sender = Sender::builder(MemoryStore::new()).build()?;
    /// // `SqliteInboxStore::open("inbox.db")?` in production.
    /// let inbox = Inbox::builder(MemoryInboxStore::new()).build().await?;
    /// let app: axum::Router = Console::new(sender)
    ///     .inbox(inbox)
    ///     .bearer_token("console-token")
    ///     .router();
    /// # let _ = app; Ok(()) }
    /// ```
    #[cfg(feature = "inbox")]
    #[cfg_attr(docsrs, doc(cfg(feature = "inbox")))]
    pub fn inbox<I: crate::inbox::InboxStore>(mut self, inbox: crate::inbox::Inbox<I>) -> Self {
        self.inbox = Some(Arc::new(inbox));
        self
    }

    /// The `/api/inbox/` routes: over the attached inbox, or answering that
    /// there is none.
    fn inbox_routes(&mut self) -> Router {
        #[cfg(feature = "inbox")]
        if let Some(attached) = self.inbox.take() {
            return inbox::routes(attached);
        }
        Router::new()
            .route("/api/inbox", any(no_inbox))
            .route("/api/inbox/{*rest}", any(no_inbox))
    }

    /// Builds the router: the page and the API behind the host and
    /// cross-site checks and the chosen authentication.
    pub fn router(mut self) -> Router
    where
        A: ChosenAuth,
    {
        let inbox_api = self.inbox_routes();
        let AuthChosen(auth) = self.auth.into_chosen();
        let state = Arc::new(ConsoleState {
            sender: self.sender,
            event_types: self.event_types,
            refresh_seconds: self.refresh_seconds,
            token_required: matches!(auth, ConsoleAuth::Bearer(_)),
        });
        let api = api_routes(&state).merge(inbox_api);
        let (api, app_layer) = match auth {
            ConsoleAuth::Bearer(layer) => (api.layer(layer), None),
            ConsoleAuth::AppLayer(wrap) => (api, Some(wrap)),
            ConsoleAuth::Unauthenticated => (api, None),
        };
        let app = Router::new()
            .route("/", get(show_page::<S>))
            .route("/assets/console.js", get(page::script))
            .route("/assets/console.css", get(page::style))
            .route("/assets/inbox.js", get(page::inbox_script))
            .route("/assets/health.js", get(health::script))
            .with_state(state)
            .merge(api);
        let app = match app_layer {
            Some(wrap) => wrap(app),
            None => app,
        };
        app.layer(axum::middleware::from_fn_with_state(
            Arc::new(self.allowed_hosts),
            guard::check_request,
        ))
    }
}

fn api_routes<S: DeliveryStore>(state: &Arc<ConsoleState<S>>) -> Router {
    Router::new()
        .route(
            "/api/destinations",
            get(list_destinations::<S>).post(create_destination::<S>),
        )
        .route(
            "/api/destinations/{id}",
            get(get_destination::<S>)
                .patch(update_destination::<S>)
                .delete(delete_destination::<S>),
        )
        .route("/api/destinations/{id}/test", post(test_destination::<S>))
        .route(
            "/api/destinations/{id}/rotate-secret",
            post(rotate_secret::<S>),
        )
        .route("/api/health", get(health::get_health::<S>))
        .route("/api/deliveries", get(list_deliveries::<S>))
        .route("/api/deliveries/{id}", get(get_delivery::<S>))
        .route("/api/deliveries/{id}/resend", post(resend_delivery::<S>))
        .route("/api/dead-letters", get(list_dead_letters::<S>))
        .route(
            "/api/dead-letters/replay-all",
            post(replay_all_dead_letters::<S>),
        )
        .route(
            "/api/dead-letters/{id}/replay",
            post(replay_dead_letter::<S>),
        )
        .with_state(Arc::clone(state))
}

struct ConsoleState<S> {
    sender: Sender<S>,
    event_types: Vec<String>,
    refresh_seconds: u32,
    token_required: bool,
}

type AppState<S> = State<Arc<ConsoleState<S>>>;

/// An error answer: a problem response.
struct ApiError(Problem);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl ApiError {
    /// A problem of `kind` saying `detail`.
    fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self(kind.problem(detail))
    }
}

impl From<SenderError> for ApiError {
    fn from(e: SenderError) -> Self {
        let kind = match &e {
            SenderError::InvalidDestination { .. } => ProblemKind::InvalidDestination,
            SenderError::ForbiddenAddress { .. } => ProblemKind::ForbiddenAddress,
            SenderError::Config(_) | SenderError::InvalidEvent { .. } => ProblemKind::InvalidInput,
            SenderError::DestinationNotFound { .. } | SenderError::DeliveryNotFound { .. } => {
                ProblemKind::NotFound
            }
            SenderError::WrongState { .. }
            | SenderError::DestinationDisabled { .. }
            | SenderError::DuplicateEvent { .. } => ProblemKind::WrongState,
            SenderError::Store(err) => {
                tracing::error!(error = %err, "console: the delivery store failed");
                return Self::new(
                    ProblemKind::StoreFailed,
                    "the delivery store failed; see the server log",
                );
            }
        };
        Self::new(kind, e.to_string())
    }
}

/// Any `/api/inbox/` request to a console without an inbox.
async fn no_inbox() -> ApiError {
    ApiError::new(
        ProblemKind::NotFound,
        "this console has no inbox attached (`Console::inbox`, features `console` and `inbox`)",
    )
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rejection| {
        let status = rejection.status();
        let kind = if status == StatusCode::UNPROCESSABLE_ENTITY {
            ProblemKind::InvalidInput
        } else {
            ProblemKind::MalformedRequest
        };
        ApiError(kind.problem_with(
            status,
            ProblemKind::MalformedRequest.title(),
            rejection.body_text(),
        ))
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|rejection| ApiError::new(ProblemKind::InvalidQuery, rejection.body_text()))
}

async fn show_page<S: DeliveryStore>(
    State(state): AppState<S>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
) -> Response {
    // The page calls the API relative to where the router is mounted.
    let full = original.path();
    let prefix = full
        .strip_suffix(uri.path())
        .unwrap_or_else(|| full.trim_end_matches('/'));
    let base = format!("{}/", prefix.trim_end_matches('/'));
    page::render(
        &base,
        &state.event_types,
        SCHEME_NAMES,
        state.refresh_seconds,
        state.token_required,
    )
}

/// A destination as the console shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DestinationView {
    #[serde(flatten)]
    destination: Destination,
    /// Paused by the circuit breaker right now.
    paused: bool,
}

fn view<S: DeliveryStore>(sender: &Sender<S>, destination: Destination) -> DestinationView {
    DestinationView {
        paused: sender.is_paused(&destination.id),
        destination,
    }
}

async fn list_destinations<S: DeliveryStore>(
    State(state): AppState<S>,
) -> Result<Json<Vec<DestinationView>>, ApiError> {
    let list = state.sender.destinations().await?;
    Ok(Json(
        list.into_iter().map(|d| view(&state.sender, d)).collect(),
    ))
}

async fn get_destination<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    let d = state.sender.destination(&id).await?;
    Ok(Json(view(&state.sender, d)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDestination {
    url: String,
    /// Absent: the native scheme.
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    /// Absent or `null`: every event.
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedDestination {
    destination: DestinationView,
    /// The signing secret; this is the only answer that contains it.
    secret: String,
    secret_generated: bool,
}

/// A fresh secret of 32 random bytes, written the way `scheme`'s receivers
/// are given one: `whsec_<base64>` for Standard Webhooks (whose libraries
/// decode it), 64 hex digits for the others (which key with the string).
fn generate_secret(scheme: &Scheme) -> String {
    let bytes = rand::random::<[u8; 32]>();
    match scheme.name() {
        SchemeName::Standard => {
            use base64::Engine as _;
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        }
        _ => hex::encode(bytes),
    }
}

/// The secret text to hand out (the given one, or a fresh one), whether it
/// was generated, and the key the sender signs with: the text read the way
/// `scheme`'s receivers read it.
fn secret_for(scheme: &Scheme, given: Option<String>) -> Result<(String, bool, Secret), ApiError> {
    let (text, generated) = match given {
        Some(text) => (text, false),
        None => (generate_secret(scheme), true),
    };
    let key = scheme
        .parse_secret(&text)
        .map_err(|e| ApiError::from(SenderError::from(e)))?;
    Ok((text, generated, key))
}

fn scheme_named(name: Option<&str>) -> Result<Scheme, ApiError> {
    let Some(name) = name else {
        return Ok(Scheme::native());
    };
    Scheme::from_name(name).map_err(|_| {
        let shown: String = name.chars().take(40).collect();
        ApiError::new(
            ProblemKind::InvalidScheme,
            format!("unknown scheme `{shown}`; accepted schemes: {SCHEME_NAMES}"),
        )
    })
}

fn event_filter(known: &[String], events: Option<Vec<String>>) -> Result<EventFilter, ApiError> {
    let invalid = |detail: String| ApiError::new(ProblemKind::InvalidEventFilter, detail);
    let Some(events) = events else {
        return Ok(EventFilter::All);
    };
    if events.is_empty() {
        return Err(invalid(
            "the event list is empty, so the destination would receive nothing; pick at least one event type, or leave `events` out for every event".into(),
        ));
    }
    for pattern in &events {
        let known_here = pattern == "*"
            || known.iter().any(|k| k == pattern)
            || pattern.strip_suffix(".*").is_some_and(|prefix| {
                known.iter().any(|k| {
                    k.strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
            });
        if !known_here {
            let shown: String = pattern.chars().take(80).collect();
            return Err(invalid(format!(
                "unknown event type `{shown}`; known types: {}",
                known.join(", ")
            )));
        }
    }
    Ok(EventFilter::Only(events))
}

async fn create_destination<S: DeliveryStore>(
    State(state): AppState<S>,
    body: Result<Json<CreateDestination>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedDestination>), ApiError> {
    let body = json_body(body)?;
    let scheme = scheme_named(body.scheme.as_deref())?;
    let events = event_filter(&state.event_types, body.events)?;
    let (secret, secret_generated, key) = secret_for(&scheme, body.secret)?;
    let mut new = NewDestination::new(body.url, key)
        .scheme(scheme)
        .events(events);
    if let Some(id) = body.id {
        new = new.id(id);
    }
    let destination = state.sender.add_destination(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedDestination {
            destination: view(&state.sender, destination),
            secret,
            secret_generated,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateDestination {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    disabled_reason: Option<String>,
    /// Absent: unchanged; `null`: every event; a list: only those.
    #[serde(default, deserialize_with = "present")]
    events: Option<Option<Vec<String>>>,
}

/// Reads a field that is present (even as `null`), so that `Option<Option<T>>`
/// tells an absent field (`None`) from a `null` one (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

async fn update_destination<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
    body: Result<Json<UpdateDestination>, JsonRejection>,
) -> Result<Json<DestinationView>, ApiError> {
    let body = json_body(body)?;
    if body.enabled.is_none() && body.events.is_none() {
        return Err(ApiError(ProblemKind::InvalidInput.problem_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing to change",
            "give `enabled` (true or false) and/or `events` (a list of event types, or null for every event)",
        )));
    }
    // Check everything before changing anything.
    let events = body
        .events
        .map(|events| event_filter(&state.event_types, events))
        .transpose()?;
    let mut d = None;
    if let Some(events) = events {
        d = Some(state.sender.set_event_filter(&id, events).await?);
    }
    match body.enabled {
        Some(true) => d = Some(state.sender.enable_destination(&id).await?),
        Some(false) => {
            let reason = body
                .disabled_reason
                .unwrap_or_else(|| "paused by an operator".to_owned());
            d = Some(state.sender.disable_destination(&id, reason).await?);
        }
        None => {}
    }
    let d = match d {
        Some(d) => d,
        None => state.sender.destination(&id).await?,
    };
    Ok(Json(view(&state.sender, d)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateSecret {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

/// How long the old secret keeps signing after a rotation by default.
const DEFAULT_ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

async fn rotate_secret<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
    body: Result<Json<RotateSecret>, JsonRejection>,
) -> Result<Json<CreatedDestination>, ApiError> {
    let body = json_body(body)?;
    // The new secret is read the way the destination's receivers read it.
    let current = state.sender.destination(&id).await?;
    let scheme = Scheme::for_name(current.scheme);
    let (secret, secret_generated, key) = secret_for(&scheme, body.secret)?;
    let overlap = body
        .overlap_seconds
        .map_or(DEFAULT_ROTATION_OVERLAP, std::time::Duration::from_secs);
    let d = state.sender.rotate_secret(&id, key, overlap).await?;
    Ok(Json(CreatedDestination {
        destination: view(&state.sender, d),
        secret,
        secret_generated,
    }))
}

async fn delete_destination<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sender.delete_destination(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_destination<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let d = state.sender.send_test_event(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

/// A delivery row: the delivery, its latest attempt and its destination's
/// URL (when the destination still exists).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryRow {
    #[serde(flatten)]
    delivery: Delivery,
    last_attempt: Option<DeliveryAttempt>,
    destination_url: Option<String>,
}

async fn rows<S: DeliveryStore>(
    sender: &Sender<S>,
    page: Page<Delivery>,
) -> Result<Page<DeliveryRow>, ApiError> {
    let destinations = sender.destinations().await?;
    let mut items = Vec::with_capacity(page.items.len());
    for delivery in page.items {
        let last_attempt = if delivery.attempts == 0 {
            None
        } else {
            sender
                .store()
                .attempts(&delivery.id)
                .await
                .map_err(SenderError::from)?
                .pop()
        };
        let destination_url = destinations
            .iter()
            .find(|d| d.id == delivery.destination_id)
            .map(|d| d.url.clone());
        items.push(DeliveryRow {
            delivery,
            last_attempt,
            destination_url,
        });
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

async fn list_deliveries<S: DeliveryStore>(
    State(state): AppState<S>,
    q: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Page<DeliveryRow>>, ApiError> {
    let q = query(q)?;
    let page = state.sender.deliveries(&q).await?;
    Ok(Json(rows(&state.sender, page).await?))
}

async fn get_delivery<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<Json<super::DeliveryHistory>, ApiError> {
    Ok(Json(state.sender.delivery_history(&id).await?))
}

async fn resend_delivery<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let d = state.sender.resend(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

async fn list_dead_letters<S: DeliveryStore>(
    State(state): AppState<S>,
    q: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Page<DeliveryRow>>, ApiError> {
    let q = query(q)?;
    let page = state.sender.dead_letters(&q).await?;
    Ok(Json(rows(&state.sender, page).await?))
}

async fn replay_dead_letter<S: DeliveryStore>(
    State(state): AppState<S>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let d = state.sender.replay_dead_letter(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

async fn replay_all_dead_letters<S: DeliveryStore>(
    State(state): AppState<S>,
) -> Result<(StatusCode, Json<super::ReplaySummary>), ApiError> {
    let summary = state.sender.replay_dead_letters(None, None).await?;
    Ok((StatusCode::ACCEPTED, Json(summary)))
}
