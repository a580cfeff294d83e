//! Headers: the ones the scheme needs that are missing, and the ones of
//! another scheme that are there instead.

use http::HeaderMap;

use super::budget::Budget;
use super::{Finding, Request};
use crate::scheme::{Scheme, SchemeName};

/// The headers `scheme` needs that `headers` lacks.
pub(super) fn missing_headers(scheme: SchemeName, headers: &HeaderMap) -> Vec<&'static str> {
    scheme
        .required_headers(headers)
        .iter()
        .copied()
        .filter(|h| !headers.contains_key(*h))
        .collect()
}

/// Schemes other than `current` whose signature header the request carries,
/// the providers' first and the crate's own modes last.
///
/// Each is checked once with the request's secrets: at most six checks,
/// charged to `budget` (never refused, so that the finding is complete).
pub(super) fn other_schemes(
    current: SchemeName,
    request: &Request<'_>,
    budget: &mut Budget,
) -> Vec<Finding> {
    let headers = request.headers;
    let (native, providers): (Vec<_>, Vec<_>) = SchemeName::ALL
        .into_iter()
        .partition(|name| name.is_native());
    let mut found = Vec::new();
    for name in providers.into_iter().chain(native) {
        if name == current || !name.fits(headers) {
            continue;
        }
        let Some(&(header, provider)) = name
            .identifying_headers()
            .iter()
            .find(|(header, _)| headers.contains_key(*header))
        else {
            continue;
        };
        let other = Scheme::for_name(name);
        let checks = other.checks_per_verification(request.secrets);
        budget.spent = budget
            .spent
            .saturating_add(request.body.len().saturating_mul(checks));
        let verifies = request.verifies(&other, request.secrets, request.body);
        if name.is_native() && current.is_native() && !verifies {
            continue;
        }
        found.push(Finding::LooksLikeOtherScheme {
            scheme: name,
            provider,
            header,
            verifies,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::diagnose;
    use crate::diagnose::tests::NOW;
    use crate::scheme::NATIVE_SIGNATURE_HEADER;
    use crate::{Message, SecretSet};

    #[test]
    fn native_modes_point_at_each_other_only_when_that_verifies() {
        let secrets = SecretSet::single("s").unwrap();
        let body = br#"{"timestamp":1700000000}"#;
        let body_only = Scheme::native_body_only()
            .sign(&secrets, &Message::new("e", NOW, body))
            .unwrap();
        let d = diagnose(&Scheme::native(), &secrets, &body_only, body, NOW);
        assert!(
            d.findings().contains(&Finding::LooksLikeOtherScheme {
                scheme: SchemeName::NativeBodyOnly,
                provider: "body-only native",
                header: NATIVE_SIGNATURE_HEADER,
                verifies: true,
            }),
            "{d}"
        );
        let signed = Scheme::native()
            .sign(&secrets, &Message::new("e", NOW, body))
            .unwrap();
        let d = diagnose(&Scheme::native_body_only(), &secrets, &signed, body, NOW);
        assert!(
            d.findings().iter().any(|f| matches!(
                f,
                Finding::LooksLikeOtherScheme {
                    scheme: SchemeName::Native,
                    verifies: true,
                    ..
                }
            )),
            "{d}"
        );
        // A wrong secret: no advice to switch between the native modes.
        let other = SecretSet::single("other").unwrap();
        let d = diagnose(&Scheme::native_body_only(), &other, &signed, body, NOW);
        assert!(
            !d.findings()
                .iter()
                .any(|f| matches!(f, Finding::LooksLikeOtherScheme { .. })),
            "{d}"
        );
    }
}
