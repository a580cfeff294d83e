//! The console's health view: `GET /api/health` (per destination, from the
//! store's history, see [`Sender::destination_health`]) and the script that
//! draws it, `assets/health.js` (numbers and small SVG charts made with DOM
//! calls, so the page's strict Content-Security-Policy holds).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState, page};
use crate::sender::{DeliveryStore, DestinationHealth, Sender};

const SCRIPT: &str = include_str!("assets/health.js");

/// What `GET /api/health` answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct HealthAnswer {
    /// The sender's clock when the figures were read, unix ms.
    now_ms: i64,
    destinations: Vec<DestinationHealthView>,
}

/// One destination's health with what the page shows to name it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DestinationHealthView {
    #[serde(flatten)]
    health: DestinationHealth,
    url: String,
    enabled: bool,
    /// Paused by the circuit breaker right now.
    paused: bool,
}

pub(super) async fn get_health<S: DeliveryStore>(
    State(state): AppState<S>,
) -> Result<Json<HealthAnswer>, ApiError> {
    let sender: &Sender<S> = &state.sender;
    let now_ms = sender.now();
    let health = sender.store().destination_health(now_ms).await;
    let health = health.map_err(crate::sender::SenderError::from)?;
    let mut destinations = sender.destinations().await?;
    let views = health
        .into_iter()
        .filter_map(|h| {
            let at = destinations.iter().position(|d| d.id == h.destination_id)?;
            let d = destinations.swap_remove(at);
            Some(DestinationHealthView {
                paused: sender.is_paused(&d.id),
                url: d.url,
                enabled: d.enabled,
                health: h,
            })
        })
        .collect();
    Ok(Json(HealthAnswer {
        now_ms,
        destinations: views,
    }))
}

pub(super) async fn script() -> Response {
    page::with_headers(SCRIPT.into_response(), "text/javascript; charset=utf-8")
}
