//! Idempotency with the PostgreSQL store: a real PostgreSQL server per test,
//! started on a free loopback port (tests fail, never skip, if it cannot
//! start). The same scenarios as the moka and Redis stores, plus what only a
//! database has: migrations, long keys, expired rows.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::postgres_server::PostgresServer;
use support::{Calls, client, deliver, scenarios, scope_scenarios, serve};
use webhook_guard::idempotency::{Begin, IdempotencyLayer, IdempotencyStore, PgIdempotencyStore};

async fn store(pg: &PostgresServer) -> PgIdempotencyStore {
    PgIdempotencyStore::connect(&pg.url())
        .await
        .expect("connect")
}

async fn layer(pg: &PostgresServer) -> IdempotencyLayer {
    IdempotencyLayer::new(store(pg).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_call_the_handler_once() {
    let pg = PostgresServer::start();
    scenarios::concurrent_deliveries_call_once(vec![layer(&pg).await]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receiver_instances_call_the_handler_once() {
    let pg = PostgresServer::start();
    // Two receivers with their own pools on one database, as on two machines.
    let a = layer(&pg).await;
    let b = layer(&pg).await;
    scenarios::concurrent_deliveries_call_once(vec![a, b]).await;
}

/// Each scenario of the shared behaviour table, on its own server.
macro_rules! on_postgres {
    ($($name:ident => $scenario:path;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let pg = PostgresServer::start();
            $scenario(layer(&pg).await).await;
        }
    )*};
}

on_postgres! {
    failed_handler_is_retried_and_processed_once => scenarios::failed_handler_is_retried;
    done_ttl_expires => scenarios::done_ttl_expires;
    done_outlives_the_lease => scenarios::done_outlives_the_lease;
    lease_expires_after_a_crash => scenarios::lease_expires_after_crash;
    scopes_isolate => scenarios::scopes_isolate;
    panicking_handler_is_retried => scenarios::panicking_handler_is_retried;
    cancelled_delivery_is_retried => scenarios::cancelled_delivery_is_retried;
    duplicate_waits_for_in_flight => scenarios::duplicate_waits_for_in_flight;
    unsigned_headers_do_not_change_the_key => scenarios::unsigned_headers_do_not_change_the_key;
    percent_encoded_paths_are_one_route => scope_scenarios::percent_encoded_paths_are_one_route;
    query_string_does_not_change_the_key => scope_scenarios::query_string_does_not_change_the_key;
    nested_tenants_keep_their_keys_apart => scope_scenarios::nested_tenants_keep_their_keys_apart;
    shared_scope_keeps_senders_apart => scope_scenarios::shared_scope_keeps_senders_apart;
    one_secret_under_two_nests => scope_scenarios::one_secret_under_two_nests;
    unrouted_requests_share_one_scope => scope_scenarios::unrouted_requests_share_one_scope;
    a_rotation_keeps_one_identity_per_key_list => scope_scenarios::a_rotation_keeps_one_identity_per_key_list;
    tenant_keeps_the_keys_across_rotation => scope_scenarios::tenant_keeps_the_keys_across_rotation;
}

/// What the table holds after four spellings of one delivery and one other
/// event: two keys, each naming the route template and the verifier's key
/// fingerprint, none the path as the client spelled it.
#[tokio::test]
async fn keys_name_the_route_template_and_the_verifier() {
    let pg = PostgresServer::start();
    scope_scenarios::percent_encoded_paths_are_one_route(layer(&pg).await).await;
    let keys = pg.psql("postgres", "SELECT key FROM webhook_guard_idempotency");
    let keys: Vec<String> = keys.lines().map(str::to_owned).collect();
    scope_scenarios::assert_keys_name_the_route_template(&keys, "");
}

#[tokio::test]
async fn only_the_lease_owner_can_finish_it() {
    let pg = PostgresServer::start();
    // Two instances, as on two machines.
    scenarios::only_the_lease_owner_can_finish_it(&store(&pg).await, &store(&pg).await).await;
}

/// Many begins of one key at once, from two stores with their own pools:
/// exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_begins_from_two_stores_have_one_winner() {
    let pg = PostgresServer::start();
    scenarios::concurrent_begins_have_one_winner(vec![
        Arc::new(store(&pg).await),
        Arc::new(store(&pg).await),
    ])
    .await;
}

/// The row holds the lease's token; its expiry is the server's `now()` plus
/// the lease, then plus the done TTL once completed.
#[tokio::test]
async fn rows_carry_the_token_and_their_expiry() {
    let pg = PostgresServer::start();
    let store = store(&pg).await;
    let Begin::New(token) = store.begin("evt", Duration::from_secs(300)).await.unwrap() else {
        panic!("new key")
    };
    let row = || {
        pg.psql(
            "postgres",
            "SELECT encode(token, 'hex') || ' ' || state || ' ' || \
             (extract(epoch FROM expires_at - now()) * 1000)::bigint \
             FROM webhook_guard_idempotency WHERE key = 'evt'",
        )
    };
    let in_flight = row();
    let parts: Vec<&str> = in_flight.split(' ').collect();
    assert_eq!(parts[..2], [token.to_string().as_str(), "in_flight"]);
    let ms: i64 = parts[2].parse().unwrap();
    assert!((295_000..=300_000).contains(&ms), "{in_flight}");
    assert!(
        store
            .complete("evt", token, Duration::from_secs(86_400))
            .await
            .unwrap()
    );
    let done = row();
    let parts: Vec<&str> = done.split(' ').collect();
    assert_eq!(parts[1], "done", "{done}");
    let ms: i64 = parts[2].parse().unwrap();
    assert!((86_395_000..=86_400_000).contains(&ms), "{done}");
}

/// A key longer than a b-tree entry may be (a long fixed scope and a
/// 256-byte signed id) is deduplicated like any other.
#[tokio::test]
async fn long_keys_are_deduplicated() {
    let pg = PostgresServer::start();
    let calls = Calls::default();
    // 3,000 characters that do not compress (PostgreSQL compresses long
    // index entries).
    let mut x: u32 = 0x9e37_79b9;
    let scope: String = (0..3_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'!' + u8::try_from(x % 94).unwrap())
        })
        .collect();
    let addr = serve(scenarios::app(
        layer(&pg).await.scope(scope),
        scenarios::counting(&calls, Duration::ZERO),
    ))
    .await;
    let client = client();
    let id: String = (0..256u16)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
        .collect();
    let first = deliver(&client, addr, "/webhooks", &id).await.unwrap();
    assert!(first.processed(), "{first:?}");
    let again = deliver(&client, addr, "/webhooks", &id).await.unwrap();
    assert!(again.status == 200 && again.duplicate, "{again:?}");
    assert_eq!(calls.get(), 1);
    let length = pg.psql(
        "postgres",
        "SELECT octet_length(key) FROM webhook_guard_idempotency",
    );
    assert!(length.parse::<usize>().unwrap() > 3_000, "{length}");
}

fn count(pg: &PostgresServer, condition: &str) -> usize {
    pg.psql(
        "postgres",
        &format!("SELECT count(*) FROM webhook_guard_idempotency WHERE {condition}"),
    )
    .parse()
    .unwrap()
}

/// Expired rows are deleted a bounded number at a time as the store is
/// used (256 every 32 begins), never a live row.
#[tokio::test]
async fn expired_rows_are_swept_a_few_at_a_time() {
    let pg = PostgresServer::start();
    let store = store(&pg).await;
    pg.psql(
        "postgres",
        "INSERT INTO webhook_guard_idempotency (key_hash, key, token, state, expires_at) \
         SELECT sha256(i::text::bytea), i::text, '\\x00', 'done', now() - interval '1 second' \
         FROM generate_series(1, 1000) AS i",
    );
    for i in 0..31 {
        let _ = store
            .begin(&format!("live_{i}"), Duration::from_secs(60))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&pg, "expires_at <= now()"), 1000, "no sweep yet");
    for i in 31..64 {
        let _ = store
            .begin(&format!("live_{i}"), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let mut expired = 1000;
    for _ in 0..100 {
        expired = count(&pg, "expires_at <= now()");
        if expired <= 1000 - 2 * 256 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(expired, 1000 - 2 * 256, "two sweeps of 256 rows");
    assert_eq!(count(&pg, "expires_at > now()"), 64, "live rows stay");
    assert_eq!(store.sweep_expired(10_000).await.unwrap(), 488);
    assert_eq!(store.sweep_expired(10_000).await.unwrap(), 0);
    assert_eq!(count(&pg, "true"), 64);
}

/// PostgreSQL goes down: 503 and the handler is not called; once it is
/// back, the same delivery is processed (nothing was marked seen) and the
/// pool has replaced its broken connections.
#[tokio::test]
async fn postgres_down_answers_503_and_nothing_is_marked_seen() {
    let mut pg = PostgresServer::start();
    let layer = layer(&pg).await;
    // The test server commits asynchronously: write the schema to disk
    // before the crash.
    pg.psql("postgres", "CHECKPOINT");
    let (addr, calls) = scenarios::store_down_answers_503(layer, || pg.kill()).await;
    pg.restart();
    let client = client();
    let a = deliver(&client, addr, "/webhooks", "evt_down")
        .await
        .unwrap();
    assert!(a.processed(), "{a:?}");
    let a = deliver(&client, addr, "/webhooks", "evt_down")
        .await
        .unwrap();
    assert!(a.status == 200 && a.duplicate, "{a:?}");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn postgres_down_fail_open_processes_without_deduplication() {
    let mut pg = PostgresServer::start();
    let layer = layer(&pg).await;
    scenarios::store_down_fails_open(layer, || pg.kill()).await;
}

/// A PostgreSQL that does not answer (here: a session holds a lock on the
/// table) fails the operation after the store's timeout: 503, the handler
/// is not called, and the delivery is processed once the lock is gone.
#[tokio::test]
async fn postgres_not_answering_in_time_answers_503() {
    let pg = PostgresServer::start();
    let store = store(&pg).await.timeout(Duration::from_millis(300));
    let calls = Calls::default();
    let addr = serve(scenarios::app(
        IdempotencyLayer::new(store.clone()),
        scenarios::counting(&calls, Duration::ZERO),
    ))
    .await;
    let mut locker = store.pool().get().await.unwrap();
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE webhook_guard_idempotency IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let client = client();
    let a = deliver(&client, addr, "/webhooks", "evt_slow")
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(calls.get(), 0);
    let err = store.begin("k", Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "PostgreSQL begin did not finish within 300ms"
    );
    tx.rollback().await.unwrap();
    let a = deliver(&client, addr, "/webhooks", "evt_slow")
        .await
        .unwrap();
    assert!(a.processed(), "{a:?}");
}

#[tokio::test]
async fn connecting_to_nothing_is_a_clear_error_without_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = PgIdempotencyStore::connect(&format!("postgres://app:hunter2@127.0.0.1:{port}/db"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to PostgreSQL"), "{msg}");
    assert!(msg.contains("Connection refused"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    let err = PgIdempotencyStore::connect("postgres://app:hunter2@127.0.0.1:notaport/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("the PostgreSQL URL is not valid"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn debug_does_not_show_the_url() {
    let pg = PostgresServer::start();
    // Trust authentication: the password is accepted and ignored.
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/postgres",
        pg.port()
    );
    let store = PgIdempotencyStore::connect(&url).await.unwrap();
    assert_eq!(
        format!("{store:?}"),
        "PgIdempotencyStore { max_connections: 16, timeout: 2s, .. }"
    );
}

/// Receivers that start together on an empty database: every one connects,
/// the table is created once, and the schema table says version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_on_an_empty_database_all_succeed() {
    let pg = PostgresServer::start();
    let url = pg.create_database("fresh");
    let (a, b, c, d) = tokio::join!(
        PgIdempotencyStore::connect(&url),
        PgIdempotencyStore::connect(&url),
        PgIdempotencyStore::connect(&url),
        PgIdempotencyStore::connect(&url),
    );
    for store in [a, b, c, d] {
        let store = store.unwrap();
        assert!(matches!(
            store.begin("k", Duration::from_secs(60)).await.unwrap(),
            Begin::New(_) | Begin::InFlight
        ));
    }
    assert_eq!(
        pg.psql(
            "fresh",
            "SELECT version FROM webhook_guard_schema WHERE component = 'idempotency'"
        ),
        "1"
    );
}

/// A database migrated by a newer version of the crate is refused, and
/// nothing is written to it.
#[tokio::test]
async fn a_newer_schema_is_refused() {
    let pg = PostgresServer::start();
    let url = pg.create_database("newer");
    pg.psql(
        "newer",
        "CREATE TABLE webhook_guard_schema (component TEXT PRIMARY KEY, \
         version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
         INSERT INTO webhook_guard_schema (component, version) VALUES ('idempotency', 99)",
    );
    let err = PgIdempotencyStore::connect(&url).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`idempotency` schema at version 99, newer than the version 1"),
        "{msg}"
    );
    assert_eq!(
        pg.psql(
            "newer",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'webhook_guard_idempotency'"
        ),
        "0"
    );
}

/// `from_pool` takes a pool built by the user and migrates through it.
#[tokio::test]
async fn from_pool_uses_the_callers_pool() {
    let pg = PostgresServer::start();
    let config: tokio_postgres::Config = pg.url().parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(2)
        .build()
        .unwrap();
    let store = PgIdempotencyStore::from_pool(pool).await.unwrap();
    assert_eq!(store.pool().status().max_size, 2);
    let Begin::New(token) = store.begin("k", Duration::from_secs(60)).await.unwrap() else {
        panic!("new key")
    };
    assert!(store.release("k", token).await.unwrap());
    assert!(matches!(
        store.begin("k", Duration::from_secs(60)).await.unwrap(),
        Begin::New(_)
    ));
}

/// Two applications on one database, each in its own schema (set in the
/// URL, as the docs say): each has its own table and its own keys.
#[tokio::test]
async fn schemas_keep_applications_apart() {
    let pg = PostgresServer::start();
    pg.psql("postgres", "CREATE SCHEMA orders; CREATE SCHEMA billing");
    let in_schema = |schema: &str| format!("{}?options=-csearch_path%3D{schema}", pg.url());
    let orders = PgIdempotencyStore::connect(&in_schema("orders"))
        .await
        .unwrap();
    let billing = PgIdempotencyStore::connect(&in_schema("billing"))
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    assert!(matches!(
        orders.begin("k", lease).await.unwrap(),
        Begin::New(_)
    ));
    assert!(matches!(
        billing.begin("k", lease).await.unwrap(),
        Begin::New(_)
    ));
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(schemaname, ',' ORDER BY schemaname) FROM pg_tables \
             WHERE tablename = 'webhook_guard_idempotency'"
        ),
        "billing,orders"
    );
}
