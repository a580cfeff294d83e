//! One contract for every inbox store: each test runs against the memory
//! store, against SQLite in a real file and (feature `postgres`) against a
//! real PostgreSQL server, one database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use webhook_guard::inbox::store::{Insert, NewInboxEvent, Settle};
use webhook_guard::inbox::{
    InboxQuery, InboxStatus, InboxStore, MemoryInboxStore, ReplaySelection, SqliteInboxStore,
};

fn event(id: &str, at: i64) -> NewInboxEvent {
    let mut e = NewInboxEvent::new(id, format!(r#"{{"event":"kpi.alert","n":"{id}"}}"#), at);
    e.scheme = "native".into();
    e.signed_at = Some(at / 1000);
    e.event_type = Some("kpi.alert".into());
    e
}

/// One PostgreSQL server for the tests running at the same time: started
/// by the first, stopped when the last lets go of it.
#[cfg(feature = "postgres")]
fn shared_postgres() -> std::sync::Arc<postgres_server::PostgresServer> {
    use std::sync::{Arc, Mutex, PoisonError, Weak};
    static SERVER: Mutex<Weak<postgres_server::PostgresServer>> = Mutex::new(Weak::new());
    let mut slot = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(postgres_server::PostgresServer::start());
    *slot = Arc::downgrade(&server);
    server
}

/// Runs `$body` with `store` bound to each backend in turn.
macro_rules! contract {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn check<S: InboxStore>($store: S) $body

            #[tokio::test]
            async fn memory() {
                check(MemoryInboxStore::new()).await;
            }

            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                check(SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap()).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test]
            async fn postgres() {
                let pg = shared_postgres();
                let url = pg.create_database(stringify!($name));
                check(webhook_guard::inbox::PgInboxStore::connect(&url).await.unwrap()).await;
            }
        }
    };
}

contract!(insert_stores_once_and_keeps_the_body_exactly, |store| {
    let mut e = event("evt_1", 1_000);
    e.body = bytes::Bytes::from_static(b"\xff\x00 not utf-8");
    assert_eq!(store.insert(&e).await.unwrap(), Insert::Stored);
    let mut again = event("evt_1", 2_000);
    again.body = bytes::Bytes::from_static(b"other");
    assert_eq!(store.insert(&again).await.unwrap(), Insert::Duplicate);
    let stored = store.event("evt_1").await.unwrap().unwrap();
    assert_eq!(&stored.body[..], b"\xff\x00 not utf-8");
    assert_eq!(stored.received_at_ms, 1_000);
    assert_eq!(stored.scheme, "native");
    assert_eq!(stored.signed_at, Some(1));
    assert_eq!(stored.status, InboxStatus::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(store.unprocessed().await.unwrap(), 1);
    assert!(store.event("evt_2").await.unwrap().is_none());
});

contract!(claims_are_leased_counted_and_ordered, |store| {
    store.insert(&event("b", 2_000)).await.unwrap();
    store.insert(&event("a", 1_000)).await.unwrap();
    store.insert(&event("later", 9_000)).await.unwrap();
    let claimed = store.claim_due(5_000, 10, 6_000).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "due ones only, earliest first");
    assert!(
        claimed
            .iter()
            .all(|e| e.attempts == 1 && e.lease_until_ms == Some(6_000))
    );
    // A live lease keeps them from being claimed again.
    assert!(store.claim_due(5_500, 10, 7_000).await.unwrap().is_empty());
    // The limit holds.
    assert_eq!(store.claim_due(9_000, 1, 10_000).await.unwrap().len(), 1);
    // An expired lease (the worker died) frees the event: a second attempt.
    let again = store.claim_due(6_000, 1, 8_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
});

contract!(settle_is_fenced_by_the_lease, |store| {
    store.insert(&event("e", 1_000)).await.unwrap();
    let first = store.claim_due(1_000, 1, 2_000).await.unwrap();
    assert_eq!(first.len(), 1);
    // The first worker's lease expired and another worker claimed it.
    let second = store.claim_due(2_000, 1, 3_000).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(
        !store
            .settle("e", 2_000, &Settle::Done, 2_100)
            .await
            .unwrap()
    );
    assert_eq!(
        store.event("e").await.unwrap().unwrap().status,
        InboxStatus::Pending
    );
    assert!(
        store
            .settle("e", 3_000, &Settle::Done, 2_200)
            .await
            .unwrap()
    );
    let done = store.event("e").await.unwrap().unwrap();
    assert_eq!(done.status, InboxStatus::Done);
    assert_eq!(done.finished_at_ms, Some(2_200));
    assert_eq!(done.lease_until_ms, None);
    assert_eq!(store.unprocessed().await.unwrap(), 0);
    // Settling twice changes nothing.
    assert!(
        !store
            .settle("e", 3_000, &Settle::Done, 2_300)
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle("missing", 3_000, &Settle::Done, 2_300)
            .await
            .unwrap()
    );
});

contract!(retry_waits_then_dead_letter_then_replay, |store| {
    store.insert(&event("e", 1_000)).await.unwrap();
    store.claim_due(1_000, 1, 2_000).await.unwrap();
    let retry = Settle::RetryAt {
        at_ms: 5_000,
        error: "boom".into(),
    };
    assert!(store.settle("e", 2_000, &retry, 1_500).await.unwrap());
    let waiting = store.event("e").await.unwrap().unwrap();
    assert_eq!(waiting.status, InboxStatus::Pending);
    assert_eq!(waiting.last_error.as_deref(), Some("boom"));
    assert!(
        store.claim_due(4_999, 1, 9_000).await.unwrap().is_empty(),
        "not due yet"
    );
    let claimed = store.claim_due(5_000, 1, 9_000).await.unwrap();
    assert_eq!(claimed[0].attempts, 2);
    let dead = Settle::DeadLetter("gave up".into());
    assert!(store.settle("e", 9_000, &dead, 6_000).await.unwrap());
    assert_eq!(store.unprocessed().await.unwrap(), 0);
    let dlq = store
        .events(&InboxQuery::new(Some(InboxStatus::DeadLettered), 10))
        .await
        .unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].last_error.as_deref(), Some("gave up"));
    assert!(
        store
            .claim_due(99_000, 1, 100_000)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store
            .replay(&ReplaySelection::One("other".into()), 7_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .replay(&ReplaySelection::One("e".into()), 7_000)
            .await
            .unwrap(),
        1
    );
    let replayed = store.claim_due(7_000, 1, 8_000).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].attempts, 1, "attempts count from one again");
    // Only dead letters are replayed.
    assert_eq!(store.replay(&ReplaySelection::All, 7_000).await.unwrap(), 0);
});

contract!(replay_all_or_a_time_range, |store| {
    for (id, dead_at) in [("a", 10_000), ("b", 20_000), ("c", 30_000)] {
        store.insert(&event(id, 1_000)).await.unwrap();
        store.claim_due(1_000, 1, 2_000).await.unwrap();
        assert!(
            store
                .settle(id, 2_000, &Settle::DeadLetter("x".into()), dead_at)
                .await
                .unwrap()
        );
    }
    let between = ReplaySelection::Between {
        since_ms: 15_000,
        until_ms: 30_000,
    };
    assert_eq!(store.replay(&between, 40_000).await.unwrap(), 1);
    assert_eq!(
        store.event("b").await.unwrap().unwrap().status,
        InboxStatus::Pending
    );
    assert_eq!(
        store.replay(&ReplaySelection::All, 40_000).await.unwrap(),
        2
    );
    assert_eq!(store.unprocessed().await.unwrap(), 3);
});

contract!(history_is_newest_first_and_paged, |store| {
    for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        store
            .insert(&event(id, 1_000 + i64::try_from(i).unwrap()))
            .await
            .unwrap();
    }
    store.claim_due(1_000, 1, 5_000).await.unwrap();
    assert!(
        store
            .settle("a", 5_000, &Settle::Done, 1_100)
            .await
            .unwrap()
    );
    let page = store.events(&InboxQuery::new(None, 2)).await.unwrap();
    let ids: Vec<_> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["d", "c"]);
    let mut next = InboxQuery::new(None, 10);
    next.before_seq = Some(page[1].seq);
    let ids: Vec<_> = store
        .events(&next)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["b", "a"]);
    let done = store
        .events(&InboxQuery::new(Some(InboxStatus::Done), 10))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, "a");
});

contract!(ordering_key_and_signed_timestamp_are_kept, |store| {
    let mut e = event("k", 1_000);
    e.ordering_key = Some("tenant_1".into());
    e.signed_at = Some(1_700_000_000);
    store.insert(&e).await.unwrap();
    let stored = store.event("k").await.unwrap().unwrap();
    assert_eq!(stored.ordering_key.as_deref(), Some("tenant_1"));
    assert_eq!(stored.signed_at, Some(1_700_000_000));
    assert_eq!(stored.event_type.as_deref(), Some("kpi.alert"));
});

#[tokio::test]
async fn sqlite_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    {
        let store = SqliteInboxStore::open(&path).unwrap();
        store.insert(&event("e", 1_000)).await.unwrap();
        store.claim_due(1_000, 1, 2_000).await.unwrap();
    }
    let store = SqliteInboxStore::open(&path).unwrap();
    assert_eq!(
        store.insert(&event("e", 3_000)).await.unwrap(),
        Insert::Duplicate
    );
    let e = store.event("e").await.unwrap().unwrap();
    assert_eq!((e.attempts, e.lease_until_ms), (1, Some(2_000)));
    assert_eq!(store.claim_due(2_000, 1, 4_000).await.unwrap().len(), 1);
}
