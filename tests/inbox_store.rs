//! One contract for every inbox store: each test runs against the memory
//! store, against SQLite in a real file and (feature `postgres`) against a
//! real PostgreSQL server, one database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres_server;

use webhook_guard::SchemeName;
use webhook_guard::inbox::store::{Insert, NewInboxEvent, Settle};
use webhook_guard::inbox::{
    InboxCounts, InboxDepth, InboxQuery, InboxStatus, InboxStore, MemoryInboxStore,
    ReplaySelection, SqliteInboxStore,
};
use webhook_guard::trace_context::TraceParent;

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `event`, carrying the sender's trace [`TRACE`].
fn traced(id: &str, at: i64) -> NewInboxEvent {
    let mut e = event(id, at);
    e.traceparent = Some(TraceParent::parse(TRACE).unwrap());
    e
}

fn event(id: &str, at: i64) -> NewInboxEvent {
    let mut e = NewInboxEvent::new(id, format!(r#"{{"event":"kpi.alert","n":"{id}"}}"#), at);
    e.scheme = SchemeName::Standard;
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
    assert_eq!(stored.scheme, SchemeName::Standard);
    assert_eq!(stored.signed_at, Some(1));
    assert_eq!(stored.status, InboxStatus::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(store.unprocessed().await.unwrap(), 1);
    assert!(store.event("evt_2").await.unwrap().is_none());
});

contract!(counts_each_state_as_the_entries_say, |store| {
    for (i, id) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        store.insert(&event(id, 1_000 + i as i64)).await.unwrap();
    }
    // Four claimed until 10_000: one done, one dead, one failed (retry at
    // 5_000), one still held; two never claimed.
    let claimed = store.claim_due(2_000, 4, 10_000).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 4);
    let retry = Settle::RetryAt {
        at_ms: 5_000,
        error: "busy".into(),
    };
    let dead = Settle::DeadLetter("no".into());
    for (id, how) in ids.iter().zip([&Settle::Done, &dead, &retry]) {
        assert!(store.settle(id, 10_000, how, 2_100).await.unwrap());
    }
    let expect = |received, processing, retrying| {
        let mut c = InboxCounts::default();
        c.received = received;
        c.processing = processing;
        c.retrying = retrying;
        c.done = 1;
        c.dead_lettered = 1;
        c
    };
    assert_eq!(store.counts(3_000).await.unwrap(), expect(2, 1, 1));
    // Once the held lease has expired, that event waits for a retry too.
    assert_eq!(store.counts(20_000).await.unwrap(), expect(2, 0, 2));
    // The same as classifying each entry.
    let mut by_entry = InboxCounts::default();
    for e in store.events(&InboxQuery::new(None, 100)).await.unwrap() {
        by_entry.add(e.state_at(20_000));
    }
    assert_eq!(by_entry, expect(2, 0, 2));
});

contract!(
    renew_lease_extends_a_held_lease_and_refuses_a_stale_one,
    |store| {
        store.insert(&event("e", 1_000)).await.unwrap();
        assert_eq!(store.claim_due(1_000, 1, 2_000).await.unwrap().len(), 1);
        assert!(store.renew_lease("e", 2_000, 5_000).await.unwrap());
        // Held past the first lease: not claimable while the renewal runs.
        assert!(store.claim_due(3_000, 1, 9_000).await.unwrap().is_empty());
        // The old value is stale now: refused, nothing changed.
        assert!(!store.renew_lease("e", 2_000, 8_000).await.unwrap());
        assert!(
            !store
                .settle("e", 2_000, &Settle::Done, 3_100)
                .await
                .unwrap()
        );
        let held = store.event("e").await.unwrap().unwrap();
        assert_eq!(
            (held.status, held.lease_until_ms),
            (InboxStatus::Pending, Some(5_000))
        );
        // Expired and claimed again: the former holder cannot take it back.
        let taken = store.claim_due(6_000, 1, 7_000).await.unwrap();
        assert_eq!(taken[0].attempts, 2);
        assert!(!store.renew_lease("e", 5_000, 10_000).await.unwrap());
        let held = store.event("e").await.unwrap().unwrap();
        assert_eq!(held.lease_until_ms, Some(7_000));
        // The renewed lease fences the settle; settled, there is nothing to renew.
        assert!(store.renew_lease("e", 7_000, 9_000).await.unwrap());
        assert!(
            !store
                .settle("e", 7_000, &Settle::Done, 6_500)
                .await
                .unwrap()
        );
        assert!(
            store
                .settle("e", 9_000, &Settle::Done, 6_500)
                .await
                .unwrap()
        );
        assert!(!store.renew_lease("e", 9_000, 12_000).await.unwrap());
        assert!(!store.renew_lease("missing", 9_000, 12_000).await.unwrap());
    }
);

contract!(
    depth_counts_pending_events_and_the_oldest_receipt,
    |store| {
        assert_eq!(store.depth().await.unwrap(), InboxDepth::new(0, None));
        store.insert(&event("b", 2_000)).await.unwrap();
        store.insert(&event("a", 1_000)).await.unwrap();
        store.insert(&event("c", 3_000)).await.unwrap();
        assert_eq!(
            store.depth().await.unwrap(),
            InboxDepth::new(3, Some(1_000))
        );
        // Being processed still counts; once done, the next oldest is reported.
        let claimed = store.claim_due(1_500, 1, 60_000).await.unwrap();
        assert_eq!(claimed[0].id, "a");
        assert_eq!(
            store.depth().await.unwrap(),
            InboxDepth::new(3, Some(1_000))
        );
        assert!(
            store
                .settle("a", 60_000, &Settle::Done, 1_600)
                .await
                .unwrap()
        );
        assert_eq!(
            store.depth().await.unwrap(),
            InboxDepth::new(2, Some(2_000))
        );
        let claimed = store.claim_due(2_500, 1, 60_000).await.unwrap();
        let dead = Settle::DeadLetter("no".into());
        assert!(
            store
                .settle(&claimed[0].id, 60_000, &dead, 2_600)
                .await
                .unwrap()
        );
        assert_eq!(
            store.depth().await.unwrap(),
            InboxDepth::new(1, Some(3_000))
        );
        assert_eq!(store.unprocessed().await.unwrap(), 1);
    }
);

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

contract!(
    traceparent_is_kept_through_claims_retries_and_history,
    |store| {
        store.insert(&traced("traced", 1_000)).await.unwrap();
        store.insert(&event("plain", 1_001)).await.unwrap();
        let trace = Some(TraceParent::parse(TRACE).unwrap());
        let stored = store.event("traced").await.unwrap().unwrap();
        assert_eq!(stored.traceparent, trace);
        assert_eq!(
            store.event("plain").await.unwrap().unwrap().traceparent,
            None
        );
        let claimed = store.claim_due(2_000, 10, 5_000).await.unwrap();
        let by_id = |v: &[webhook_guard::inbox::InboxEntry], id: &str| {
            v.iter().find(|e| e.id == id).unwrap().traceparent.clone()
        };
        assert_eq!(by_id(&claimed, "traced"), trace);
        assert_eq!(by_id(&claimed, "plain"), None);
        let retry = Settle::RetryAt {
            at_ms: 6_000,
            error: "busy".into(),
        };
        assert!(store.settle("traced", 5_000, &retry, 2_100).await.unwrap());
        let again = store.claim_due(6_000, 10, 9_000).await.unwrap();
        assert_eq!(by_id(&again, "traced"), trace, "a retry keeps it");
        let history = store.events(&InboxQuery::default()).await.unwrap();
        assert_eq!(by_id(&history, "traced"), trace);
        assert_eq!(by_id(&history, "plain"), None);
    }
);

/// A stored `traceparent` that no longer parses (edited by hand, or not
/// text at all) reads as none: the event is still read, claimed and
/// processed.
#[tokio::test]
async fn sqlite_a_malformed_stored_traceparent_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let store = SqliteInboxStore::open(&path).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    for (id, value) in [
        ("upper", rusqlite::types::Value::Text(TRACE.to_uppercase())),
        ("short", rusqlite::types::Value::Text("00-4bf9".into())),
        ("number", rusqlite::types::Value::Integer(7)),
        ("bytes", rusqlite::types::Value::Blob(vec![0xff, 0x00])),
    ] {
        store.insert(&traced(id, 1_000)).await.unwrap();
        other
            .execute(
                "UPDATE inbox_events SET traceparent = ?1 WHERE id = ?2",
                rusqlite::params![value, id],
            )
            .unwrap();
        assert_eq!(store.event(id).await.unwrap().unwrap().traceparent, None);
    }
    let claimed = store.claim_due(2_000, 10, 5_000).await.unwrap();
    assert_eq!(claimed.len(), 4);
    assert!(claimed.iter().all(|e| e.traceparent.is_none()));
}

/// A file written by schema version 1 (no `traceparent` column) is
/// migrated on open; its events read with no trace, new ones keep theirs.
#[tokio::test]
async fn sqlite_a_version_1_file_gains_the_traceparent_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    SqliteInboxStore::open(&path).unwrap();
    {
        // Back to version 1, with an event stored by it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE inbox_events DROP COLUMN traceparent; \
             UPDATE inbox_schema SET version = 1; \
             INSERT INTO inbox_events (id, scheme, body, received_at_ms, status, next_attempt_at_ms) \
             VALUES ('old', 'native', X'7B7D', 1000, 'pending', 1000);",
        )
        .unwrap();
    }
    let store = SqliteInboxStore::open(&path).unwrap();
    assert_eq!(store.event("old").await.unwrap().unwrap().traceparent, None);
    store.insert(&traced("new", 2_000)).await.unwrap();
    assert_eq!(
        store.event("new").await.unwrap().unwrap().traceparent,
        Some(TraceParent::parse(TRACE).unwrap())
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM inbox_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

/// As with SQLite: a stored value that no longer parses reads as none.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_a_malformed_stored_traceparent_reads_as_none() {
    let pg = shared_postgres();
    let url = pg.create_database("malformed_traceparent");
    let store = webhook_guard::inbox::PgInboxStore::connect(&url)
        .await
        .unwrap();
    store.insert(&traced("upper", 1_000)).await.unwrap();
    store.insert(&traced("short", 1_000)).await.unwrap();
    pg.psql(
        "malformed_traceparent",
        &format!(
            "UPDATE inbox_events SET traceparent = upper('{TRACE}') WHERE id = 'upper'; \
             UPDATE inbox_events SET traceparent = '00-4bf9' WHERE id = 'short'"
        ),
    );
    for id in ["upper", "short"] {
        assert_eq!(store.event(id).await.unwrap().unwrap().traceparent, None);
    }
    let claimed = store.claim_due(2_000, 10, 5_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|e| e.traceparent.is_none()));
}

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

/// An event of ordering key `key`, signed at `signed_at` seconds, stored at
/// `at` ms.
fn keyed(id: &str, key: Option<&str>, signed_at: Option<i64>, at: i64) -> NewInboxEvent {
    let mut e = event(id, at);
    e.ordering_key = key.map(str::to_owned);
    e.signed_at = signed_at;
    e
}

fn ids(claimed: &[webhook_guard::inbox::InboxEntry]) -> Vec<&str> {
    let mut ids: Vec<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

contract!(one_event_per_key_at_a_time_in_signed_order, |store| {
    // `completed` is stored first but was signed later than `started`.
    store
        .insert(&keyed("completed", Some("job"), Some(20), 1_000))
        .await
        .unwrap();
    store
        .insert(&keyed("started", Some("job"), Some(10), 1_001))
        .await
        .unwrap();
    store
        .insert(&keyed("other", Some("job2"), Some(15), 1_002))
        .await
        .unwrap();
    store
        .insert(&keyed("free", None, Some(30), 1_003))
        .await
        .unwrap();
    let first = store.claim_due(2_000, 10, 9_000).await.unwrap();
    assert_eq!(ids(&first), ["free", "other", "started"]);
    assert!(first.iter().all(|e| !e.stale));
    // `started` is in flight: `completed` waits.
    assert!(store.claim_due(2_100, 10, 9_000).await.unwrap().is_empty());
    assert!(
        store
            .settle("started", 9_000, &Settle::Done, 2_200)
            .await
            .unwrap()
    );
    let next = store.claim_due(2_300, 10, 9_500).await.unwrap();
    assert_eq!(ids(&next), ["completed"]);
    assert!(!next[0].stale);
});

contract!(keys_without_signed_at_go_by_arrival, |store| {
    store
        .insert(&keyed("one", Some("k"), None, 1_000))
        .await
        .unwrap();
    store
        .insert(&keyed("two", Some("k"), None, 1_001))
        .await
        .unwrap();
    let first = store.claim_due(2_000, 10, 9_000).await.unwrap();
    assert_eq!(ids(&first), ["one"]);
    assert!(
        store
            .settle("one", 9_000, &Settle::Done, 2_100)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&store.claim_due(2_200, 10, 9_000).await.unwrap()),
        ["two"]
    );
});

contract!(
    a_retrying_head_blocks_its_key_until_dead_lettered,
    |store| {
        store
            .insert(&keyed("head", Some("k"), Some(1), 1_000))
            .await
            .unwrap();
        store
            .insert(&keyed("next", Some("k"), Some(2), 1_001))
            .await
            .unwrap();
        store
            .insert(&keyed("other", Some("j"), Some(3), 1_002))
            .await
            .unwrap();
        assert_eq!(
            ids(&store.claim_due(2_000, 10, 3_000).await.unwrap()),
            ["head", "other"]
        );
        let retry = Settle::RetryAt {
            at_ms: 5_000,
            error: "boom".into(),
        };
        assert!(store.settle("head", 3_000, &retry, 2_100).await.unwrap());
        assert!(
            store
                .settle("other", 3_000, &Settle::Done, 2_100)
                .await
                .unwrap()
        );
        // `head` waits for its retry; `next` waits for `head`.
        assert!(store.claim_due(4_000, 10, 6_000).await.unwrap().is_empty());
        assert_eq!(
            ids(&store.claim_due(5_000, 10, 6_000).await.unwrap()),
            ["head"]
        );
        // A lease that expired (a dead worker) does not unblock `next` either:
        // `head` is claimed again first.
        assert_eq!(
            ids(&store.claim_due(6_000, 10, 7_000).await.unwrap()),
            ["head"]
        );
        let dead = Settle::DeadLetter("gave up".into());
        assert!(store.settle("head", 7_000, &dead, 6_100).await.unwrap());
        assert_eq!(
            ids(&store.claim_due(6_200, 10, 8_000).await.unwrap()),
            ["next"]
        );
    }
);

contract!(an_event_older_than_one_processed_is_stale, |store| {
    store
        .insert(&keyed("completed", Some("job"), Some(20), 1_000))
        .await
        .unwrap();
    store.claim_due(1_000, 10, 2_000).await.unwrap();
    assert!(
        store
            .settle("completed", 2_000, &Settle::Done, 1_100)
            .await
            .unwrap()
    );
    // Late: signed before `completed`, which is done.
    store
        .insert(&keyed("started", Some("job"), Some(10), 1_200))
        .await
        .unwrap();
    // Same signed time, other key or no key: not stale.
    store
        .insert(&keyed("elsewhere", Some("job2"), Some(10), 1_201))
        .await
        .unwrap();
    store
        .insert(&keyed("free", None, Some(10), 1_202))
        .await
        .unwrap();
    let claimed = store.claim_due(1_300, 10, 3_000).await.unwrap();
    let stale: Vec<(&str, bool)> = claimed.iter().map(|e| (e.id.as_str(), e.stale)).collect();
    assert_eq!(
        stale,
        [("started", true), ("elsewhere", false), ("free", false)]
    );
    // Skipped: done, and history says why.
    let skip = Settle::Skipped("skipped: stale".into());
    assert!(store.settle("started", 3_000, &skip, 1_400).await.unwrap());
    let started = store.event("started").await.unwrap().unwrap();
    assert_eq!(started.status, InboxStatus::Done);
    assert_eq!(started.last_error.as_deref(), Some("skipped: stale"));
    assert!(!started.stale, "stale is a claim's answer, not history");
});

contract!(
    concurrent_claimers_never_hand_out_two_events_of_one_key,
    |store| {
        const KEYS: i64 = 4;
        const PER_KEY: i64 = 12;
        for n in 0..KEYS * PER_KEY {
            let key = format!("k{}", n % KEYS);
            // Signed in reverse of arrival within each key.
            let signed = PER_KEY * KEYS - n;
            store
                .insert(&keyed(
                    &format!("e{n}"),
                    Some(&key),
                    Some(signed),
                    1_000 + n,
                ))
                .await
                .unwrap();
        }
        let in_flight =
            std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut claimers = Vec::new();
        for _ in 0..8 {
            let (store, in_flight, seen) = (store.clone(), in_flight.clone(), seen.clone());
            claimers.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let claimed = store.claim_due(5_000, 3, 99_000).await.unwrap();
                    for e in &claimed {
                        let key = e.ordering_key.clone().unwrap();
                        assert!(
                            in_flight.lock().unwrap().insert(key.clone()),
                            "two events of {key} in flight"
                        );
                        seen.lock().unwrap().push((key, e.signed_at.unwrap()));
                    }
                    tokio::task::yield_now().await;
                    for e in &claimed {
                        in_flight
                            .lock()
                            .unwrap()
                            .remove(e.ordering_key.as_ref().unwrap());
                        assert!(
                            store
                                .settle(&e.id, 99_000, &Settle::Done, 5_000)
                                .await
                                .unwrap()
                        );
                    }
                }
            }));
        }
        for c in claimers {
            c.await.unwrap();
        }
        assert_eq!(store.unprocessed().await.unwrap(), 0);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), usize::try_from(KEYS * PER_KEY).unwrap());
        for k in 0..KEYS {
            let key = format!("k{k}");
            let order: Vec<i64> = seen
                .iter()
                .filter(|(s, _)| *s == key)
                .map(|(_, t)| *t)
                .collect();
            assert!(order.is_sorted(), "{key} processed out of order: {order:?}");
        }
    }
);

/// A scheme name this version does not know (written by a newer one, or
/// by hand) makes reading the row a store error that names it, not a
/// panic; the other rows stay readable.
#[tokio::test]
async fn sqlite_an_unknown_stored_scheme_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.db");
    let store = SqliteInboxStore::open(&path).unwrap();
    store.insert(&event("evt_odd", 1_000)).await.unwrap();
    store.insert(&event("evt_fine", 2_000)).await.unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute(
            "UPDATE inbox_events SET scheme = 'rot13' WHERE id = 'evt_odd'",
            [],
        )
        .unwrap();
    let err = store.event("evt_odd").await.unwrap_err();
    assert!(
        err.message().contains("scheme") && err.message().contains("rot13"),
        "{err}"
    );
    assert!(store.events(&InboxQuery::default()).await.is_err());
    let fine = store.event("evt_fine").await.unwrap().unwrap();
    assert_eq!(fine.scheme, SchemeName::Standard);
}
