//! Sampling on a timer until shutdown: the sender's queue gauges and the
//! inbox's depth gauges are read from the store this way.

use std::future::Future;
use std::time::Duration;

/// Runs `sample` at once, then again `period` after each run ends, until
/// `stopped` completes (a run under way is finished first).
pub(crate) async fn sample_every<F, Fut>(
    period: Duration,
    stopped: impl Future<Output = ()>,
    mut sample: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stopped = std::pin::pin!(stopped);
    loop {
        sample().await;
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = &mut stopped => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn samples_at_once_then_every_period_until_stopped() {
        let runs = Cell::new(0);
        let count = || {
            runs.set(runs.get() + 1);
            async {}
        };
        // Stopped before it starts: one run all the same.
        sample_every(Duration::from_secs(3600), async {}, count).await;
        assert_eq!(runs.get(), 1);
        // A stop ends the wait for the next run.
        let started = tokio::time::Instant::now();
        let stop = tokio::time::sleep(Duration::from_millis(50));
        sample_every(Duration::from_secs(3600), stop, count).await;
        assert_eq!(runs.get(), 2);
        assert!(started.elapsed() < Duration::from_secs(60));
        // Every period meanwhile.
        let stop = tokio::time::sleep(Duration::from_millis(300));
        sample_every(Duration::from_millis(10), stop, count).await;
        assert!(runs.get() >= 5, "{}", runs.get());
    }
}
