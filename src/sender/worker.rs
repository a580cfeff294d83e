//! The delivery loop: claim due deliveries, sign, POST, record, move on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::delivery::{Delivery, DeliveryAttempt, ErrorClass};
use super::destination::Destination;
use super::retry::parse_retry_after;
use super::ssrf::{DestinationRefused, NOT_PUBLIC, literal_ip, log_refused_literal};
use super::store::{DeliveryStore, NextStep};
use super::{Inner, metric_names};
use crate::replay::Clock;
use crate::scheme::{Message, Scheme};
use crate::secret::SecretSet;

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
        let scheme = Scheme::from_name(&destination.scheme)
            .map_err(|e| (ErrorClass::Signing, e.to_string()))?;
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

/// Circuit breaker state of one destination (in this process).
#[derive(Debug, Default)]
pub(crate) struct Circuit {
    consecutive_failures: u32,
    open_until_ms: Option<i64>,
    probing: bool,
}

pub(crate) enum Gate {
    /// Attempt now (holding the destination's concurrency permit).
    Go(OwnedSemaphorePermit),
    /// Come back at this time without an attempt.
    Later(i64),
}

impl<S: DeliveryStore> Inner<S> {
    fn gate(&self, destination_id: &str, now_ms: i64) -> Gate {
        if let Some(c) = lock(&self.circuits).get_mut(destination_id) {
            if let Some(until) = c.open_until_ms {
                if now_ms < until || c.probing {
                    return Gate::Later(until.max(now_ms + self.config.busy_delay_ms));
                }
                // Half open: let exactly one probe through.
                c.probing = true;
            }
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
            Ok(permit) => Gate::Go(permit),
            Err(_) => {
                let mut circuits = lock(&self.circuits);
                if let Some(c) = circuits.get_mut(destination_id) {
                    c.probing = false;
                }
                Gate::Later(now_ms + self.config.busy_delay_ms)
            }
        }
    }

    fn note_outcome(&self, destination_id: &str, success: bool, now_ms: i64) {
        let mut circuits = lock(&self.circuits);
        if success {
            // Only a destination that failed has an entry; success removes it.
            circuits.remove(destination_id);
            return;
        }
        let c = circuits.entry(destination_id.to_owned()).or_default();
        c.probing = false;
        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
        if c.consecutive_failures >= self.config.breaker_threshold {
            if c.open_until_ms.is_none() {
                tracing::warn!(
                    destination = destination_id,
                    failures = c.consecutive_failures,
                    "circuit opened: pausing deliveries to this destination"
                );
            }
            c.open_until_ms = Some(now_ms.saturating_add(self.config.breaker_cooldown_ms));
        }
    }

    /// Whether the destination's circuit is open (paused) now.
    pub(crate) fn circuit_open(&self, destination_id: &str, now_ms: i64) -> bool {
        lock(&self.circuits)
            .get(destination_id)
            .and_then(|c| c.open_until_ms)
            .is_some_and(|until| now_ms < until)
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
fn stopping(stop: &watch::Receiver<bool>) -> bool {
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
        );
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
/// batches ahead instead of one delivery per freed slot.
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
    'run: loop {
        while tasks.try_join_next().is_some() {}
        if stopping(&stop) {
            break;
        }
        while let Ok(delivery) = inbox.try_recv() {
            inner.release_handoff(1);
            ready.push_back(delivery);
        }
        while !ready.is_empty() {
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                break;
            };
            if let Some(delivery) = ready.pop_front() {
                spawn_delivery(&mut tasks, &inner, delivery, slot);
            }
        }
        if tokio::time::Instant::now() >= next_poll {
            want_claim = true;
            next_poll = tokio::time::Instant::now() + poll;
        }
        if want_claim && ready.len() < low_water {
            let room = (2 * low_water - ready.len()).min(inner.config.batch_size);
            let now = inner.clock.now_millis();
            let claimed = inner
                .store
                .claim_due(now, room, now.saturating_add(inner.config.lease_ms))
                .await;
            let batch = match claimed {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "claiming due deliveries failed; retrying");
                    Vec::new()
                }
            };
            // A full batch may have left more behind: claim again.
            want_claim = !batch.is_empty() && batch.len() == room;
            ready.extend(batch);
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
            () = tokio::time::sleep_until(next_poll) => {}
            _ = stop.changed() => {}
        }
    }
    // Hand nothing more over; release what was handed over or claimed but
    // not started.
    *inner.direct.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
    while tasks.join_next().await.is_some() {}
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
    let target = match inner.find_destination(&delivery.destination_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let reason = "the destination was deleted";
            if let Err(e) = inner
                .store
                .dead_letter(&delivery.id, lease_of(&delivery), now, reason)
                .await
            {
                tracing::error!(error = %e, "dead-lettering failed");
            }
            metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "loading the destination failed; the lease will expire");
            return;
        }
    };
    let destination = &target.destination;
    if !destination.enabled {
        // Disabled after the claim: hold it until re-enabled.
        let _ = inner
            .store
            .reschedule(
                &delivery.id,
                lease_of(&delivery),
                now + inner.config.busy_delay_ms,
            )
            .await;
        return;
    }
    let permit = match inner.gate(&destination.id, now) {
        Gate::Go(permit) => permit,
        Gate::Later(at) => {
            if let Err(e) = inner
                .store
                .reschedule(&delivery.id, lease_of(&delivery), at)
                .await
            {
                tracing::error!(error = %e, "rescheduling failed; the lease will expire");
            }
            return;
        }
    };
    let number = delivery.attempts.saturating_add(1);
    let span = tracing::info_span!(
        "webhook.attempt",
        attempt = number,
        status = tracing::field::Empty,
        error_class = tracing::field::Empty,
    );
    let (attempt, outcome) = attempt_once(inner, &target, &delivery, number)
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
    let finished = inner.clock.now_millis();
    let success = attempt.succeeded();
    inner.note_outcome(&destination.id, success, finished);
    metrics::histogram!(metric_names::ATTEMPT_SECONDS).record(attempt.duration_ms as f64 / 1000.0);

    let next = if success {
        metrics::counter!(metric_names::DELIVERED).increment(1);
        metrics::histogram!(metric_names::DELIVERY_SECONDS)
            .record(finished.saturating_sub(delivery.created_at_ms).max(0) as f64 / 1000.0);
        NextStep::Delivered
    } else if outcome.gone {
        let reason = "the endpoint answered 410 Gone: destination disabled".to_owned();
        let mut disabled = destination.clone();
        disabled.enabled = false;
        disabled.disabled_reason = Some(reason.clone());
        if let Err(e) = inner.store.save_destination(&disabled).await {
            tracing::error!(error = %e, "disabling the destination failed");
        }
        inner.forget_destinations();
        tracing::warn!(destination = %destination.id, "410 Gone: destination disabled");
        metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
        NextStep::DeadLetter(reason)
    } else if outcome.permanent {
        metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
        NextStep::DeadLetter(attempt.error.clone().unwrap_or_default())
    } else {
        match inner.config.retry.delay_after(number, outcome.retry_after) {
            Some(wait) => {
                metrics::counter!(metric_names::RETRIED).increment(1);
                let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                NextStep::RetryAt(finished.saturating_add(wait_ms))
            }
            None => {
                metrics::counter!(metric_names::DEAD_LETTERED).increment(1);
                NextStep::DeadLetter(format!(
                    "gave up after {number} attempt(s): {}",
                    attempt.error.as_deref().unwrap_or("unknown error")
                ))
            }
        }
    };
    tracing::info!(
        attempt = number,
        status = attempt.status_code,
        error = attempt.error.as_deref(),
        next = ?next,
        "delivery attempt recorded"
    );
    if let Err(e) = inner
        .store
        .record_attempt(&attempt, lease_of(&delivery), &next)
        .await
    {
        tracing::error!(error = %e, "recording the attempt failed; the lease will expire");
    }
    if let Some(observer) = &inner.observer {
        observer(&attempt, &next);
    }
}

#[derive(Default)]
struct Outcome {
    retry_after: Option<Duration>,
    gone: bool,
    permanent: bool,
}

async fn attempt_once<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    number: u32,
) -> (DeliveryAttempt, Outcome) {
    let started_at_ms = inner.clock.now_millis();
    let started = Instant::now();
    let mut attempt = DeliveryAttempt {
        delivery_id: delivery.id.clone(),
        attempt: number,
        started_at_ms,
        duration_ms: 0,
        status_code: None,
        error_class: None,
        error: None,
        response_body: None,
    };
    let mut outcome = Outcome::default();
    let fail = |attempt: &mut DeliveryAttempt, class: ErrorClass, msg: String| {
        attempt.error_class = Some(class);
        attempt.error = Some(msg);
    };

    let request = match build_request(inner, target, delivery, started_at_ms) {
        Ok(r) => r,
        Err((class, msg)) => {
            fail(&mut attempt, class, msg);
            outcome.permanent = class == ErrorClass::Signing;
            return (attempt, outcome);
        }
    };
    match inner.client.execute(request).await {
        Ok(mut response) => {
            let status = response.status();
            attempt.status_code = Some(status.as_u16());
            if !status.is_success() {
                outcome.retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, inner.clock.now_millis()));
                outcome.gone = status == http::StatusCode::GONE;
            }
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
                fail(
                    &mut attempt,
                    ErrorClass::Status,
                    format!("the endpoint answered {status}"),
                );
            } else if let Some(e) = read_error {
                // A 2xx is a 2xx even if the rest of its body went missing.
                tracing::debug!(error = %e.without_url(), "reading the 2xx body failed");
            }
        }
        Err(e) => {
            let (class, msg) = classify(e);
            fail(&mut attempt, class, msg);
        }
    }
    attempt.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (attempt, outcome)
}

fn build_request<S: DeliveryStore>(
    inner: &Inner<S>,
    target: &Target,
    delivery: &Delivery,
    now_ms: i64,
) -> Result<reqwest::Request, (ErrorClass, String)> {
    let Signer {
        url,
        scheme,
        secrets,
    } = target.signer.as_ref().map_err(Clone::clone)?;
    if let Some(ip) = literal_ip(url) {
        inner.policy.check(ip).map_err(|why| {
            log_refused_literal(&why);
            (
                ErrorClass::Blocked,
                format!("refused by the SSRF guard: {NOT_PUBLIC}"),
            )
        })?;
    }
    let body: Bytes = delivery.body.clone();
    let headers = scheme
        .sign(
            secrets,
            &Message::new(&delivery.event_id, now_ms.div_euclid(1000), &body),
        )
        .map_err(|e| (ErrorClass::Signing, format!("cannot sign: {e}")))?;
    let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
    *request.body_mut() = Some(reqwest::Body::from(body));
    let h = request.headers_mut();
    h.extend(headers);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&delivery.event_type) {
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

/// Closes a destination's circuit (an operator re-enabled it).
pub(crate) fn reset_circuit<S>(inner: &Inner<S>, destination_id: &str) {
    lock(&inner.circuits).remove(destination_id);
}
