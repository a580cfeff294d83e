//! `examples/console.rs` run as a process: it prints a fresh token that its
//! console requires, the console shows deliveries, its `/down` endpoint
//! fills the dead letter queue, and replaying after `/heal` delivers; with
//! `inbox`, the console shows what `/ok` received in its inbox view.
#![cfg(all(feature = "console", feature = "sqlite"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod example_binary;
use example_binary::example_binary;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let res = client.get(url).send().await.unwrap();
    assert!(res.status().is_success(), "{url}: {}", res.status());
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(client, url).await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_example_tells_the_whole_story() {
    let mut child = Command::new(example_binary("console"))
        .env("CONSOLE_PORT", "0")
        .env("CONSOLE_RUN_SECONDS", "60")
        .env_remove("CONSOLE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _running = Running(child);
    let mut next_line = |prefix: &str| {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("expected `{prefix}...`, got {line:?}"))
            .to_owned()
    };
    let console = next_line("console:  ");
    let token = next_line("token:    ");
    let receiver = next_line("receiver: ");
    // No token given: a fresh one of 32 random bytes guards the API.
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let anonymous = reqwest::Client::new();
    let denied = anonymous
        .get(format!("{console}/api/destinations"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    let html = client
        .get(&console)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Register a webhook"));
    let dests = get(&client, &format!("{console}/api/destinations")).await;
    assert_eq!(dests.as_array().unwrap().len(), 3);

    // Deliveries to /ok succeed; what goes to /down is dead-lettered.
    wait_for(
        &client,
        &format!("{console}/api/deliveries?status=delivered"),
        "a delivery",
        |v| v["items"][0]["lastAttempt"]["statusCode"] == 200,
    )
    .await;
    let dlq = wait_for(
        &client,
        &format!("{console}/api/dead-letters"),
        "a dead letter",
        |v| !v["items"].as_array().unwrap().is_empty(),
    )
    .await;
    let dead = &dlq["items"][0];
    assert!(dead["destinationUrl"].as_str().unwrap().ends_with("/down"));
    assert_eq!(dead["lastAttempt"]["statusCode"], 503);

    // Heal /down, replay everything: the replays are delivered.
    client.get(format!("{receiver}/heal")).send().await.unwrap();
    let summary: Value = serde_json::from_slice(
        &client
            .post(format!("{console}/api/dead-letters/replay-all"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let replay_id = summary["replayed"][0]["id"]
        .as_str()
        .expect("a replay")
        .to_owned();
    wait_for(
        &client,
        &format!("{console}/api/deliveries/{replay_id}"),
        "the replay",
        |v| v["delivery"]["status"] == "delivered",
    )
    .await;

    // Built with `inbox` too (as this test builds it), `/ok` stores what it
    // receives in an inbox that the console shows; its handler refuses
    // `kpi.alert`, which ends as a dead letter.
    #[cfg(feature = "inbox")]
    {
        let counts = format!("{console}/api/inbox/counts");
        wait_for(&client, &counts, "inbox events done and dead", |v| {
            v["done"].as_u64() >= Some(1) && v["deadLettered"].as_u64() >= Some(1)
        })
        .await;
        let dead = get(&client, &format!("{console}/api/inbox/dead-letters")).await;
        assert_eq!(dead["items"][0]["eventType"], "kpi.alert", "{dead}");
    }
}
