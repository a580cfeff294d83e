//! The circuit breaker, per destination and in this process: after
//! `threshold` failed attempts in a row a destination's circuit opens for
//! `cooldown`; then it is half open, and one probe attempt decides whether
//! it closes (success) or opens again (failure). An operator enabling the
//! destination closes it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::store::CircuitChange;

/// The breaker of every destination: their circuits and the rules they
/// follow.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// Failures in a row that open a circuit.
    threshold: u32,
    /// How long an open circuit stays open, ms.
    cooldown_ms: i64,
    /// The least a refused attempt waits, ms.
    busy_delay_ms: i64,
    /// Only destinations that failed since their last success have one.
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown_ms: i64, busy_delay_ms: i64) -> Self {
        Self {
            threshold,
            cooldown_ms,
            busy_delay_ms,
            circuits: Mutex::default(),
        }
    }

    fn circuits(&self) -> MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt to `destination_id` may go at `now_ms`: `Err`
    /// with the time to come back when its circuit is open, or half open
    /// with the probe out. Letting the probe go marks it out.
    pub(crate) fn admit(&self, destination_id: &str, now_ms: i64) -> Result<(), i64> {
        let mut circuits = self.circuits();
        let Some(c) = circuits.get_mut(destination_id) else {
            return Ok(());
        };
        match c.admit(now_ms, self.busy_delay_ms) {
            CircuitGate::Later(at) => Err(at),
            CircuitGate::Probe => {
                c.probing = true;
                Ok(())
            }
            CircuitGate::Closed => Ok(()),
        }
    }

    /// An admitted attempt did not go after all (the destination was at its
    /// concurrency limit): the probe it may have been is not out.
    pub(crate) fn withdraw(&self, destination_id: &str) {
        if let Some(c) = self.circuits().get_mut(destination_id) {
            c.probing = false;
        }
    }

    /// Counts an attempt that ended at `now_ms`: a success closes the
    /// circuit, a failure counts towards opening it. Returns the change it
    /// made: each opening and each closing is returned once.
    pub(crate) fn record(
        &self,
        destination_id: &str,
        success: bool,
        now_ms: i64,
    ) -> Option<CircuitChange> {
        let mut circuits = self.circuits();
        if success {
            let was_open = circuits
                .remove(destination_id)
                .is_some_and(|c| c.open_until_ms.is_some());
            return was_open.then_some(CircuitChange::Closed);
        }
        let c = circuits.entry(destination_id.to_owned()).or_default();
        if !c.fail(now_ms, self.threshold, self.cooldown_ms) {
            return None;
        }
        tracing::warn!(
            destination = destination_id,
            failures = c.consecutive_failures,
            "circuit opened: pausing deliveries to this destination"
        );
        Some(CircuitChange::Opened)
    }

    /// Whether the destination's circuit is open (paused) at `now_ms`.
    pub(crate) fn is_open(&self, destination_id: &str, now_ms: i64) -> bool {
        self.circuits()
            .get(destination_id)
            .and_then(|c| c.open_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    /// Closes a destination's circuit (an operator enabled it).
    pub(crate) fn reset(&self, destination_id: &str) {
        self.circuits().remove(destination_id);
    }
}

/// Circuit breaker state of one destination.
#[derive(Debug, Default)]
struct Circuit {
    consecutive_failures: u32,
    open_until_ms: Option<i64>,
    probing: bool,
}

/// What a destination's circuit lets through now.
#[derive(Debug, PartialEq)]
enum CircuitGate {
    /// Closed: attempt.
    Closed,
    /// Half open: attempt as the one probe.
    Probe,
    /// Open, or half open with a probe out: come back at this time.
    Later(i64),
}

impl Circuit {
    /// Whether an attempt may go now; no I/O, no clock.
    fn admit(&self, now_ms: i64, busy_delay_ms: i64) -> CircuitGate {
        match self.open_until_ms {
            None => CircuitGate::Closed,
            Some(until) if now_ms < until || self.probing => {
                CircuitGate::Later(until.max(now_ms + busy_delay_ms))
            }
            Some(_) => CircuitGate::Probe,
        }
    }

    /// Counts a failed attempt that ended at `now_ms`: at `threshold`
    /// failures in a row the circuit opens (again) for `cooldown_ms`.
    /// Returns whether it was closed before.
    fn fail(&mut self, now_ms: i64, threshold: u32, cooldown_ms: i64) -> bool {
        self.probing = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures < threshold {
            return false;
        }
        let opened = self.open_until_ms.is_none();
        self.open_until_ms = Some(now_ms.saturating_add(cooldown_ms));
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_closed_open_half_open() {
        let busy = 100;
        let mut c = Circuit::default();
        assert_eq!(c.admit(0, busy), CircuitGate::Closed);
        // Below the threshold it stays closed.
        assert!(!c.fail(0, 2, 1_000));
        assert_eq!(c.admit(10, busy), CircuitGate::Closed);
        // At the threshold it opens until the cooldown ends.
        assert!(c.fail(50, 2, 1_000));
        assert_eq!(c.admit(60, busy), CircuitGate::Later(1_050));
        // Never sooner than the busy delay.
        assert_eq!(c.admit(1_049, busy), CircuitGate::Later(1_149));
        // Then half open: one probe, and others wait while it is out.
        assert_eq!(c.admit(1_050, busy), CircuitGate::Probe);
        c.probing = true;
        assert_eq!(c.admit(1_060, busy), CircuitGate::Later(1_160));
        // A failed probe opens it again without saying so twice.
        assert!(!c.fail(1_100, 2, 1_000));
        assert!(!c.probing);
        assert_eq!(c.admit(1_200, busy), CircuitGate::Later(2_100));
    }

    #[test]
    fn breaker_lets_one_probe_through_and_closes_on_success() {
        let breaker = Breaker::new(1, 1_000, 100);
        assert_eq!(breaker.admit("d", 0), Ok(()));
        assert_eq!(breaker.record("d", false, 10), Some(CircuitChange::Opened));
        assert!(breaker.is_open("d", 500));
        assert_eq!(breaker.admit("d", 500), Err(1_010));
        // Half open: the probe goes, the next waits; a withdrawn probe
        // lets another go.
        assert_eq!(breaker.admit("d", 1_010), Ok(()));
        assert_eq!(breaker.admit("d", 1_020), Err(1_120));
        breaker.withdraw("d");
        assert_eq!(breaker.admit("d", 1_030), Ok(()));
        assert_eq!(
            breaker.record("d", true, 1_040),
            Some(CircuitChange::Closed)
        );
        assert!(!breaker.is_open("d", 1_040));
        assert_eq!(breaker.admit("d", 1_050), Ok(()));
        // A success with the circuit closed changes nothing.
        assert_eq!(breaker.record("d", true, 1_055), None);
        assert_eq!(
            breaker.record("d", false, 1_060),
            Some(CircuitChange::Opened)
        );
        breaker.reset("d");
        assert!(!breaker.is_open("d", 1_070));
    }
}
