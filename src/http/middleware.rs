//! The middleware every request passes: paths normalised before routing, and each response
//! timed, counted and, when it is a 5xx, its cause logged once, here, where the route is known.

use crate::error::ApiError;
use crate::metrics::{Metrics, Route};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::http::{ConnectionType, Method, Uri};
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
    // An error is an answer of this moment: no cache keeps it (a 503 must not outlive the fault).
    if status.as_u16() >= 400 && !response.headers().contains_key(CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
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

/// docs/api.md: a trailing slash is accepted on every route (`/reviews/` = `/reviews`); runs of
/// slashes are merged too, as actix's `NormalizePath` would. Done by hand because `NormalizePath`
/// runs a regex over every path, a large share of a cached read's instructions under callgrind
/// (bench/README.md); here a path that needs nothing (nearly all) costs one scan of its bytes.
pub fn normalize_path(req: &mut ServiceRequest) {
    let path = req.path();
    if path.len() <= 1 || !(path.ends_with('/') || path.contains("//")) {
        return;
    }
    let mut normalized = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && normalized.ends_with('/')) {
            normalized.push(c);
        }
    }
    if normalized.len() > 1 && normalized.ends_with('/') {
        normalized.pop();
    }
    let head = req.head_mut();
    if let Some(query) = head.uri.query() {
        normalized = format!("{normalized}?{query}");
    }
    let mut parts = head.uri.clone().into_parts();
    let Ok(path_and_query) = normalized.parse() else {
        return;
    };
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_path;
    use actix_web::test::TestRequest;

    #[test]
    fn trailing_and_repeated_slashes_go_and_the_query_stays() {
        for (given, path, query) in [
            ("/reviews/", "/reviews", "product_id=2"),
            ("//reviews//2///list/", "/reviews/2/list", "product_id=2"),
            ("/reviews/meta", "/reviews/meta", "product_id=2"),
            ("/", "/", "product_id=2"),
        ] {
            let mut req = TestRequest::get()
                .uri(&format!("{given}?{query}"))
                .to_srv_request();
            normalize_path(&mut req);
            assert_eq!((req.path(), req.query_string()), (path, query), "{given}");
            assert_eq!(
                req.match_info().as_str(),
                path,
                "{given}: what routing sees"
            );
        }
    }
}
