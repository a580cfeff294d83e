//! The kinds of problem the console answers with: each kind's `type` anchor
//! (slug), title and status, in one place.

use http::StatusCode;

use crate::problem::{Problem, console_problem_type};

/// One kind of console problem response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProblemKind {
    /// No or a wrong bearer token.
    Unauthorized,
    /// The `Host` is not one the console serves.
    MisdirectedRequest,
    /// A state-changing request from another site.
    CrossSiteRequest,
    /// A state-changing request without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// A request body that is not JSON.
    MalformedRequest,
    /// Input of the wrong shape, or a value the sender refuses.
    InvalidInput,
    /// Query parameters that do not read.
    InvalidQuery,
    /// A destination URL that cannot be used.
    InvalidDestination,
    /// A destination whose host the SSRF guard refuses.
    ForbiddenAddress,
    /// An unknown scheme name.
    InvalidScheme,
    /// An unknown event type, or an empty list.
    InvalidEventFilter,
    /// No such destination or delivery.
    NotFound,
    /// Not possible in the current state.
    WrongState,
    /// The delivery store failed.
    StoreFailed,
}

impl ProblemKind {
    /// Every kind, in the order of the table in [`crate::problem`].
    #[cfg(test)]
    const ALL: [Self; 14] = [
        Self::Unauthorized,
        Self::MisdirectedRequest,
        Self::CrossSiteRequest,
        Self::UnsupportedMediaType,
        Self::MalformedRequest,
        Self::InvalidInput,
        Self::InvalidQuery,
        Self::InvalidDestination,
        Self::ForbiddenAddress,
        Self::InvalidScheme,
        Self::InvalidEventFilter,
        Self::NotFound,
        Self::WrongState,
        Self::StoreFailed,
    ];

    /// The anchor in the console's docs that the problem `type` points at.
    const fn slug(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::MisdirectedRequest => "misdirected-request",
            Self::CrossSiteRequest => "cross-site-request",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::MalformedRequest => "malformed-request",
            Self::InvalidInput => "invalid-input",
            Self::InvalidQuery => "invalid-query",
            Self::InvalidDestination => "invalid-destination",
            Self::ForbiddenAddress => "forbidden-address",
            Self::InvalidScheme => "invalid-scheme",
            Self::InvalidEventFilter => "invalid-event-filter",
            Self::NotFound => "not-found",
            Self::WrongState => "wrong-state",
            Self::StoreFailed => "store-failed",
        }
    }

    /// The title answers of this kind carry unless they say otherwise.
    pub(super) const fn title(self) -> &'static str {
        match self {
            Self::Unauthorized => "Authentication required",
            Self::MisdirectedRequest => "Host not served",
            Self::CrossSiteRequest => "Cross-site request refused",
            Self::UnsupportedMediaType => "JSON required",
            Self::MalformedRequest => "Malformed request body",
            Self::InvalidInput => "Invalid input",
            Self::InvalidQuery => "Invalid query parameters",
            Self::InvalidDestination => "Invalid destination",
            Self::ForbiddenAddress => "Destination address refused",
            Self::InvalidScheme => "Unknown scheme",
            Self::InvalidEventFilter => "Invalid event filter",
            Self::NotFound => "Not found",
            Self::WrongState => "Not possible now",
            Self::StoreFailed => "Delivery store unavailable",
        }
    }

    /// The status answers of this kind carry unless they say otherwise.
    const fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MalformedRequest | Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::InvalidInput
            | Self::InvalidDestination
            | Self::ForbiddenAddress
            | Self::InvalidScheme
            | Self::InvalidEventFilter => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::WrongState => StatusCode::CONFLICT,
            Self::StoreFailed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A problem of this kind, with its status and title.
    pub(super) fn problem(self, detail: impl Into<String>) -> Problem {
        self.problem_with(self.status(), self.title(), detail)
    }

    /// A problem of this kind with another status or title than the kind's
    /// own (a JSON body refused with the extractor's status, or an
    /// invalid input with a more precise title).
    pub(super) fn problem_with(
        self,
        status: StatusCode,
        title: &str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem::new(status, console_problem_type(self.slug()), title, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is listed in the problem-type table of the crate's docs
    /// and has its own slug.
    #[test]
    fn every_kind_is_documented_once() {
        let table = include_str!("../../problem.rs");
        let slugs: Vec<&str> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        let listed = slugs
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(table.contains(&listed), "{listed}");
        let mut unique = slugs.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), slugs.len());
    }
}
