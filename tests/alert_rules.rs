//! The alerting rules of `docs/alerts/` are valid Prometheus rules, and
//! each alert fires on the series that should raise it
//! (`promtool test rules`). `scripts/install-test-deps.sh` installs
//! promtool (Debian package `prometheus`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install it with `apt-get install -y prometheus`")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_fire_on_their_series() {
    let checked = promtool(&["check", "rules", "webhook-guard.rules.yml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "webhook-guard.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The rules quoted in `docs/alerts.md` are the ones in the rules file.
#[test]
fn the_alerts_page_quotes_the_rules_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/alerts.md")).unwrap();
    let rules = std::fs::read_to_string(root.join("docs/alerts/webhook-guard.rules.yml")).unwrap();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let rules = squash(&rules);
    for expr in page
        .split("```yaml")
        .skip(2)
        .flat_map(|block| block.split("```").next())
        .flat_map(|block| block.split("- alert:").skip(1))
    {
        let quoted = squash(&format!("- alert:{expr}"));
        assert!(rules.contains(&quoted), "not in the rules file: {quoted}");
    }
}

/// Every metric the rules and the page name is one the crate records.
#[test]
fn the_rules_name_metrics_the_crate_records() {
    use webhook_guard::{idempotency, inbox, sender, verify};
    let known = [
        verify::metric_names::REQUESTS,
        verify::metric_names::KEY_LAST_USED,
        idempotency::metric_names::REQUESTS,
        sender::metric_names::QUEUE_OLDEST_DUE_SECONDS,
        sender::metric_names::DEAD_LETTERED,
        inbox::metric_names::DEAD_LETTERED,
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "docs/alerts.md",
        "docs/alerts/webhook-guard.rules.yml",
        "docs/alerts/webhook-guard.rules.test.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("webhook_guard_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                known.contains(&name.as_str()),
                "{file} names `{name}`, which nothing records"
            );
            rest = &rest[at + name.len()..];
        }
    }
}
