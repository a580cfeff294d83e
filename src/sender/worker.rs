//! The delivery loop: claim due deliveries, sign, POST, record, move on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::builder::Settings;
use super::delivery::{Delivery, DeliveryAttempt, ErrorClass};
use super::destination::Destination;
use super::metric_names;
use super::operational::OperationalEvent;
use super::ssrf::{AddressPolicy, DestinationRefused, NOT_PUBLIC, literal_ip, log_refused_literal};
use super::state::Inner;
use super::store::{CircuitChange, DeliveryStore, NextStep};
use super::telemetry;
use crate::durable::backoff::OutageBackoff;
use crate::durable::retry::{RetryPolicy, parse_retry_after};
use crate::replay::Clock;
use crate::scheme::{Message, Scheme};
use crate::secret::SecretSet;
use crate::trace_context::TRACEPARENT;

/// A destination with what each attempt needs, worked out once per
/// destination cache refresh instead of once per attempt.
pub(crate) struct Target {
    pub(crate) destination: Destination,
    signer: Result<Signer, (ErrorClass, String)>,
}

struct Signer {
    url: reqwest::Url,
    scheme: Scheme,
    secrets: SecretSet,
}

impl Target {
    pub(crate) fn new(destination: Destination) -> Self {
        let signer = Self::signer(&destination);
        Self {
            destination,
            signer,
        }
    }

    fn signer(destination: &Destination) -> Result<Signer, (ErrorClass, String)> {
        let url = reqwest::Url::parse(&destination.url).map_err(|e| {
            (
                ErrorClass::Signing,
                format!("the destination URL is invalid: {e}"),
            )
        })?;
        let scheme = Scheme::for_name(destination.scheme);
        let secrets = SecretSet::new(destination.secrets.iter().cloned())
            .map_err(|e| (ErrorClass::Signing, e.to_string()))?;
        Ok(Signer {
            url,
            scheme,
            secrets,
        })
    }
}

/// The header naming the event type on every delivery.
static EVENT_HEADER: http::HeaderName = http::HeaderName::from_static("x-webhook-event");

pub(crate) enum Gate {
    /// Attempt now, holding the destination's concurrency permit (none when
    /// the store enforces the limit fleet-wide: the claim was the gate).
    Go(Option<OwnedSemaphorePermit>),
    /// Come back at this time without an attempt.
    Later(i64),
}

impl<S: DeliveryStore> Inner<S> {
    /// Whether an attempt to this destination may go now: its circuit and
    /// its concurrency limit both allow it. A store that coordinates the
    /// fleet checked both when it leased the delivery.
    fn gate(&self, destination_id: &str, now_ms: i64) -> Gate {
        if self.store.coordinates_fleet() {
            return Gate::Go(None);
        }
        if let Err(at) = self.breaker.admit(destination_id, now_ms) {
            return Gate::Later(at);
        }
        let gate = {
            let mut gates = lock(&self.gates);
            match gates.get(destination_id) {
                Some(gate) => Arc::clone(gate),
                None => Arc::clone(
                    gates
                        .entry(destination_id.to_owned())
                        .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_destination))),
                ),
            }
        };
        match gate.try_acquire_owned() {
            Ok(permit) => Gate::Go(Some(permit)),
            Err(_) => {
                self.breaker.withdraw(destination_id);
                Gate::Later(now_ms + self.config.busy_delay_ms)
            }
        }
    }
}

/// The lease a worker holds on a delivery it was handed or claimed: the
/// fencing token for every store call that moves the delivery on.
fn lease_of(delivery: &Delivery) -> i64 {
    // Every delivery a worker holds was created or claimed with a lease;
    // `i64::MIN` matches none, so a missing one moves nothing.
    delivery.lease_until_ms.unwrap_or(i64::MIN)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the handle asked to stop, or was dropped.
pub(crate) fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

fn spawn_delivery<S: DeliveryStore>(
    tasks: &mut JoinSet<()>,
    inner: &Arc<Inner<S>>,
    delivery: Delivery,
    slot: OwnedSemaphorePermit,
) {
    let inner = Arc::clone(inner);
    tasks.spawn(async move {
        let span = tracing::info_span!(
            "webhook.delivery",
            delivery_id = %delivery.id,
            event_id = %delivery.event_id,
            destination = %delivery.destination_id,
            trace_id = tracing::field::Empty,
        );
        if let Some(tp) = &delivery.traceparent {
            span.record("trace_id", tracing::field::display(tp.trace_id()));
        }
        run_delivery(&inner, delivery, slot).instrument(span).await;
    });
}

/// Runs until the handle says stop (or is dropped), then waits for the
/// attempts in flight. Deliveries come from two places: claims of due ones
/// from the store, and freshly published ones that `publish` leased and
/// handed over directly. Both wait in one queue for an attempt slot.
///
/// A claim is a store round trip, so the loop claims only when there may be
/// something to claim (at start, when woken by a publish that could not
/// hand over, a resend or a replay, on each poll tick for retries falling
/// due and leases expiring, and again after a full batch) and only while
/// fewer than `max_in_flight` deliveries wait: under load it claims whole
/// batches ahead instead of one delivery per freed slot. While claims fail
/// (the store is down), it waits longer after each failure, from 100 ms up
/// to 30 s, instead of claiming on every tick.
pub(crate) async fn dispatch<S: DeliveryStore>(
    inner: Arc<Inner<S>>,
    mut stop: watch::Receiver<bool>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
) {
    let slots = Arc::clone(&inner.slots);
    let mut tasks = JoinSet::new();
    let poll = inner.config.poll_interval;
    let low_water = inner.config.max_in_flight;
    let mut ready: VecDeque<Delivery> = VecDeque::new();
    let mut want_claim = true;
    let mut next_poll = tokio::time::Instant::now() + poll;
    // While the store fails, no claim before this (see `OutageBackoff`).
    let mut claim_after = tokio::time::Instant::now();
    let mut outage = OutageBackoff::new("claiming due deliveries");
    'run: loop {
        while tasks.try_join_next().is_some() {}
        if stopping(&stop) {
            break;
        }
        while let Ok(delivery) = inbox.try_recv() {
            inner.release_handoff(1);
            ready.push_back(delivery);
        }
        start_ready(&mut tasks, &inner, &mut ready);
        if tokio::time::Instant::now() >= next_poll {
            want_claim = true;
            next_poll = tokio::time::Instant::now() + poll;
        }
        if want_claim && ready.len() < low_water && tokio::time::Instant::now() >= claim_after {
            let room = (2 * low_water - ready.len()).min(inner.config.batch_size);
            match claim(&inner, room, &mut outage).await {
                Ok(batch) => {
                    // A full batch may have left more behind: claim again.
                    want_claim = !batch.is_empty() && batch.len() == room;
                    ready.extend(batch);
                }
                Err(wait) => {
                    want_claim = false;
                    claim_after = tokio::time::Instant::now() + wait;
                    next_poll = next_poll.max(claim_after);
                }
            }
            continue;
        }
        tokio::select! {
            Some(delivery) = inbox.recv() => {
                inner.release_handoff(1);
                ready.push_back(delivery);
            }
            slot = Arc::clone(&slots).acquire_owned(), if !ready.is_empty() => {
                let Ok(slot) = slot else { break 'run };
                if let Some(delivery) = ready.pop_front() {
                    spawn_delivery(&mut tasks, &inner, delivery, slot);
                }
            }
            () = inner.wake.notified() => want_claim = true,
            () = inner.store.wait_for_work(
                next_poll.saturating_duration_since(tokio::time::Instant::now()),
            ) => want_claim = true,
            _ = stop.changed() => {}
        }
    }
    release(&inner, inbox, ready).await;
    while tasks.join_next().await.is_some() {}
}

/// Starts as many ready deliveries as there are free attempt slots.
fn start_ready<S: DeliveryStore>(
    tasks: &mut JoinSet<()>,
    inner: &Arc<Inner<S>>,
    ready: &mut VecDeque<Delivery>,
) {
    while !ready.is_empty() {
        let Ok(slot) = Arc::clone(&inner.slots).try_acquire_owned() else {
            break;
        };
        if let Some(delivery) = ready.pop_front() {
            spawn_delivery(tasks, inner, delivery, slot);
        }
    }
}

/// Claims up to `room` due deliveries. When the store fails: how long to
/// wait before claiming again, from `outage` (which logs the failure).
async fn claim<S: DeliveryStore>(
    inner: &Inner<S>,
    room: usize,
    outage: &mut OutageBackoff,
) -> Result<Vec<Delivery>, Duration> {
    let now = inner.clock.now_millis();
    let claimed = inner
        .store
        .claim_due(now, room, now.saturating_add(inner.config.lease_ms))
        .await;
    match claimed {
        Ok(batch) => {
            outage.succeeded();
            Ok(batch)
        }
        Err(e) => Err(outage.failed(&e)),
    }
}

/// On stop: hands nothing more over, and releases what was handed over or
/// claimed but not started.
async fn release<S: DeliveryStore>(
    inner: &Inner<S>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
    mut ready: VecDeque<Delivery>,
) {
    *lock(&inner.direct) = None;
    inbox.close();
    while let Ok(delivery) = inbox.try_recv() {
        inner.release_handoff(1);
        ready.push_back(delivery);
    }
    for delivery in ready {
        let now = inner.clock.now_millis();
        if let Err(e) = inner
            .store
            .reschedule(&delivery.id, lease_of(&delivery), now)
            .await
        {
            tracing::error!(error = %e, "releasing a delivery failed; its lease will expire");
        }
    }
}

/// What one attempt came to, as far as choosing the next step goes.
#[derive(Debug, Clone, PartialEq)]
enum AttemptOutcome {
    /// A 2xx answer.
    Delivered,
    /// A 410 Gone answer: the endpoint is no more.
    Gone,
    /// Any other status, or no answer at all.
    Failed {
        class: ErrorClass,
        /// The status of the answer, if one came.
        status: Option<u16>,
        /// The answer's `Retry-After`, uncapped.
        retry_after: Option<Duration>,
        /// What went wrong, for the dead letter reason.
        error: String,
    },
}

/// Where an attempt leaves its delivery; [`NextStep`] before the clock is
/// read, plus whether the destination is to be disabled.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Done.
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Give up with this reason.
    DeadLetter(String),
    /// Disable the destination, then give up with this reason.
    DisableAndDeadLetter(String),
}

/// The dead letter reason of a delivery whose endpoint answered 410 Gone.
const GONE_REASON: &str = "the endpoint answered 410 Gone: destination disabled";

/// Chooses what follows attempt number `attempt` (1-based) that came to
/// `outcome`: no I/O, no clock. A signing failure is permanent; any other
/// failure is retried on `policy`'s schedule (a `Retry-After` replaces the
/// scheduled delay, capped) until it is exhausted.
fn next_step(outcome: &AttemptOutcome, attempt: u32, policy: &RetryPolicy) -> Step {
    match outcome {
        AttemptOutcome::Delivered => Step::Delivered,
        AttemptOutcome::Gone => Step::DisableAndDeadLetter(GONE_REASON.to_owned()),
        AttemptOutcome::Failed {
            class: ErrorClass::Signing,
            error,
            ..
        } => Step::DeadLetter(error.clone()),
        AttemptOutcome::Failed {
            retry_after, error, ..
        } => match policy.delay_after(attempt, *retry_after) {
            Some(wait) => Step::RetryAfter(wait),
            None => Step::DeadLetter(format!("gave up after {attempt} attempt(s): {error}")),
        },
    }
}

/// Runs one attempt of a delivery and records it. `slot` bounds the
/// attempts in flight: it is given back as soon as the HTTP exchange ends,
/// so waiting for the record's commit does not hold back the next attempt
/// (the delivery's lease keeps it from being claimed meanwhile).
async fn run_delivery<S: DeliveryStore>(
    inner: &Inner<S>,
    delivery: Delivery,
    slot: OwnedSemaphorePermit,
) {
    let now = inner.clock.now_millis();
    let Some(target) = load_target(inner, &delivery, now).await else {
        return;
    };
    let permit = match inner.gate(&target.destination.id, now) {
        Gate::Go(permit) => permit,
        Gate::Later(at) => {
            give_back(inner, &delivery, at).await;
            return;
        }
    };
    let Some(budget) = attempt_budget(&inner.config, lease_of(&delivery), now) else {
        // Too little of the lease is left to send and hear back before
        // another claim may take the delivery: give it back unsent, so a
        // fresh claim (here or on another node) sends it under a full lease.
        drop(permit);
        give_back(inner, &delivery, now).await;
        return;
    };
    let number = delivery.attempts.saturating_add(1);
    let span = tracing::info_span!(
        "webhook.attempt",
        attempt = number,
        status = tracing::field::Empty,
        error_class = tracing::field::Empty,
    );
    let (attempt, outcome) = attempt_once(inner, &target, &delivery, number, budget)
        .instrument(span.clone())
        .await;
    drop(permit);
    drop(slot);
    if let Some(code) = attempt.status_code {
        span.record("status", code);
    }
    if let Some(class) = attempt.error_class {
        span.record("error_class", class.as_str());
    }
    settle(inner, &target, &delivery, &attempt, outcome).await;
    if inner.store.coordinates_fleet() {
        // The recorded attempt freed a slot of the fleet-wide limit (or
        // closed a circuit): claim again rather than wait for the poll.
        inner.wake.notify_one();
    }
}

/// Moves a delivery on after its attempt: counts it towards the circuit,
/// chooses and carries out the next step, records it, then reports what
/// changed to the operator (after it is stored).
async fn settle<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    attempt: &DeliveryAttempt,
    outcome: AttemptOutcome,
) {
    let id = &target.destination.id;
    let finished = inner.clock.now_millis();
    let mut events = Vec::new();
    if !inner.store.coordinates_fleet() {
        // Otherwise `record_attempt` counts it towards the shared circuit.
        let change = inner.breaker.record(id, attempt.succeeded(), finished);
        events.extend(change.map(|c| telemetry::circuit_changed(id, c)));
    }
    telemetry::count_attempt(&inner.labels, id, attempt);
    let step = next_step(&outcome, attempt.attempt, &inner.config.retry);
    let next = apply_step(inner, target, delivery, step, finished, &mut events).await;
    if let Some(change) = record(inner, delivery, attempt, &next).await {
        events.push(telemetry::circuit_changed(id, change));
    }
    if let NextStep::DeadLetter(reason) = &next {
        events.push(OperationalEvent::dead_lettered(
            delivery,
            attempt.attempt,
            reason,
        ));
    }
    inner.report(&events);
}

/// Releases a held delivery without an attempt, due again at `at_ms`;
/// should the store fail, the lease expires and a claim takes it.
async fn give_back<S: DeliveryStore>(inner: &Inner<S>, delivery: &Delivery, at_ms: i64) {
    if let Err(e) = inner
        .store
        .reschedule(&delivery.id, lease_of(delivery), at_ms)
        .await
    {
        tracing::error!(error = %e, "rescheduling failed; the lease will expire");
    }
}

/// The delivery's destination, ready to attempt; `None` when there is
/// nothing to attempt now (deleted: dead-lettered; disabled: held; not
/// loadable: left to its lease).
async fn load_target<S: DeliveryStore>(
    inner: &Inner<S>,
    delivery: &Delivery,
    now: i64,
) -> Option<Arc<Target>> {
    let target = match inner.find_destination(&delivery.destination_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let reason = "the destination was deleted";
            if let Err(e) = inner
                .store
                .dead_letter(&delivery.id, lease_of(delivery), now, reason)
                .await
            {
                tracing::error!(error = %e, "dead-lettering failed");
            }
            metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
            let attempts = delivery.attempts;
            inner.report(&[OperationalEvent::dead_lettered(delivery, attempts, reason)]);
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "loading the destination failed; the lease will expire");
            return None;
        }
    };
    if !target.destination.enabled {
        // Disabled after the claim: hold it until re-enabled.
        let _ = inner
            .store
            .reschedule(
                &delivery.id,
                lease_of(delivery),
                now + inner.config.busy_delay_ms,
            )
            .await;
        return None;
    }
    Some(target)
}

/// Carries out `step` around the store and metrics: disables the
/// destination on 410 (noting it in `events` when this attempt was the one
/// that disabled it), counts the step, and turns it into the [`NextStep`]
/// to record (a retry is due `finished` plus the wait).
async fn apply_step<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    step: Step,
    finished: i64,
    events: &mut Vec<OperationalEvent>,
) -> NextStep {
    match step {
        Step::Delivered => {
            metrics::counter!(metric_names::DELIVERED).increment(1);
            metrics::histogram!(metric_names::DELIVERY_SECONDS)
                .record(finished.saturating_sub(delivery.created_at_ms).max(0) as f64 / 1000.0);
            NextStep::Delivered
        }
        Step::RetryAfter(wait) => {
            metrics::counter!(metric_names::RETRIED).increment(1);
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            NextStep::RetryAt(finished.saturating_add(wait_ms))
        }
        Step::DisableAndDeadLetter(reason) => {
            let id = &target.destination.id;
            match inner.store.disable_destination(id, &reason).await {
                Ok(true) => {
                    tracing::warn!(destination = %id, "410 Gone: destination disabled");
                    metrics::counter!(metric_names::DESTINATIONS_DISABLED).increment(1);
                    events.push(OperationalEvent::DestinationDisabled {
                        id: id.clone(),
                        reason: reason.clone(),
                    });
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "disabling the destination failed"),
            }
            inner.forget_destinations();
            metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
            NextStep::DeadLetter(reason)
        }
        Step::DeadLetter(reason) => {
            metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
            NextStep::DeadLetter(reason)
        }
    }
}

/// Logs the attempt, stores it with `next`, and tells the observer;
/// returns the change of the fleet-wide circuit the store made.
async fn record<S: DeliveryStore>(
    inner: &Inner<S>,
    delivery: &Delivery,
    attempt: &DeliveryAttempt,
    next: &NextStep,
) -> Option<CircuitChange> {
    tracing::info!(
        attempt = attempt.attempt,
        status = attempt.status_code,
        error = attempt.error.as_deref(),
        next = ?next,
        "delivery attempt recorded"
    );
    let change = inner
        .store
        .record_attempt(attempt, lease_of(delivery), next)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "recording the attempt failed; the lease will expire");
            None
        });
    if let Some(observer) = &inner.observer {
        observer(attempt, next);
    }
    change
}

/// Sorts a finished attempt into an [`AttemptOutcome`].
fn outcome_of(attempt: &DeliveryAttempt, retry_after: Option<Duration>) -> AttemptOutcome {
    match attempt.error_class {
        None => AttemptOutcome::Delivered,
        Some(_) if attempt.status_code == Some(http::StatusCode::GONE.as_u16()) => {
            AttemptOutcome::Gone
        }
        Some(class) => AttemptOutcome::Failed {
            class,
            status: attempt.status_code,
            retry_after,
            error: attempt
                .error
                .clone()
                .unwrap_or_else(|| "unknown error".to_owned()),
        },
    }
}

async fn attempt_once<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    number: u32,
    budget: Duration,
) -> (DeliveryAttempt, AttemptOutcome) {
    let started_at_ms = inner.clock.now_millis();
    let started = Instant::now();
    let mut attempt = DeliveryAttempt::new(delivery.id.clone(), number, started_at_ms);
    let mut retry_after = None;
    match build_request(inner, target, delivery, started_at_ms) {
        Err((class, msg)) => {
            attempt.error_class = Some(class);
            attempt.error = Some(msg);
            // Not timed: nothing was sent.
            let outcome = outcome_of(&attempt, None);
            return (attempt, outcome);
        }
        Ok(mut request) => {
            *request.timeout_mut() = Some(budget);
            match inner.client.execute(request).await {
                Ok(response) => retry_after = read_response(inner, response, &mut attempt).await,
                Err(e) => {
                    let (class, msg) = classify(e);
                    attempt.error_class = Some(class);
                    attempt.error = Some(msg);
                }
            }
        }
    }
    attempt.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = outcome_of(&attempt, retry_after);
    (attempt, outcome)
}

/// The least time an attempt is worth starting with, ms.
const MIN_ATTEMPT_MS: i64 = 50;

/// How long an attempt may take at `now_ms` under the lease `lease_until_ms`:
/// the request timeout, cut so the exchange ends a margin before the lease
/// does (a quarter of the lease, at most 1 s, for clock differences between
/// nodes and the time to record the outcome). `None` when less than
/// [`MIN_ATTEMPT_MS`] would be left: the delivery should not be sent under
/// this lease. No I/O, no clock.
fn attempt_budget(config: &Settings, lease_until_ms: i64, now_ms: i64) -> Option<Duration> {
    let margin = (config.lease_ms / 4).clamp(0, 1_000);
    let left = lease_until_ms.saturating_sub(now_ms).saturating_sub(margin);
    let budget = left.min(config.timeout_ms);
    (budget >= MIN_ATTEMPT_MS).then(|| Duration::from_millis(budget.unsigned_abs()))
}

/// Reads an answer into `attempt`: its status, up to the configured limit
/// of its body, and the error of a non-2xx. Returns its `Retry-After`.
async fn read_response<S: DeliveryStore>(
    inner: &Inner<S>,
    mut response: reqwest::Response,
    attempt: &mut DeliveryAttempt,
) -> Option<Duration> {
    let status = response.status();
    attempt.status_code = Some(status.as_u16());
    let retry_after = if status.is_success() {
        None
    } else {
        response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, inner.clock.now_millis()))
    };
    let limit = inner.config.response_body_limit;
    let mut body = Vec::new();
    let mut read_error = None;
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    if !body.is_empty() {
        attempt.response_body = Some(String::from_utf8_lossy(&body).into_owned());
    }
    if !status.is_success() {
        attempt.error_class = Some(ErrorClass::Status);
        attempt.error = Some(format!("the endpoint answered {status}"));
    } else if let Some(e) = read_error {
        // A 2xx is a 2xx even if the rest of its body went missing.
        tracing::debug!(error = %e.without_url(), "reading the 2xx body failed");
    }
    retry_after
}

fn build_request<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    now_ms: i64,
) -> Result<reqwest::Request, (ErrorClass, String)> {
    let mut request = signed_request(
        &inner.policy,
        target,
        &delivery.event_id,
        &delivery.event_type,
        &delivery.body,
        now_ms,
    )?;
    // Unsigned, like the event type: it joins traces, it proves nothing.
    if let Some(tp) = &delivery.traceparent {
        request.headers_mut().insert(TRACEPARENT, tp.header_value());
    }
    Ok(request)
}

/// A POST of `body` to the target, signed at `now_ms` under `id`, with
/// `event_type` in `X-Webhook-Event`; a literal address the policy refuses
/// is refused here (host names are checked when they resolve).
pub(crate) fn signed_request(
    policy: &AddressPolicy,
    target: &Target,
    id: &str,
    event_type: &str,
    body: &Bytes,
    now_ms: i64,
) -> Result<reqwest::Request, (ErrorClass, String)> {
    let Signer {
        url,
        scheme,
        secrets,
    } = target.signer.as_ref().map_err(Clone::clone)?;
    if let Some(ip) = literal_ip(url) {
        policy.check(ip).map_err(|why| {
            log_refused_literal(&why);
            (
                ErrorClass::Blocked,
                format!("refused by the SSRF guard: {NOT_PUBLIC}"),
            )
        })?;
    }
    let headers = scheme
        .sign(secrets, &Message::new(id, now_ms.div_euclid(1000), body))
        .map_err(|e| (ErrorClass::Signing, format!("cannot sign: {e}")))?;
    let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
    *request.body_mut() = Some(reqwest::Body::from(body.clone()));
    let h = request.headers_mut();
    h.extend(headers);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(event_type) {
        h.insert(&EVENT_HEADER, v);
    }
    Ok(request)
}

/// Sorts a transport failure into a class, with a message that carries no
/// URL (query strings may hold tokens).
fn classify(e: reqwest::Error) -> (ErrorClass, String) {
    let e = e.without_url();
    let mut chain = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut class = None;
    while let Some(err) = source {
        if err.is::<DestinationRefused>() {
            class.get_or_insert(ErrorClass::Blocked);
        }
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&err.to_string());
        source = err.source();
    }
    let lower = chain.to_ascii_lowercase();
    let class = class.unwrap_or(if e.is_timeout() {
        ErrorClass::Timeout
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorClass::Tls
    } else if e.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::Io
    });
    (class, chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Retries after 1 s and 2 s (three attempts), no jitter, `Retry-After`
    /// capped at 10 s.
    fn policy() -> RetryPolicy {
        RetryPolicy::new([SECOND, 2 * SECOND])
            .jitter(0.0)
            .unwrap()
            .retry_after_cap(10 * SECOND)
    }

    /// An attempt as `attempt_once` leaves it: a status and the `Status`
    /// class for an answer other than 2xx, or a transport class alone.
    fn attempt(status: Option<u16>, class: Option<ErrorClass>) -> DeliveryAttempt {
        DeliveryAttempt {
            delivery_id: "d".into(),
            attempt: 1,
            started_at_ms: 0,
            duration_ms: 0,
            status_code: status,
            error_class: class,
            error: class.map(|c| format!("failed: {}", c.as_str())),
            response_body: None,
        }
    }

    fn status(code: u16) -> DeliveryAttempt {
        let ok = (200..300).contains(&code);
        attempt(Some(code), (!ok).then_some(ErrorClass::Status))
    }

    fn retry(secs: u64) -> Step {
        Step::RetryAfter(Duration::from_secs(secs))
    }

    fn gave_up(n: u32, class: &str) -> Step {
        Step::DeadLetter(format!("gave up after {n} attempt(s): failed: {class}"))
    }

    #[test]
    fn an_attempt_never_outlives_its_lease() {
        let config = Settings {
            lease_ms: 2_000,
            timeout_ms: 15_000,
            ..Settings::default()
        };
        // A fresh 2 s lease: the timeout is cut to the lease less 500 ms.
        assert_eq!(
            attempt_budget(&config, 12_000, 10_000),
            Some(Duration::from_millis(1_500))
        );
        // Nearly over, or over: not sent under this lease.
        assert_eq!(attempt_budget(&config, 10_540, 10_000), None);
        assert_eq!(attempt_budget(&config, 9_000, 10_000), None);
        // A long lease keeps the request timeout and a margin of 1 s.
        let config = Settings {
            lease_ms: 50_000,
            ..config
        };
        assert_eq!(
            attempt_budget(&config, 60_000, 10_000),
            Some(Duration::from_millis(15_000))
        );
        assert_eq!(
            attempt_budget(&config, 20_000, 10_000),
            Some(Duration::from_millis(9_000))
        );
    }

    #[test]
    fn decision_table() {
        let gone = Step::DisableAndDeadLetter(GONE_REASON.to_owned());
        let class = |c| attempt(None, Some(c));
        // (what came, Retry-After, attempt number, expected step)
        let table: Vec<(DeliveryAttempt, Option<u64>, u32, Step)> = vec![
            (status(200), None, 1, Step::Delivered),
            (status(204), None, 3, Step::Delivered),
            (status(299), Some(5), 1, Step::Delivered),
            // Redirects are not followed: a 3xx is a failure like any other.
            (status(301), None, 1, retry(1)),
            (status(302), None, 2, retry(2)),
            (status(400), None, 1, retry(1)),
            (status(401), None, 1, retry(1)),
            (status(404), None, 2, retry(2)),
            (status(408), None, 1, retry(1)),
            (status(408), Some(7), 1, retry(7)),
            (status(429), Some(3), 2, retry(3)),
            (status(429), Some(0), 1, retry(0)),
            // Over the cap: cut to it.
            (status(429), Some(3600), 1, retry(10)),
            (status(503), Some(11), 2, retry(10)),
            (status(410), None, 1, gone.clone()),
            (status(410), Some(5), 3, gone.clone()),
            (status(500), None, 1, retry(1)),
            (status(502), None, 2, retry(2)),
            (status(503), Some(5), 1, retry(5)),
            (status(599), None, 1, retry(1)),
            (class(ErrorClass::Timeout), None, 1, retry(1)),
            (class(ErrorClass::Connect), None, 2, retry(2)),
            (class(ErrorClass::Dns), None, 1, retry(1)),
            (class(ErrorClass::Tls), None, 1, retry(1)),
            (class(ErrorClass::Io), None, 1, retry(1)),
            (class(ErrorClass::Blocked), None, 1, retry(1)),
            // Signing fails the same way every time: no retry.
            (
                class(ErrorClass::Signing),
                None,
                1,
                Step::DeadLetter("failed: signing".into()),
            ),
        ];
        for (seen, retry_after, number, want) in table {
            let outcome = outcome_of(&seen, retry_after.map(Duration::from_secs));
            let got = next_step(&outcome, number, &policy());
            assert_eq!(got, want, "{outcome:?} on attempt {number}");
        }
    }

    #[test]
    fn the_last_attempt_gives_up_whatever_retry_after_says() {
        let last = policy().max_attempts();
        assert_eq!(last, 3);
        let cases = [
            (status(500), None, "status"),
            (status(429), Some(SECOND), "status"),
            (attempt(None, Some(ErrorClass::Timeout)), None, "timeout"),
            (attempt(None, Some(ErrorClass::Blocked)), None, "blocked"),
        ];
        for (seen, retry_after, class) in cases {
            let outcome = outcome_of(&seen, retry_after);
            assert_eq!(next_step(&outcome, last, &policy()), gave_up(3, class));
            assert_eq!(next_step(&outcome, last + 1, &policy()), gave_up(4, class));
        }
        let none = RetryPolicy::none();
        let outcome = outcome_of(&status(503), Some(SECOND));
        assert_eq!(next_step(&outcome, 1, &none), gave_up(1, "status"));
    }

    #[test]
    fn outcomes_carry_the_status_and_class() {
        assert_eq!(outcome_of(&status(201), None), AttemptOutcome::Delivered);
        assert_eq!(outcome_of(&status(410), None), AttemptOutcome::Gone);
        assert_eq!(
            outcome_of(&status(429), Some(SECOND)),
            AttemptOutcome::Failed {
                class: ErrorClass::Status,
                status: Some(429),
                retry_after: Some(SECOND),
                error: "failed: status".into(),
            }
        );
        let mut silent = attempt(None, Some(ErrorClass::Io));
        silent.error = None;
        assert!(matches!(
            outcome_of(&silent, None),
            AttemptOutcome::Failed { ref error, status: None, .. } if error == "unknown error"
        ));
    }
}
