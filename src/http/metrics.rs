//! GET /metrics: the figures of `crate::metrics`, with the gauges read from the cache and the
//! pool at each scrape.

use super::AppState;
use crate::error::ApiError;
use crate::metrics::StateLabels;
use actix_web::{web, HttpRequest, HttpResponse};

/// The mark of the application that serves /metrics on its own address.
pub struct MetricsApart;

pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let shared = &state.shared;
    // Served on its own address (server.metrics_listen): not on the API's.
    if shared.metrics_apart && req.app_data::<MetricsApart>().is_none() {
        return Err(ApiError::NotFound);
    }
    let metrics = &shared.metrics;
    let cache = shared.coherence.cache();
    metrics.cache_entries.set(gauge(cache.entries()));
    metrics.cache_bytes.set(gauge(cache.weighted_bytes()));
    metrics
        .cache_listening
        .set(i64::from(shared.coherence.is_listening()));
    let pool = shared.pool.status();
    for (state, value) in [
        ("open", pool.size),
        ("idle", pool.available),
        ("max", pool.max_size),
    ] {
        metrics
            .pool_connections
            .get_or_create(&StateLabels { state })
            .set(gauge(value as u64));
    }
    metrics.pool_waiting.set(gauge(pool.waiting as u64));
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode()))
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
