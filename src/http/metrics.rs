//! GET /metrics in the Prometheus text format: responses by status class, the body cache and the
//! connection pool; and the middleware that counts every response and logs each 5xx cause once,
//! with its route. Plain atomics: a counter costs one relaxed add on the hot path.

use super::AppState;
use crate::error::ApiError;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::{web, HttpResponse};
use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Responses by status class, counted by [`count_and_log`].
#[derive(Default)]
pub struct Responses([AtomicU64; 5]);

impl Responses {
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// The middleware (for `App::wrap_fn`): counts the response, and logs the cause of a 5xx once,
/// here, where the route is known. A failure that several requests shared (one cached load that
/// they all waited on) is logged by the request that ran it.
pub async fn count_and_log<B: MessageBody>(
    responses: Arc<Responses>,
    response: impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let response = response.await?;
    let status = response.status();
    responses.count(status.as_u16());
    if status.is_server_error() {
        let cause = response
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::cause_to_log);
        if let Some(cause) = cause {
            let req = response.request();
            let route = req.match_pattern();
            log::error!(
                "{} {} {}: {cause}",
                status.as_u16(),
                req.method(),
                route.as_deref().unwrap_or(req.path())
            );
        }
    }
    Ok(response)
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let r = &state.responses.0;
    let load = |i: usize| r[i].load(Ordering::Relaxed);
    metric(
        "reviews_http_responses_total",
        "counter",
        "HTTP responses by status class.",
        &[
            ("{class=\"1xx\"}", load(0)),
            ("{class=\"2xx\"}", load(1)),
            ("{class=\"3xx\"}", load(2)),
            ("{class=\"4xx\"}", load(3)),
            ("{class=\"5xx\"}", load(4)),
        ],
    );
    let cache = &state.cache;
    metric(
        "reviews_cache_hits_total",
        "counter",
        "Read requests answered from the body cache.",
        &[("", cache.hits.load(Ordering::Relaxed))],
    );
    metric(
        "reviews_cache_misses_total",
        "counter",
        "Read requests that asked the database (cache on but cold, stale or not listening).",
        &[("", cache.misses.load(Ordering::Relaxed))],
    );
    metric(
        "reviews_cache_entries",
        "gauge",
        "Bodies held in the cache.",
        &[("", cache.entries())],
    );
    metric(
        "reviews_cache_bytes",
        "gauge",
        "Weighed size of the cached bodies.",
        &[("", cache.weighted_bytes())],
    );
    metric(
        "reviews_cache_listening",
        "gauge",
        "1 while this instance hears other instances' writes (LISTEN connection up).",
        &[("", u64::from(cache.is_listening()))],
    );
    let pool = state.pool.status();
    metric(
        "reviews_db_pool_connections",
        "gauge",
        "Database connections by state.",
        &[
            ("{state=\"open\"}", pool.size as u64),
            ("{state=\"idle\"}", pool.available as u64),
            ("{state=\"max\"}", pool.max_size as u64),
        ],
    );
    metric(
        "reviews_db_pool_waiting",
        "gauge",
        "Requests waiting for a database connection.",
        &[("", pool.waiting as u64)],
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
