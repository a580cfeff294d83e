//! The console's inbox view (features `console` and `inbox`): the JSON API
//! under `/api/inbox/` over the [`Inbox`] given to
//! [`Console::inbox`](super::Console::inbox).
//!
//! The console is generic over the sender's store; the inbox has a store
//! type of its own. [`AttachedInbox`] erases it (an object-safe trait over
//! the few operations the view needs), so a console over any sender serves
//! an inbox over any store without a second type parameter.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::problems::ProblemKind;
use super::{ApiError, json_body, query};
use crate::inbox::{
    Inbox, InboxCounts, InboxEntry, InboxQuery, InboxState, InboxStore, InboxStoreError,
    ReplaySelection,
};
use crate::scheme::SchemeName;
use crate::sender::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};

/// The operations of an [`Inbox`] the console uses, whatever its store.
pub(super) trait AttachedInbox: Send + Sync + 'static {
    /// Now on the inbox's clock, unix ms.
    fn now_millis(&self) -> i64;
    /// [`Inbox::counts`].
    fn counts(&self) -> BoxFuture<'_, Result<InboxCounts, InboxStoreError>>;
    /// [`Inbox::event`].
    fn event<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InboxEntry>, InboxStoreError>>;
    /// [`Inbox::events`].
    fn events<'a>(
        &'a self,
        query: &'a InboxQuery,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, InboxStoreError>>;
    /// [`Inbox::replay`].
    fn replay<'a>(
        &'a self,
        selection: &'a ReplaySelection,
    ) -> BoxFuture<'a, Result<u64, InboxStoreError>>;
}

impl<I: InboxStore> AttachedInbox for Inbox<I> {
    fn now_millis(&self) -> i64 {
        Inbox::now_millis(self)
    }
    fn counts(&self) -> BoxFuture<'_, Result<InboxCounts, InboxStoreError>> {
        Box::pin(Inbox::counts(self))
    }
    fn event<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InboxEntry>, InboxStoreError>> {
        Box::pin(Inbox::event(self, id))
    }
    fn events<'a>(
        &'a self,
        query: &'a InboxQuery,
    ) -> BoxFuture<'a, Result<Vec<InboxEntry>, InboxStoreError>> {
        Box::pin(Inbox::events(self, query))
    }
    fn replay<'a>(
        &'a self,
        selection: &'a ReplaySelection,
    ) -> BoxFuture<'a, Result<u64, InboxStoreError>> {
        Box::pin(Inbox::replay(self, selection))
    }
}

/// The inbox a console serves.
pub(super) type SharedInbox = Arc<dyn AttachedInbox>;

type InboxApp = State<SharedInbox>;

impl From<InboxStoreError> for ApiError {
    fn from(e: InboxStoreError) -> Self {
        tracing::error!(error = %e, "console: the inbox store failed");
        Self(ProblemKind::StoreFailed.problem_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "Inbox store unavailable",
            "the inbox store failed; see the server log",
        ))
    }
}

/// The `/api/inbox/` routes over `inbox`.
pub(super) fn routes(inbox: SharedInbox) -> Router {
    Router::new()
        .route("/api/inbox/counts", get(counts))
        .route("/api/inbox/events", get(list_events))
        .route("/api/inbox/events/{id}", get(get_event))
        .route("/api/inbox/dead-letters", get(list_dead_letters))
        .route("/api/inbox/dead-letters/replay-all", post(replay_all))
        .route(
            "/api/inbox/dead-letters/replay-between",
            post(replay_between),
        )
        .route("/api/inbox/dead-letters/{id}/replay", post(replay_one))
        .with_state(inbox)
}

/// An inbox event as the console shows it: everything but the body, as
/// the deliveries API shows no delivery body either.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InboxEventView {
    seq: i64,
    id: String,
    scheme: SchemeName,
    event_type: Option<String>,
    ordering_key: Option<String>,
    /// The signed timestamp, unix seconds.
    signed_at: Option<i64>,
    received_at_ms: i64,
    state: InboxState,
    attempts: u32,
    next_attempt_at_ms: Option<i64>,
    lease_until_ms: Option<i64>,
    last_error: Option<String>,
    finished_at_ms: Option<i64>,
    /// The body's length in bytes.
    body_bytes: usize,
    /// The W3C `traceparent` the event came with, when it had a
    /// well-formed one: the trace its processing continues.
    traceparent: Option<String>,
}

impl InboxEventView {
    fn of(e: InboxEntry, now_ms: i64) -> Self {
        Self {
            state: e.state_at(now_ms),
            body_bytes: e.body.len(),
            traceparent: e.traceparent.map(|t| t.as_str().to_owned()),
            seq: e.seq,
            id: e.id,
            scheme: e.scheme,
            event_type: e.event_type,
            ordering_key: e.ordering_key,
            signed_at: e.signed_at,
            received_at_ms: e.received_at_ms,
            attempts: e.attempts,
            next_attempt_at_ms: e.next_attempt_at_ms,
            lease_until_ms: e.lease_until_ms,
            last_error: e.last_error,
            finished_at_ms: e.finished_at_ms,
        }
    }
}

async fn counts(State(inbox): InboxApp) -> Result<Json<InboxCounts>, ApiError> {
    Ok(Json(inbox.counts().await?))
}

/// `?state=&limit=&beforeSeq=`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    state: Option<InboxState>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before_seq: Option<i64>,
}

/// How many events one page may read past those that do not match its
/// state (a `processing` page in a long `received` queue) before it
/// answers with what it has and a cursor to read on from.
const MAX_SCANNED: usize = 10_000;

/// One page, newest first, of the events in `state` (any for `None`)
/// older than `before_seq`. The store selects by stored status; the
/// states that split `pending` are told apart here, so a page reads on
/// until it is full, the history ends, or [`MAX_SCANNED`] rows were read.
async fn page_of(
    inbox: &dyn AttachedInbox,
    state: Option<InboxState>,
    before_seq: Option<i64>,
    limit: Option<usize>,
) -> Result<Page<InboxEventView>, ApiError> {
    let size = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    let now = inbox.now_millis();
    let mut q = InboxQuery::new(state.map(InboxState::status), size + 1);
    q.before_seq = before_seq;
    let mut items = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = inbox.events(&q).await?;
        let ended = batch.len() < q.limit;
        scanned += batch.len();
        for e in batch {
            q.before_seq = Some(e.seq);
            if state.is_none_or(|s| e.state_at(now) == s) {
                items.push(InboxEventView::of(e, now));
                if items.len() > size {
                    items.truncate(size);
                    let next_cursor = items.last().map(|e| e.seq);
                    return Ok(Page { items, next_cursor });
                }
            }
        }
        if ended {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        }
        if scanned >= MAX_SCANNED {
            return Ok(Page {
                items,
                next_cursor: q.before_seq,
            });
        }
    }
}

async fn list_events(
    State(inbox): InboxApp,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Page<InboxEventView>>, ApiError> {
    let q = query(q)?;
    Ok(Json(
        page_of(inbox.as_ref(), q.state, q.before_seq, q.limit).await?,
    ))
}

/// `?limit=&beforeSeq=`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeadLettersQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before_seq: Option<i64>,
}

async fn list_dead_letters(
    State(inbox): InboxApp,
    q: Result<Query<DeadLettersQuery>, QueryRejection>,
) -> Result<Json<Page<InboxEventView>>, ApiError> {
    let q = query(q)?;
    let state = Some(InboxState::DeadLettered);
    Ok(Json(
        page_of(inbox.as_ref(), state, q.before_seq, q.limit).await?,
    ))
}

/// The event `id`, or a `404` that names it.
async fn stored(inbox: &dyn AttachedInbox, id: &str) -> Result<InboxEntry, ApiError> {
    inbox.event(id).await?.ok_or_else(|| {
        let shown: String = id.chars().take(200).collect();
        ApiError::new(
            ProblemKind::NotFound,
            format!("the inbox holds no event with id `{shown}`"),
        )
    })
}

async fn get_event(
    State(inbox): InboxApp,
    Path(id): Path<String>,
) -> Result<Json<InboxEventView>, ApiError> {
    let e = stored(inbox.as_ref(), &id).await?;
    Ok(Json(InboxEventView::of(e, inbox.now_millis())))
}

/// What a replay did.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Replayed {
    /// How many dead letters are pending again.
    replayed: u64,
}

async fn replay_one(
    State(inbox): InboxApp,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let e = stored(inbox.as_ref(), &id).await?;
    let replayed = inbox.replay(&ReplaySelection::One(id)).await?;
    if replayed == 0 {
        return Err(ApiError::new(
            ProblemKind::WrongState,
            format!(
                "event `{}` is {}, not a dead letter; only dead letters can be replayed",
                e.id,
                e.state_at(inbox.now_millis())
            ),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}

async fn replay_all(State(inbox): InboxApp) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let replayed = inbox.replay(&ReplaySelection::All).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}

/// `{sinceMs, untilMs}`: the dead letters dead-lettered in `[since, until)`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayBetween {
    since_ms: i64,
    until_ms: i64,
}

async fn replay_between(
    State(inbox): InboxApp,
    body: Result<Json<ReplayBetween>, JsonRejection>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let ReplayBetween { since_ms, until_ms } = json_body(body)?;
    if since_ms >= until_ms {
        return Err(ApiError::new(
            ProblemKind::InvalidInput,
            format!(
                "`sinceMs` ({since_ms}) must be before `untilMs` ({until_ms}): the range is [sinceMs, untilMs) in unix ms"
            ),
        ));
    }
    let selection = ReplaySelection::Between { since_ms, until_ms };
    let replayed = inbox.replay(&selection).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}
