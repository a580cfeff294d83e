//! The inbox samples the depth of its store on its own timer: the gauges
//! keep up while every worker is held by a slow handler, which is when the
//! backlog grows.
#![cfg(feature = "inbox")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use webhook_guard::inbox::store::NewInboxEvent;
use webhook_guard::inbox::{Inbox, InboxEvent, InboxStore as _, MemoryInboxStore, metric_names};

/// The last value of the depth gauge, if it was set since the last read.
fn depth(snapshotter: &Snapshotter) -> Option<f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(v) if key.key().name() == metric_names::DEPTH => Some(v.into_inner()),
            _ => None,
        })
}

async fn wait_for_depth(snapshotter: &Snapshotter, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while last != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the depth gauge shows {last:?} after 5 s, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = depth(snapshotter).or(last);
    }
}

#[tokio::test]
async fn the_depth_is_sampled_while_every_worker_is_busy() {
    // The runtime is current-thread: the workers record into this thread's
    // recorder.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = MemoryInboxStore::new();
    let inbox = Inbox::builder(store.clone())
        .concurrency(1)
        .unwrap()
        .poll_interval(Duration::from_millis(10))
        .depth_sample_interval(Duration::from_millis(10))
        .build()
        .await
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (started, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let held = Arc::clone(&gate);
    let workers = inbox.start(move |event: InboxEvent<serde_json::Value>| {
        let (gate, started) = (Arc::clone(&held), started.clone());
        async move {
            started.send(event.id).unwrap();
            drop(gate.acquire().await.unwrap());
            Ok::<(), String>(())
        }
    });

    store
        .insert(&NewInboxEvent::new("evt_1", "{}", 0))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), handled.recv()).await;
    assert_eq!(first.unwrap().as_deref(), Some("evt_1"));
    // The only worker is held; two more events arrive behind it.
    for id in ["evt_2", "evt_3"] {
        store
            .insert(&NewInboxEvent::new(id, "{}", 0))
            .await
            .unwrap();
    }
    wait_for_depth(&snapshotter, 3.0).await;

    gate.add_permits(3);
    wait_for_depth(&snapshotter, 0.0).await;
    workers.shutdown().await;
}
