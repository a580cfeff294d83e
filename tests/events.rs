//! The built-in event catalogue on the wire: every type, unknown types and
//! fields, exact round trips, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use time::macros::datetime;
use webhook_guard::event::{
    AnalysisCompleted, DashboardReady, Envelope, Event, IngestionCompleted, IngestionFailed,
    KpiAlert, KpiComputed,
};

fn envelope(event: &str, data: Value) -> Value {
    json!({"event": event, "timestamp": "2025-01-15T10:30:00Z", "tenantId": "tenant_abc123", "data": data})
}

/// Deserializes `wire`, checks the value, and checks that serializing gives
/// back exactly `wire`.
fn round_trip(wire: &Value) -> Envelope {
    let parsed: Envelope = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&parsed).unwrap(), wire);
    let text = serde_json::to_string(&parsed).unwrap();
    assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), parsed);
    parsed
}

#[test]
fn every_catalogue_type_round_trips_exactly_with_all_fields() {
    let cases = [
        envelope(
            "ingestion.completed",
            json!({"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200,
                   "rowsRejected":3,"source":"s3://bucket/sales.csv","bytesIngested":1048576}),
        ),
        envelope(
            "ingestion.failed",
            json!({"jobId":"j","table":"t","error":"disk full","errorCode":"E_DISK",
                   "rowsIngested":10,"retryable":true,"duration":90000}),
        ),
        envelope(
            "kpi.computed",
            json!({"kpiId":"revenue","name":"Revenue","value":1234.56,"previousValue":1000.0,
                   "unit":"EUR","period":"2025-01"}),
        ),
        envelope(
            "kpi.alert",
            json!({"kpiId":"churn","name":"Churn","value":0.09,"threshold":0.05,
                   "condition":"above","severity":"critical","message":"Churn above 5%"}),
        ),
        envelope(
            "analysis.completed",
            json!({"analysisId":"an_1","analysisType":"forecast","summary":"Sales up 4%",
                   "insightsCount":7,"resultUrl":"https://example.com/a/1","duration":61000}),
        ),
        envelope(
            "dashboard.ready",
            json!({"dashboardId":"d_1","name":"Sales","url":"https://example.com/d/1","widgetCount":12}),
        ),
    ];
    let mut seen = Vec::new();
    for wire in &cases {
        let env = round_trip(wire);
        assert!(!env.event.is_unknown());
        assert_eq!(env.event_type(), wire["event"].as_str().unwrap());
        seen.push(env.event_type().to_owned());
    }
    assert_eq!(seen, Event::CATALOGUE);
}

#[test]
fn required_fields_only_round_trip_and_fill_the_structs() {
    let env = round_trip(&envelope(
        "ingestion.completed",
        json!({"jobId":"job_xyz","table":"sales_data","rowsIngested":15234,"duration":3200}),
    ));
    assert_eq!(env.tenant_id, "tenant_abc123");
    assert_eq!(env.timestamp, datetime!(2025-01-15 10:30 UTC));
    let Event::IngestionCompleted(p) = env.event else {
        panic!("wrong variant")
    };
    assert_eq!(
        (p.job_id.as_str(), p.table.as_str(), p.rows_ingested),
        ("job_xyz", "sales_data", 15234)
    );
    assert_eq!(p.duration, Duration::from_millis(3200));
    assert_eq!(p.rows_rejected, None);
}

#[test]
fn unknown_types_keep_their_raw_data_and_round_trip() {
    let data = json!({"modelId":"m_1","metrics":{"auc":0.91,"folds":[1,2,3]},"note":null});
    let env = round_trip(&envelope("model.trained", data.clone()));
    assert_eq!(
        env.event,
        Event::Unknown {
            event: "model.trained".into(),
            data: Some(data)
        }
    );
    // No data at all, and explicit null data, are kept apart.
    let mut wire = envelope("model.deleted", Value::Null);
    round_trip(&wire);
    wire.as_object_mut().unwrap().remove("data");
    let env = round_trip(&wire);
    assert_eq!(env.event, Event::unknown("model.deleted", None));
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let wire = json!({"event":"dashboard.ready","timestamp":"2025-01-15T10:30:00Z","tenantId":"t",
        "version":2,"meta":{"deep":[1,{"x":null}]},
        "data":{"dashboardId":"d","newField":{"a":1},"widgetCount":3}});
    let env: Envelope = serde_json::from_value(wire).unwrap();
    let Event::DashboardReady(d) = &env.event else {
        panic!("wrong variant")
    };
    assert_eq!((d.dashboard_id.as_str(), d.widget_count), ("d", Some(3)));
    // What is written back is the canonical form, without the unknown fields.
    assert_eq!(
        serde_json::to_value(&env).unwrap(),
        json!({"event":"dashboard.ready","timestamp":"2025-01-15T10:30:00Z","tenantId":"t",
               "data":{"dashboardId":"d","widgetCount":3}})
    );
}

#[test]
fn data_before_event_gives_the_same_value_and_paths_in_errors() {
    let first = r#"{"event":"kpi.computed","timestamp":"2025-01-15T10:30:00Z","tenantId":"t","data":{"kpiId":"k","value":2.5}}"#;
    let last = r#"{"data":{"kpiId":"k","value":2.5},"tenantId":"t","timestamp":"2025-01-15T10:30:00Z","event":"kpi.computed"}"#;
    assert_eq!(
        serde_json::from_str::<Envelope>(first).unwrap(),
        serde_json::from_str::<Envelope>(last).unwrap()
    );
    let bad = r#"{"data":{"kpiId":"k","value":"high"},"event":"kpi.computed"}"#;
    let err = serde_json::from_str::<Event>(bad).unwrap_err().to_string();
    assert!(
        err.contains("invalid `data` for `kpi.computed` at `data.value`"),
        "{err}"
    );
}

#[test]
fn shape_errors_name_what_is_wrong() {
    let cases = [
        (r#"{"data":{}}"#, "missing field `event`"),
        (r#"{"event":"kpi.alert"}"#, "missing field `data`"),
        (
            r#"{"event":"kpi.alert","data":{"kpiId":"k","value":1}}"#,
            "missing field `threshold`",
        ),
        (r#"{"event":7,"data":{}}"#, "the event type as a string"),
        (
            r#"{"event":"a","event":"b","data":{}}"#,
            "duplicate field `event`",
        ),
        (
            r#"{"event":"ingestion.completed","data":{"jobId":"j","table":"t","rowsIngested":1,"duration":1.5}}"#,
            "whole milliseconds",
        ),
        (
            r#"{"event":"ingestion.completed","data":{"jobId":"j","table":"t","rowsIngested":1,"duration":-1}}"#,
            "whole milliseconds",
        ),
        (r#"[1,2]"#, "webhook envelope"),
    ];
    for (body, want) in cases {
        let err = serde_json::from_str::<Event>(body).unwrap_err().to_string();
        assert!(err.contains(want), "{body}: {err}");
    }
    let err = serde_json::from_str::<Envelope>(r#"{"event":"x","tenantId":"t"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `timestamp`"), "{err}");
    let err =
        serde_json::from_str::<Envelope>(r#"{"event":"x","timestamp":"yesterday","tenantId":"t"}"#)
            .unwrap_err();
    assert!(err.is_data(), "{err}");
}

#[test]
fn offsets_and_fractions_of_timestamps_survive() {
    let wire = json!({"event":"x","timestamp":"2025-01-15T12:30:00.25+02:00","tenantId":"t"});
    let env = round_trip(&wire);
    assert_eq!(env.timestamp.unix_timestamp(), 1_736_937_000);
    assert_eq!(env.timestamp.offset().whole_hours(), 2);
}

#[test]
fn senders_build_events_with_constructors() {
    let failed = IngestionFailed::new("job_1", "sales", "disk full")
        .with_error_code("E_DISK")
        .with_retryable(true)
        .with_duration(Duration::from_secs(2));
    let env = Envelope::new("tenant_1", datetime!(2025-01-15 10:30 UTC), failed);
    assert_eq!(
        serde_json::to_string(&env).unwrap(),
        r#"{"event":"ingestion.failed","timestamp":"2025-01-15T10:30:00Z","tenantId":"tenant_1","data":{"jobId":"job_1","table":"sales","error":"disk full","errorCode":"E_DISK","retryable":true,"duration":2000}}"#
    );
    let events: Vec<Event> = vec![
        IngestionCompleted::new("j", "t", 1, Duration::ZERO).into(),
        KpiComputed::new("k", 1.0).with_unit("%").into(),
        KpiAlert::new("k", 2.0, 1.0).with_severity("warning").into(),
        AnalysisCompleted::new("a").with_insights_count(3u64).into(),
        DashboardReady::new("d")
            .with_url("https://example.com")
            .into(),
        Event::unknown("custom.thing", json!({"a": 1})),
    ];
    for event in events {
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<Event>(&text).unwrap(),
            event,
            "{text}"
        );
    }
}

#[test]
fn durations_beyond_u64_milliseconds_are_refused_when_sending() {
    let p = IngestionCompleted::new("j", "t", 1, Duration::MAX);
    let err = serde_json::to_string(&Event::from(p)).unwrap_err();
    assert!(err.to_string().contains("u64::MAX milliseconds"), "{err}");
}

proptest! {
    #[test]
    fn payloads_round_trip(
        job in "[a-z_0-9]{1,12}",
        rows in any::<u64>(),
        ms in any::<u64>(),
        value in any::<f64>().prop_filter("finite", |v| v.is_finite()),
        previous in proptest::option::of(any::<f64>().prop_filter("finite", |v| v.is_finite())),
        unix in -62_135_596_800i64..253_402_300_799,
    ) {
        let at = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
        let mut kpi = KpiComputed::new(job.clone(), value);
        kpi.previous_value = previous;
        for event in [
            Event::from(IngestionCompleted::new(job.clone(), "t", rows, Duration::from_millis(ms))),
            Event::from(kpi),
        ] {
            let env = Envelope::new("t", at, event);
            let text = serde_json::to_string(&env).unwrap();
            let back: Envelope = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &env);
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }
}
