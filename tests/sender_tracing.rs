//! The sender's `tracing` spans: one `webhook.delivery` span per delivery,
//! one `webhook.attempt` span per attempt inside it, with the fields an
//! operator filters on. A real receiver on loopback fails once, then
//! succeeds.
#![cfg(feature = "sender")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use webhook_guard::sender::{
    AddressPolicy, DeliveryStatus, MemoryStore, NewDestination, OutgoingEvent, RetryPolicy, Sender,
};

/// A span as recorded: its name, its parent's name and its fields (as
/// text), including fields recorded after it was created.
#[derive(Debug, Clone, Default)]
struct SeenSpan {
    name: String,
    parent: Option<String>,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<HashMap<u64, SeenSpan>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = SeenSpan {
            name: attrs.metadata().name().to_owned(),
            parent: ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.name().to_owned()),
            ..SeenSpan::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

#[test]
fn every_delivery_and_attempt_has_a_span_with_its_fields() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone()).with(
        tracing_subscriber::filter::LevelFilter::from_level(Level::INFO),
    );
    // A current-thread runtime runs every task of the sender on this
    // thread, where the subscriber is the default.
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (delivery, destination_id, event_id) = rt.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let app = Router::new().route(
            "/hook",
            post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let sender = Sender::builder(MemoryStore::new())
            .address_policy(AddressPolicy::new().allow("127.0.0.1").unwrap())
            .poll_interval(Duration::from_millis(10))
            .retry(
                RetryPolicy::new([Duration::from_millis(20)])
                    .jitter(0.0)
                    .unwrap(),
            )
            .build()
            .unwrap();
        let destination = sender
            .add_destination(NewDestination::new(url, "span-secret-0123456789abcdef"))
            .await
            .unwrap();
        let _workers = sender.start();
        let event = OutgoingEvent::new(
            "ingestion.completed",
            &serde_json::json!({"event": "ingestion.completed"}),
        )
        .unwrap();
        let event_id = event.id().to_owned();
        let delivery = sender.publish(event).await.unwrap().remove(0);
        let start = Instant::now();
        loop {
            let d = sender
                .delivery_history(&delivery.id)
                .await
                .unwrap()
                .delivery;
            if d.status == DeliveryStatus::Delivered {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not delivered: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        (delivery.id, destination.id, event_id)
    });

    let spans: Vec<SeenSpan> = recorder.spans.lock().unwrap().values().cloned().collect();
    let deliveries: Vec<&SeenSpan> = spans
        .iter()
        .filter(|s| s.name == "webhook.delivery" && s.fields["delivery_id"] == delivery)
        .collect();
    // One span per attempt run: the first attempt and the retry.
    assert_eq!(deliveries.len(), 2, "{spans:#?}");
    for d in &deliveries {
        assert_eq!(d.fields["event_id"], event_id, "{d:?}");
        assert_eq!(d.fields["destination"], destination_id, "{d:?}");
    }

    let mut attempts: Vec<&SeenSpan> = spans
        .iter()
        .filter(|s| s.name == "webhook.attempt")
        .collect();
    attempts.sort_by_key(|s| s.fields["attempt"].clone());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for a in &attempts {
        assert_eq!(a.parent.as_deref(), Some("webhook.delivery"), "{a:?}");
    }
    assert_eq!(attempts[0].fields["attempt"], "1");
    assert_eq!(attempts[0].fields["status"], "503");
    assert_eq!(attempts[0].fields["error_class"], "status");
    assert_eq!(attempts[1].fields["attempt"], "2");
    assert_eq!(attempts[1].fields["status"], "200");
    assert!(
        !attempts[1].fields.contains_key("error_class"),
        "a success has no error class: {:?}",
        attempts[1]
    );
}
