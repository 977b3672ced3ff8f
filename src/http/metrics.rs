//! GET /metrics (the figures of `crate::metrics`, gauges read from the cache and the pool at each
//! scrape), and the middleware that times and counts every response and logs each 5xx cause once,
//! with its route.

use super::{AppState, Route};
use crate::error::ApiError;
use crate::metrics::{Metrics, StateLabels};
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{ConnectionType, Method};
use actix_web::{web, HttpResponse};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The middleware (for `App::wrap_fn`): times and counts the response, and logs the cause of a
/// 5xx once, here, where the route is known. A failure that several requests shared (one cached
/// load that they all waited on) is logged by the request that ran it.
///
/// While the instance drains (`draining`, set on SIGTERM) every answer closes its connection, so
/// the connections a proxy keeps open to it end one by one after a complete exchange instead of
/// being cut under a request.
pub async fn count_and_log<B: MessageBody>(
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    response: impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let mut response = response.await?;
    if draining.load(Ordering::Acquire) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let status = response.status();
    let req = response.request();
    let method = method_label(req.method());
    let class = metrics.count(status.as_u16());
    let took = started.elapsed().as_secs_f64();
    let route = match req.app_data::<Route>() {
        Some(route) => {
            route.observe(&metrics, method, class, took);
            route.template
        }
        None => {
            metrics.requests("none", method, class).observe(took);
            "none"
        }
    };
    if status.is_server_error() {
        let cause = response
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::cause_to_log);
        if let Some(cause) = cause {
            log::error!("{} {method} {route}: {cause}", status.as_u16());
        }
    }
    Ok(response)
}

/// A static label for every method, so that no client can make series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    let cache = &state.cache;
    metrics.cache_entries.set(gauge(cache.entries()));
    metrics.cache_bytes.set(gauge(cache.weighted_bytes()));
    metrics.cache_listening.set(i64::from(cache.is_listening()));
    let pool = state.pool.status();
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
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode())
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
