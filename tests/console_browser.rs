//! The console page in a real headless Chromium, driven over WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver`
//! (`apt-get install -y chromium chromium-driver`); the test fails with that
//! hint when they are missing. Screenshots of each view are saved to
//! `target/console-screenshots/`.
#![cfg(feature = "console")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console_support;
#[cfg(feature = "inbox")]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use webhook_guard::sender::console;

use console_support::{HOSTILE_BODY, serve, setup};

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str = "the console browser test needs Debian's Chromium and its WebDriver: \
     run `apt-get install -y chromium chromium-driver`";

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> PathBuf {
    for p in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromedriver not found. {INSTALL_HINT}");
}

async fn start_driver() -> Driver {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found. {INSTALL_HINT}"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(chromedriver_path())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}. {INSTALL_HINT}"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                format!("--user-data-dir={}", driver._profile.path().display()),
                "--window-size=1400,1000",
            ],
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}. {INSTALL_HINT}"))
}

/// chromedriver, a Chromium session at a fixed window size, and `url`
/// loaded in it. Keep the driver alive as long as the session.
async fn open_page(url: &str) -> (Driver, Client) {
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.set_window_size(1400, 1000).await.unwrap();
    c.goto(url).await.unwrap();
    (driver, c)
}

/// Evaluates `expr` in the page until it is true.
async fn wait_until(c: &Client, expr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = c
            .execute(&format!("return !!({expr});"), vec![])
            .await
            .unwrap();
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let status = c
                .execute(
                    "return document.getElementById('status').textContent",
                    vec![],
                )
                .await
                .unwrap();
            panic!("timed out waiting for {what} ({expr}); status line: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, expr: &str) -> String {
    let v = c
        .execute(&format!("return String({expr});"), vec![])
        .await
        .unwrap();
    v.as_str().unwrap().to_owned()
}

async fn screenshot(c: &Client, name: &str, scroll_to: &str) {
    c.execute(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});",
        vec![json!(scroll_to)],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let png = c.screenshot().await.unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn click(c: &Client, xpath: &str) {
    c.find(Locator::XPath(xpath))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn register(c: &Client, url: &str, events: &[&str]) {
    let field = c.find(Locator::Id("url")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(url).await.unwrap();
    for e in events {
        click(
            c,
            &format!("//form[@id='register-form']//input[@name='events' and @value='{e}']"),
        )
        .await;
    }
    click(c, "//form[@id='register-form']//button[@type='submit']").await;
}

/// Nothing injected ran: no alert, no marker, no element from the hostile
/// body, and the only script is the console's own.
async fn assert_nothing_injected(c: &Client) {
    assert!(c.get_alert_text().await.is_err(), "an alert is open");
    assert_eq!(text(c, "window.__injected").await, "undefined");
    assert_eq!(
        text(
            c,
            "[...document.scripts].map(s => new URL(s.src).pathname.split('/assets/')[1]).join()"
        )
        .await,
        "console.js,inbox.js,health.js",
        "the console's own scripts only, none inline"
    );
    assert_eq!(
        text(c, "document.querySelectorAll('main img').length").await,
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_registers_tests_sees_history_and_replays_the_dlq() {
    let s = setup().await;
    let base = serve(
        Router::new().nest(
            "/console",
            console::Console::new(s.sender.clone())
                .allow_unauthenticated()
                .router(),
        ),
    )
    .await;
    let (_driver, c) = open_page(&format!("{base}/console")).await;
    wait_until(
        &c,
        "!document.getElementById('webhooks-empty').hidden",
        "the empty table",
    )
    .await;
    screenshot(&c, "01-empty", "body").await;

    // Register the healthy endpoint through the form, with no secret: one
    // is generated and shown once.
    let ok_url = format!("{}/ok", s.receiver_url);
    register(&c, &ok_url, &["kpi.alert", "ingestion.completed"]).await;
    wait_until(
        &c,
        "!document.getElementById('secret-once').hidden",
        "the generated secret",
    )
    .await;
    let shown_secret = text(&c, "document.getElementById('secret-value').textContent").await;
    assert_eq!(shown_secret.len(), 64);
    wait_until(
        &c,
        "document.querySelectorAll('#webhooks tbody tr').length === 1",
        "the new row",
    )
    .await;
    let dests = s.sender.destinations().await.unwrap();
    assert_eq!(dests.len(), 1);
    assert_eq!(dests[0].url, ok_url);
    assert_eq!(dests[0].secrets[0].expose_bytes(), shown_secret.as_bytes());
    let ok_id = dests[0].id.clone();
    screenshot(&c, "02-registered", "body").await;
    click(&c, "//button[@id='secret-dismiss']").await;
    wait_until(&c, "document.getElementById('secret-once').hidden && document.getElementById('secret-value').textContent === ''", "the secret to be dismissed").await;

    // Rotate: a new secret is shown once; the old one keeps signing.
    click(&c, &format!("//table[@id='webhooks']//tr[@data-id='{ok_id}']//button[normalize-space()='Rotate secret']")).await;
    c.accept_alert().await.unwrap();
    wait_until(
        &c,
        "!document.getElementById('secret-once').hidden",
        "the rotated secret",
    )
    .await;
    let rotated = text(&c, "document.getElementById('secret-value').textContent").await;
    let stored = s.sender.destination(&ok_id).await.unwrap();
    assert_eq!(stored.secrets[0].expose_bytes(), rotated.as_bytes());
    assert_eq!(stored.secrets[1].expose_bytes(), shown_secret.as_bytes());
    click(&c, "//button[@id='secret-dismiss']").await;

    // A failing endpoint whose URL and response body carry markup.
    let flaky_url = format!(
        "{}/flaky?<script>window.__injected=3</script>",
        s.receiver_url
    );
    register(&c, &flaky_url, &[]).await;
    wait_until(
        &c,
        "document.querySelectorAll('#webhooks tbody tr').length === 2",
        "the second row",
    )
    .await;
    let flaky_id = s
        .sender
        .destinations()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.url == flaky_url)
        .expect("the flaky destination, URL stored as typed")
        .id;
    let shown_url = text(
        &c,
        &format!(
            "document.querySelector('#webhooks tr[data-id=\"{flaky_id}\"] td.url').textContent"
        ),
    )
    .await;
    assert_eq!(shown_url, flaky_url, "the URL is shown as text");

    // Test: the delivery appears in the history with its status code.
    click(
        &c,
        &format!(
            "//table[@id='webhooks']//tr[@data-id='{ok_id}']//button[normalize-space()='Test']"
        ),
    )
    .await;
    wait_until(
        &c,
        "[...document.querySelectorAll('#history tbody tr[data-status=delivered] td.code')].some(td => td.textContent === '200')",
        "a delivered test event with code 200",
    )
    .await;
    screenshot(&c, "03-history", "#history-title").await;

    // A failing delivery lands in the DLQ with its error; its hostile
    // response body is shown as text in the history.
    click(
        &c,
        &format!(
            "//table[@id='webhooks']//tr[@data-id='{flaky_id}']//button[normalize-space()='Test']"
        ),
    )
    .await;
    wait_until(
        &c,
        "document.querySelectorAll('#dlq tbody tr').length === 1",
        "a dead letter",
    )
    .await;
    let error = text(
        &c,
        "document.querySelector('#dlq tbody tr td.err').textContent",
    )
    .await;
    assert!(error.contains("500"), "{error}");
    wait_until(
        &c,
        "[...document.querySelectorAll('#history tbody td.code')].some(td => td.textContent === '500')",
        "the failed attempt in the history",
    )
    .await;
    let response = text(&c, "document.querySelector('#history tbody tr[data-status=dead_lettered] td.response').textContent").await;
    assert_eq!(response, HOSTILE_BODY);
    assert_nothing_injected(&c).await;
    screenshot(&c, "04-dlq", "#history-title").await;

    // Replay once the endpoint works again: delivered, the DLQ empties.
    s.receiver.heal();
    click(&c, "//table[@id='dlq']//button[normalize-space()='Replay']").await;
    wait_until(
        &c,
        "document.querySelectorAll('#dlq tbody tr').length === 0",
        "an empty DLQ",
    )
    .await;
    wait_until(
        &c,
        "document.querySelectorAll('#history tbody tr[data-status=delivered]').length === 2 && document.querySelectorAll('#history tbody tr[data-status=replayed]').length === 1",
        "the replay delivered",
    )
    .await;
    assert!(
        s.receiver
            .flaky_hits
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2
    );

    // History of one webhook only.
    click(
        &c,
        &format!(
            "//table[@id='webhooks']//tr[@data-id='{ok_id}']//button[normalize-space()='History']"
        ),
    )
    .await;
    wait_until(
        &c,
        "document.querySelectorAll('#history tbody tr').length === 1",
        "the filtered history",
    )
    .await;
    screenshot(&c, "05-replayed", "#webhooks-title").await;

    // A bad URL gets a readable error next to the form.
    register(&c, "ftp://files.example/x", &[]).await;
    wait_until(
        &c,
        "!document.getElementById('register-error').hidden",
        "the form error",
    )
    .await;
    let err = text(&c, "document.getElementById('register-error').textContent").await;
    assert!(err.contains("http or https"), "{err}");
    screenshot(&c, "06-form-error", "body").await;
    assert_nothing_injected(&c).await;

    c.close().await.unwrap();
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_picks_a_scheme_and_edits_the_events() {
    let s = setup().await;
    let base = serve(
        console::Console::new(s.sender.clone())
            .allow_unauthenticated()
            .router(),
    )
    .await;
    let (_driver, c) = open_page(&base).await;
    wait_until(
        &c,
        "!document.getElementById('webhooks-empty').hidden",
        "the empty table",
    )
    .await;

    // Standard Webhooks from the form's choice: a `whsec_` secret, and the
    // list shows the scheme.
    c.find(Locator::Id("scheme"))
        .await
        .unwrap()
        .select_by_value("standard")
        .await
        .unwrap();
    let url = format!("{}/ok", s.receiver_url);
    register(&c, &url, &["kpi.alert"]).await;
    wait_until(
        &c,
        "!document.getElementById('secret-once').hidden && document.querySelectorAll('#webhooks tbody tr').length === 1",
        "the generated secret and the new row",
    )
    .await;
    let shown = text(&c, "document.getElementById('secret-value').textContent").await;
    let key = webhook_guard::Scheme::standard()
        .parse_secret(&shown)
        .unwrap();
    let d = s.sender.destinations().await.unwrap().remove(0);
    assert_eq!(d.scheme.as_str(), "standard");
    assert_eq!(d.secrets[0].expose_bytes(), key.expose_bytes());
    let cell = |class: &str| {
        format!(
            "document.querySelector('#webhooks tr[data-id=\"{}\"] td.{class}').textContent",
            d.id
        )
    };
    assert_eq!(text(&c, &cell("scheme")).await, "standard");
    assert_eq!(text(&c, &cell("events")).await, "kpi.alert");
    assert_eq!(
        text(&c, "document.getElementById('scheme').value").await,
        "native",
        "the form resets to the default"
    );

    // Edit events: the editor starts from the current filter; a pattern
    // that is no checkbox is kept as text.
    s.sender
        .set_event_filter(
            &d.id,
            webhook_guard::sender::EventFilter::only(["kpi.alert", "ingestion.*"]),
        )
        .await
        .unwrap();
    wait_until(
        &c,
        &format!("{} === 'kpi.alert, ingestion.*'", cell("events")),
        "the filter changed in Rust",
    )
    .await;
    let edit = format!(
        "//table[@id='webhooks']//tr[@data-id='{}']//button[normalize-space()='Edit events']",
        d.id
    );
    click(&c, &edit).await;
    wait_until(
        &c,
        "!document.getElementById('edit-events-form').hidden",
        "the editor",
    )
    .await;
    assert_eq!(
        text(&c, "document.getElementById('edit-events-patterns').value").await,
        "ingestion.*"
    );
    assert_eq!(
        text(
            &c,
            "document.querySelector('#edit-events-form input[value=\"kpi.alert\"]').checked"
        )
        .await,
        "true"
    );
    screenshot(&c, "07-edit-events", "#webhooks-title").await;
    // Untick kpi.alert, tick dashboard.ready, keep the pattern.
    let boxes = "//form[@id='edit-events-form']//input[@name='events'";
    click(&c, &format!("{boxes} and @value='kpi.alert']")).await;
    click(&c, &format!("{boxes} and @value='dashboard.ready']")).await;
    click(&c, "//form[@id='edit-events-form']//button[@type='submit']").await;
    wait_until(
        &c,
        &format!(
            "document.getElementById('edit-events-form').hidden && {} === 'dashboard.ready, ingestion.*'",
            cell("events")
        ),
        "the saved filter",
    )
    .await;
    assert_eq!(
        s.sender.destination(&d.id).await.unwrap().events,
        webhook_guard::sender::EventFilter::only(["dashboard.ready", "ingestion.*"])
    );

    // A pattern nothing matches gets the API's error in the editor.
    click(&c, &edit).await;
    let patterns = c.find(Locator::Id("edit-events-patterns")).await.unwrap();
    patterns.clear().await.unwrap();
    patterns.send_keys("nope.*").await.unwrap();
    click(&c, "//form[@id='edit-events-form']//button[@type='submit']").await;
    wait_until(
        &c,
        "!document.getElementById('edit-events-error').hidden",
        "the editor's error",
    )
    .await;
    let err = text(
        &c,
        "document.getElementById('edit-events-error').textContent",
    )
    .await;
    assert!(err.contains("nope.*"), "{err}");

    // Nothing ticked and no pattern: every event.
    click(&c, &format!("{boxes} and @value='dashboard.ready']")).await;
    let patterns = c.find(Locator::Id("edit-events-patterns")).await.unwrap();
    patterns.clear().await.unwrap();
    click(&c, "//form[@id='edit-events-form']//button[@type='submit']").await;
    wait_until(
        &c,
        &format!("{} === 'All events'", cell("events")),
        "every event",
    )
    .await;
    assert_eq!(
        s.sender.destination(&d.id).await.unwrap().events,
        webhook_guard::sender::EventFilter::All
    );
    assert_nothing_injected(&c).await;
    c.close().await.unwrap();
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_asks_for_the_token_when_the_api_requires_one() {
    let s = setup().await;
    s.sender
        .add_destination(webhook_guard::sender::NewDestination::new(
            format!("{}/ok", s.receiver_url),
            "console-browser-secret-0123456789",
        ))
        .await
        .unwrap();
    let app = console::Console::new(s.sender.clone())
        .bearer_token("browser-token")
        .router();
    let base = serve(app).await;
    let (_driver, c) = open_page(&base).await;
    wait_until(
        &c,
        "!document.getElementById('token-panel').hidden",
        "the sign-in panel",
    )
    .await;
    assert_eq!(
        text(&c, "document.querySelectorAll('#webhooks tbody tr').length").await,
        "0"
    );
    screenshot(&c, "00-sign-in", "body").await;

    let field = c.find(Locator::Id("token")).await.unwrap();
    field.send_keys("wrong-token").await.unwrap();
    click(&c, "//form[@id='token-form']//button").await;
    wait_until(
        &c,
        "document.getElementById('status').textContent.includes('token')",
        "the refusal",
    )
    .await;
    assert_eq!(
        text(&c, "document.querySelectorAll('#webhooks tbody tr').length").await,
        "0"
    );

    let field = c.find(Locator::Id("token")).await.unwrap();
    field.send_keys("browser-token").await.unwrap();
    click(&c, "//form[@id='token-form']//button").await;
    wait_until(
        &c,
        "document.querySelectorAll('#webhooks tbody tr').length === 1",
        "the webhooks table",
    )
    .await;
    wait_until(
        &c,
        "document.getElementById('token-panel').hidden",
        "the panel to close",
    )
    .await;
    c.close().await.unwrap();
    s.handle.shutdown().await;
}

/// Every request that reached the console: method, path and status.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, u16)>>>;

async fn record(
    axum::extract::State(seen): axum::extract::State<Seen>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let res = next.run(req).await;
    seen.lock()
        .unwrap()
        .push((method, path, res.status().as_u16()));
    res
}

/// A page on another origin that tries every way a page can to change
/// the console at `console`: an HTML form (`text/plain` with a JSON-looking
/// body), `no-cors` fetches, and CORS fetches that need a preflight.
fn attacker_page(console: &str, destination: &str, dead: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
<form id="form" method="POST" action="{console}/api/dead-letters/replay-all" enctype="text/plain">
<input name='{{"x":"' value='"}}'></form>
<script>
(async () => {{
  const c = "{console}";
  const noCors = (method, path, headers, body) =>
    fetch(c + path, {{ method, mode: "no-cors", headers, body }});
  const tries = [
    noCors("POST", "/api/dead-letters/replay-all"),
    noCors("POST", "/api/dead-letters/replay-all", {{ "Content-Type": "application/json" }}, "{{}}"),
    noCors("POST", "/api/dead-letters/{dead}/replay", {{ "Content-Type": "text/plain" }}, "{{}}"),
    noCors("POST", "/api/destinations/{destination}/test"),
    noCors("POST", "/api/destinations", {{ "Content-Type": "text/plain" }},
      JSON.stringify({{ url: "http://127.0.0.1:9/stolen" }})),
    fetch(c + "/api/destinations", {{ method: "POST", headers: {{ "Content-Type": "application/json" }},
      body: JSON.stringify({{ url: "http://127.0.0.1:9/stolen" }}) }}),
    fetch(c + "/api/destinations/{destination}", {{ method: "PATCH",
      headers: {{ "Content-Type": "application/json" }}, body: '{{"enabled":false}}' }}),
    fetch(c + "/api/destinations/{destination}", {{ method: "DELETE" }}),
  ];
  const results = await Promise.allSettled(tries);
  window.__done = results.map((r) => r.status).join(",");
}})();
</script></body></html>"#
    )
}

/// A destination at the failing endpoint and its test event, dead-lettered:
/// `(destination id, dead letter id)`.
async fn a_dead_letter(s: &console_support::Setup) -> (String, String) {
    let flaky = s
        .sender
        .add_destination(webhook_guard::sender::NewDestination::new(
            format!("{}/flaky", s.receiver_url),
            "flaky-destination-key-0123456789",
        ))
        .await
        .unwrap();
    s.sender.send_test_event(&flaky.id).await.unwrap();
    let query = webhook_guard::sender::DeliveryQuery::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        if let Some(d) = s.sender.dead_letters(&query).await.unwrap().items.pop() {
            break d.id;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (flaky.id, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_cannot_change_anything() {
    let s = setup().await;
    let (flaky_id, dead) = a_dead_letter(&s).await;
    let snapshot = |sender: webhook_guard::sender::Sender<_>| async move {
        let deliveries = sender.deliveries(&Default::default()).await.unwrap();
        let destinations = sender.destinations().await.unwrap();
        serde_json::to_string(&(deliveries.items, destinations)).unwrap()
    };
    let before = snapshot(s.sender.clone()).await;

    // The console without authentication of its own: the checks alone
    // must keep the other page out.
    let seen = Seen::default();
    let console_app = console::Console::new(s.sender.clone())
        .allow_unauthenticated()
        .router()
        .layer(axum::middleware::from_fn_with_state(seen.clone(), record));
    let console_url = serve(console_app).await;
    let page = attacker_page(&console_url, &flaky_id, &dead);
    let attacker = serve(Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    ))
    .await;
    let port = attacker.rsplit(':').next().unwrap();
    let driver = start_driver().await;
    let c = browser(&driver).await;
    // Another site (localhost), and the same site on another port.
    for origin in [format!("http://localhost:{port}"), attacker.clone()] {
        c.goto(&origin).await.unwrap();
        wait_until(&c, "window.__done !== undefined", "the page's fetches").await;
        c.execute("document.getElementById('form').submit();", vec![])
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&console_url)
        {
            assert!(Instant::now() < deadline, "the form was not submitted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        wait_until(
            &c,
            "document.readyState === 'complete'",
            "the form's answer",
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let seen = seen.lock().unwrap().clone();
    let form_posts = seen
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/api/dead-letters/replay-all")
        .count();
    assert!(form_posts >= 4, "the browser sent the attempts: {seen:?}");
    for (method, path, status) in &seen {
        if method != "GET" && method != "OPTIONS" {
            assert!(
                *status == 403 || *status == 415,
                "{method} {path} answered {status}: {seen:?}"
            );
        }
    }
    assert_eq!(snapshot(s.sender.clone()).await, before, "nothing changed");
    assert_eq!(
        s.receiver
            .flaky_hits
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "nothing was sent again"
    );
    c.close().await.unwrap();
    s.handle.shutdown().await;
}

/// The inbox view: its counts equal the API's, and a dead letter replayed
/// from the page is processed.
#[cfg(feature = "inbox")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_the_inbox_and_replays_its_dead_letters() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use webhook_guard::inbox::{Inbox, InboxEvent, RetryPolicy, SqliteInboxStore};

    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteInboxStore::open(dir.path().join("inbox.db")).unwrap();
    let inbox = Inbox::builder(store)
        .retry(RetryPolicy::none())
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let healed = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healed);
    let workers = inbox.start(move |e: InboxEvent<Value>| {
        let healed = h.load(Ordering::SeqCst);
        async move {
            if e.id.starts_with("fail_") && !healed {
                return Err(format!("<b>refused</b> {}", e.id));
            }
            Ok(())
        }
    });
    let receiver = support::serve(
        Router::new()
            .route("/webhooks", axum::routing::post(|| async {}))
            .layer(inbox.layer())
            .layer(support::verify_layer()),
    )
    .await;
    for id in ["ok_1", "ok_2", "ok_3", "fail_1", "fail_2"] {
        let answer = support::deliver(&support::client(), receiver, "/webhooks", id)
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let base = serve(
        Router::new().nest(
            "/console",
            console::Console::new(s.sender.clone())
                .inbox(inbox.clone())
                .allow_unauthenticated()
                .router(),
        ),
    )
    .await;
    let (_driver, c) = open_page(&format!("{base}/console")).await;
    let count = |state: &str| format!("document.getElementById('inbox-count-{state}').textContent");
    wait_until(
        &c,
        &format!(
            "!document.getElementById('inbox').hidden && {} === '3' && {} === '2'",
            count("done"),
            count("dead_lettered")
        ),
        "the inbox view with its counts",
    )
    .await;
    let api = reqwest::get(format!("{base}/console/api/inbox/counts"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let api: Value = serde_json::from_slice(&api).unwrap();
    for (state, key) in [
        ("received", "received"),
        ("processing", "processing"),
        ("retrying", "retrying"),
        ("done", "done"),
        ("dead_lettered", "deadLettered"),
    ] {
        assert_eq!(
            text(&c, &count(state)).await,
            api[key].to_string(),
            "{state}"
        );
    }
    screenshot(&c, "08-inbox", "#inbox-title").await;

    // Only the dead letters, their error shown as text.
    click(
        &c,
        "//div[@id='inbox-counts']/button[@data-state='dead_lettered']",
    )
    .await;
    wait_until(
        &c,
        "document.querySelectorAll('#inbox-events tbody tr').length === 2 && document.querySelectorAll('#inbox-events tbody tr[data-state=dead_lettered]').length === 2",
        "the dead letters only",
    )
    .await;
    let error = text(
        &c,
        "document.querySelector('#inbox-events tr[data-id=fail_1] td.err').textContent",
    )
    .await;
    assert!(error.ends_with("<b>refused</b> fail_1"), "{error}");
    screenshot(&c, "09-inbox-dead-letters", "#inbox-title").await;

    // Replay one, confirmed; then the rest.
    healed.store(true, Ordering::SeqCst);
    click(
        &c,
        "//table[@id='inbox-events']//tr[@data-id='fail_1']//button[normalize-space()='Replay']",
    )
    .await;
    c.accept_alert().await.unwrap();
    wait_until(
        &c,
        &format!(
            "{} === '4' && {} === '1'",
            count("done"),
            count("dead_lettered")
        ),
        "one dead letter replayed and processed",
    )
    .await;
    click(&c, "//button[@id='inbox-replay-all']").await;
    c.accept_alert().await.unwrap();
    wait_until(
        &c,
        &format!(
            "{} === '5' && {} === '0'",
            count("done"),
            count("dead_lettered")
        ),
        "every dead letter replayed and processed",
    )
    .await;
    wait_until(
        &c,
        "!document.getElementById('inbox-empty').hidden",
        "an empty dead letter list",
    )
    .await;
    screenshot(&c, "10-inbox-replayed", "#inbox-title").await;
    assert_nothing_injected(&c).await;
    c.close().await.unwrap();
    workers.shutdown().await;
    s.handle.shutdown().await;
}

/// What the health view shows for each destination, read back from the
/// page: its numbers (as text), and its charts' bars and points.
const RENDERED_HEALTH: &str = r#"
const rows = [...document.querySelectorAll('#health tbody tr')];
return rows.map((tr) => {
  const fields = (sel) => Object.fromEntries(
    [...tr.querySelectorAll(sel + ' [data-field]')].map((n) => [n.dataset.field, n.textContent]));
  const okBar = tr.querySelector('svg.bars g.slot:last-child rect.ok');
  return {
    id: tr.dataset.destinationId,
    lastHour: fields('td[data-window=lastHour]'),
    lastDay: fields('td[data-window=lastDay]'),
    queue: fields('td[data-queue]'),
    error: (tr.querySelector('td.err [data-field=message]') || {}).textContent || null,
    slots: [...tr.querySelectorAll('svg.bars g.slot')].map((g) =>
      [Number(g.dataset.attempts), Number(g.dataset.successes)]),
    points: [...tr.querySelectorAll('svg.spark circle.point')].map((p) => Number(p.dataset.p50)),
    linePoints: tr.querySelector('svg.spark polyline').getAttribute('points').split(' ')
      .filter((p) => p !== '').length,
    okBarHeight: Number(okBar.getAttribute('height')),
    okFill: getComputedStyle(okBar).fill,
  };
});
"#;

/// The page's text for a number of the API: the number, or "–" for null.
fn shown(v: &Value) -> Value {
    match v {
        Value::Null => json!("–"),
        v => json!(v.to_string()),
    }
}

/// The figures of one window of the API, as the page should show them.
fn shown_window(w: &Value) -> Value {
    json!({
        "attempts": shown(&w["attempts"]),
        "successes": shown(&w["successes"]),
        "p50Ms": shown(&w["p50Ms"]),
        "p99Ms": shown(&w["p99Ms"]),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_view_draws_the_apis_figures_and_charts() {
    let s = setup().await;
    let add = |path: &str| {
        webhook_guard::sender::NewDestination::new(
            format!("{}{path}", s.receiver_url),
            "health-destination-key-0123456789",
        )
    };
    let ok = s.sender.add_destination(add("/ok")).await.unwrap();
    let flaky = s.sender.add_destination(add("/flaky")).await.unwrap();
    // Three deliveries that succeed, two that fail (500, no retries).
    for _ in 0..3 {
        s.sender.send_test_event(&ok.id).await.unwrap();
    }
    for _ in 0..2 {
        s.sender.send_test_event(&flaky.id).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = s.sender.destination_health().await.unwrap();
        if h[0].last_hour.attempts == 3 && h[1].last_hour.attempts == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the attempts did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let base = serve(
        Router::new().nest(
            "/console",
            console::Console::new(s.sender.clone())
                .allow_unauthenticated()
                .router(),
        ),
    )
    .await;
    let api = reqwest::get(format!("{base}/console/api/health"))
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let api: Value = serde_json::from_slice(&api.bytes().await.unwrap()).unwrap();
    let (_driver, c) = open_page(&format!("{base}/console")).await;
    wait_until(
        &c,
        "document.querySelectorAll('#health tbody tr').length === 2",
        "the health rows",
    )
    .await;
    let rendered = c.execute(RENDERED_HEALTH, vec![]).await.unwrap();
    let api_rows = api["destinations"].as_array().unwrap();
    let rows = rendered.as_array().unwrap();
    assert_eq!(rows.len(), api_rows.len());
    for (row, d) in rows.iter().zip(api_rows) {
        assert_eq!(row["id"], d["destinationId"]);
        assert_eq!(row["lastHour"], shown_window(&d["lastHour"]), "{row}");
        assert_eq!(row["lastDay"], shown_window(&d["lastDay"]), "{row}");
        let queue =
            json!({"pending": shown(&d["queue"]["pending"]), "due": shown(&d["queue"]["due"])});
        assert_eq!(row["queue"], queue);
        assert_eq!(row["error"], d["lastError"]["message"]);
        // One bar per hourly slot, with the slot's counts; one point of the
        // latency line per slot that had attempts, at its median.
        let slots = d["hourly"].as_array().unwrap();
        let counts: Vec<Value> = slots
            .iter()
            .map(|s| json!([s["attempts"], s["successes"]]))
            .collect();
        assert_eq!(row["slots"], json!(counts));
        let medians: Vec<&Value> = slots
            .iter()
            .map(|s| &s["p50Ms"])
            .filter(|v| !v.is_null())
            .collect();
        assert_eq!(row["points"], json!(medians));
        assert_eq!(row["linePoints"], json!(medians.len()));
    }
    let (ok_row, flaky_row) = (&rows[0], &rows[1]);
    assert_eq!(ok_row["lastHour"]["attempts"], "3");
    assert_eq!(ok_row["lastHour"]["successes"], "3");
    assert_eq!(ok_row["slots"].as_array().unwrap().len(), 24);
    assert_eq!(ok_row["points"].as_array().unwrap().len(), 1);
    assert_eq!(
        ok_row["okBarHeight"],
        json!(36),
        "the busiest slot fills the chart"
    );
    assert_eq!(
        ok_row["okFill"], "rgb(19, 122, 59)",
        "the stylesheet colours the bars"
    );
    assert_eq!(ok_row["error"], Value::Null);
    assert_eq!(flaky_row["lastHour"]["successes"], "0");
    assert_eq!(flaky_row["okBarHeight"], json!(0));
    assert!(
        flaky_row["error"].as_str().unwrap().contains("500"),
        "{flaky_row}"
    );
    assert_nothing_injected(&c).await;
    screenshot(&c, "11-health", "#health-title").await;

    c.close().await.unwrap();
    s.handle.shutdown().await;
}
