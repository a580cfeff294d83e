//! Runs every seed of `fuzz/corpus/<target>/` through the same invariants as
//! the fuzz targets, so the targets never rot where cargo-fuzz cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod invariants;

use invariants::{EventOutcome, Outcome};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Decodes a seed the way `fuzz_target!(|case: T| ..)` does.
fn decode<T: for<'a> Arbitrary<'a>>(bytes: &[u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

#[test]
fn signature_corpus() {
    let mut accepted = 0;
    let mut rejected = 0;
    for (path, bytes) in seeds("signature") {
        let Some(case) = decode::<invariants::SignatureCase>(&bytes) else {
            continue;
        };
        match invariants::check_signature(&case) {
            Outcome::Accepted => accepted += 1,
            Outcome::Rejected(_) => rejected += 1,
        }
        eprintln!("{}: ok", path.display());
    }
    assert!(accepted > 0, "no seed reaches an accepted signature");
    assert!(rejected > 0, "no seed reaches a rejected signature");
}

#[test]
fn timestamp_corpus() {
    let mut outcomes = Vec::new();
    for (_, bytes) in seeds("timestamp") {
        if let Some(case) = decode::<invariants::TimestampCase>(&bytes) {
            outcomes.push(invariants::check_timestamp(&case));
        }
    }
    assert!(outcomes.contains(&Outcome::Accepted), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| matches!(o, Outcome::Rejected(_))),
        "{outcomes:?}"
    );
}

#[test]
fn event_corpus() {
    let mut outcomes = Vec::new();
    for (_, bytes) in seeds("event") {
        outcomes.push(invariants::check_event(&bytes));
    }
    for want in ["ingestion.completed", "model.trained"] {
        assert!(
            outcomes.contains(&EventOutcome::Envelope(want.into())),
            "{want}: {outcomes:?}"
        );
    }
    assert!(outcomes.contains(&EventOutcome::Refused(http::StatusCode::BAD_REQUEST)));
    assert!(outcomes.contains(&EventOutcome::Refused(
        http::StatusCode::UNPROCESSABLE_ENTITY
    )));
}

#[test]
fn request_corpus() {
    let mut statuses = Vec::new();
    for (_, bytes) in seeds("request") {
        if let Some(case) = decode::<invariants::RequestCase>(&bytes) {
            statuses.push(invariants::check_request(&case).as_u16());
        }
    }
    for want in [200, 401, 413, 422] {
        assert!(statuses.contains(&want), "{want}: {statuses:?}");
    }
}
