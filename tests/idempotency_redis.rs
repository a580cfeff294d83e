//! Idempotency with the Redis store: a real `redis-server` per test, started
//! on a free loopback port (tests fail, never skip, if it cannot start).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::redis_server::RedisServer;
use support::{scenarios, scope_scenarios};
use webhook_guard::idempotency::{Begin, IdempotencyLayer, IdempotencyStore, RedisStore};

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::connect(&redis.url()).await.expect("connect")
}

async fn layer(redis: &RedisServer) -> IdempotencyLayer {
    IdempotencyLayer::new(store(redis).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_call_the_handler_once() {
    let redis = RedisServer::start();
    scenarios::concurrent_deliveries_call_once(vec![layer(&redis).await]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receiver_instances_call_the_handler_once() {
    let redis = RedisServer::start();
    // Two receivers with their own connections, as on two machines.
    let a = layer(&redis).await;
    let b = layer(&redis).await;
    scenarios::concurrent_deliveries_call_once(vec![a, b]).await;
}

#[tokio::test]
async fn failed_handler_is_retried_and_processed_once() {
    let redis = RedisServer::start();
    scenarios::failed_handler_is_retried(layer(&redis).await).await;
}

#[tokio::test]
async fn done_ttl_expires() {
    let redis = RedisServer::start();
    scenarios::done_ttl_expires(layer(&redis).await).await;
}

#[tokio::test]
async fn done_outlives_the_lease() {
    let redis = RedisServer::start();
    scenarios::done_outlives_the_lease(layer(&redis).await).await;
}

#[tokio::test]
async fn lease_expires_after_a_crash() {
    let redis = RedisServer::start();
    scenarios::lease_expires_after_crash(layer(&redis).await).await;
}

#[tokio::test]
async fn scopes_isolate() {
    let redis = RedisServer::start();
    scenarios::scopes_isolate(layer(&redis).await).await;
}

#[tokio::test]
async fn panicking_handler_is_retried() {
    let redis = RedisServer::start();
    scenarios::panicking_handler_is_retried(layer(&redis).await).await;
}

#[tokio::test]
async fn cancelled_delivery_is_retried() {
    let redis = RedisServer::start();
    scenarios::cancelled_delivery_is_retried(layer(&redis).await).await;
}

#[tokio::test]
async fn duplicate_waits_for_in_flight() {
    let redis = RedisServer::start();
    scenarios::duplicate_waits_for_in_flight(layer(&redis).await).await;
}

#[tokio::test]
async fn unsigned_headers_do_not_change_the_key() {
    let redis = RedisServer::start();
    scenarios::unsigned_headers_do_not_change_the_key(layer(&redis).await).await;
}

#[tokio::test]
async fn percent_encoded_paths_are_one_route() {
    let redis = RedisServer::start();
    scope_scenarios::percent_encoded_paths_are_one_route(layer(&redis).await).await;
}

#[tokio::test]
async fn query_string_does_not_change_the_key() {
    let redis = RedisServer::start();
    scope_scenarios::query_string_does_not_change_the_key(layer(&redis).await).await;
}

#[tokio::test]
async fn nested_tenants_keep_their_keys_apart() {
    let redis = RedisServer::start();
    scope_scenarios::nested_tenants_keep_their_keys_apart(layer(&redis).await).await;
}

#[tokio::test]
async fn shared_scope_keeps_senders_apart() {
    let redis = RedisServer::start();
    scope_scenarios::shared_scope_keeps_senders_apart(layer(&redis).await).await;
}

#[tokio::test]
async fn one_secret_under_two_nests() {
    let redis = RedisServer::start();
    scope_scenarios::one_secret_under_two_nests(layer(&redis).await).await;
}

#[tokio::test]
async fn unrouted_requests_share_one_scope() {
    let redis = RedisServer::start();
    scope_scenarios::unrouted_requests_share_one_scope(layer(&redis).await).await;
}

#[tokio::test]
async fn a_rotation_keeps_one_identity_per_key_list() {
    let redis = RedisServer::start();
    scope_scenarios::a_rotation_keeps_one_identity_per_key_list(layer(&redis).await).await;
}

#[tokio::test]
async fn tenant_keeps_the_keys_across_rotation() {
    let redis = RedisServer::start();
    scope_scenarios::tenant_keeps_the_keys_across_rotation(layer(&redis).await).await;
}

/// What Redis holds after four spellings of one delivery and one other
/// event: two keys, each naming the route template and the verifier's key
/// fingerprint, none the path as the client spelled it.
#[tokio::test]
async fn keys_name_the_route_template_and_the_verifier() {
    let redis = RedisServer::start();
    scope_scenarios::percent_encoded_paths_are_one_route(layer(&redis).await).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    scope_scenarios::assert_keys_name_the_route_template(&keys, "webhook-guard:idem:");
}

#[tokio::test]
async fn only_the_lease_owner_can_finish_it() {
    let redis = RedisServer::start();
    // Two instances, as on two machines.
    scenarios::only_the_lease_owner_can_finish_it(&store(&redis).await, &store(&redis).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_begins_from_two_stores_have_one_winner() {
    let redis = RedisServer::start();
    scenarios::concurrent_begins_have_one_winner(vec![
        Arc::new(store(&redis).await),
        Arc::new(store(&redis).await),
    ])
    .await;
}

#[tokio::test]
async fn keys_carry_the_prefix_and_their_ttl() {
    let redis = RedisServer::start();
    let store = store(&redis).await.key_prefix("orders:");
    let Begin::New(token) = store.begin("evt", Duration::from_secs(300)).await.unwrap() else {
        panic!("new key")
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let value: String = redis::cmd("GET")
        .arg("orders:evt")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, token.to_string());
    let pttl: i64 = redis::cmd("PTTL")
        .arg("orders:evt")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((299_000..=300_000).contains(&pttl), "{pttl}");
    assert!(
        store
            .complete("evt", token, Duration::from_secs(86_400))
            .await
            .unwrap()
    );
    let value: String = redis::cmd("GET")
        .arg("orders:evt")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "done");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("orders:evt")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((86_399_000..=86_400_000).contains(&pttl), "{pttl}");
}

#[tokio::test]
async fn redis_down_answers_503_and_does_not_process() {
    let mut redis = RedisServer::start();
    let layer = layer(&redis).await;
    scenarios::store_down_answers_503(layer, || redis.kill()).await;
}

#[tokio::test]
async fn redis_down_fail_open_processes_without_deduplication() {
    let mut redis = RedisServer::start();
    let layer = layer(&redis).await;
    scenarios::store_down_fails_open(layer, || redis.kill()).await;
}

#[tokio::test]
async fn connecting_to_nothing_is_a_clear_error_without_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = RedisStore::connect(&format!("redis://:hunter2@127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to Redis"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    let err = RedisStore::connect("http://:hunter2@nowhere")
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid Redis URL"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn debug_does_not_show_the_url() {
    let redis = RedisServer::start();
    let dbg = format!("{:?}", store(&redis).await);
    assert_eq!(dbg, "RedisStore { prefix: \"webhook-guard:idem:\", .. }");
}
