//! The HTTP routes of docs/api.md, one file per route group. Both route families (the Atelier form
//! and the older form of the original load tests) are served by the same handlers.

mod bench;
mod docs;
mod health;
mod meta;
mod metrics;
mod new_review;
pub mod params;
mod reviews;
mod state;
mod writes;

pub use metrics::count_and_log;
pub use state::AppState;

use crate::error::ApiError;
use crate::metrics::Metrics;
use actix_web::dev::ServiceRequest;
use actix_web::http::Uri;
use actix_web::{web, HttpResponse};
use prometheus_client::metrics::histogram::Histogram;
use std::cell::RefCell;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Literal paths before the patterns that would also match them (`/reviews/meta`).
    cfg.service(
        resource("/reviews", "GET, POST")
            .route(web::get().to(reviews::by_query))
            .route(web::post().to(writes::post_by_body)),
    )
    .service(resource("/reviews/meta", "GET").route(web::get().to(meta::by_query)))
    .service(resource("/reviews/helpful/{review_id}", "PUT").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/report/{review_id}", "PUT").route(web::put().to(writes::report)))
    .service(resource("/reviews/{product_id}", "POST").route(web::post().to(writes::post_by_path)))
    .service(resource("/reviews/{product_id}/list", "GET").route(web::get().to(reviews::by_path)))
    .service(resource("/reviews/{product_id}/meta", "GET").route(web::get().to(meta::by_path)))
    .service(resource("/reviews/{review_id}/helpful", "PUT").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/{review_id}/report", "PUT").route(web::put().to(writes::report)))
    .service(resource("/health", "GET").route(web::get().to(health::health)))
    .service(resource("/metrics", "GET").route(web::get().to(metrics::metrics)))
    .service(resource("/openapi.yaml", "GET").route(web::get().to(docs::openapi_yaml)))
    .service(resource("/openapi.json", "GET").route(web::get().to(docs::openapi_json_route)))
    .service(resource("/docs", "GET").route(web::get().to(docs::page)))
    .service(resource("/docs/init.js", "GET").route(web::get().to(docs::init_js)))
    .service(resource("/docs/swagger-ui-bundle.js", "GET").route(web::get().to(docs::bundle_js)))
    .service(resource("/docs/swagger-ui.css", "GET").route(web::get().to(docs::css)))
    .service(resource("/bench/constant/{bytes}", "GET").route(web::get().to(bench::constant)))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

/// A resource's route template, as the metrics label it, and the duration histograms of its
/// responses so far, by method and status class: found once per worker in the registry, then by
/// a scan of a few pointers instead of hashing the labels on every request.
pub struct Route {
    pub template: &'static str,
    series: RefCell<Vec<(&'static str, usize, Histogram)>>,
}

impl Route {
    fn new(template: &'static str) -> Route {
        Route {
            template,
            series: RefCell::default(),
        }
    }

    /// A response of this route to `method` in status `class` took `seconds`.
    pub fn observe(&self, metrics: &Metrics, method: &'static str, class: usize, seconds: f64) {
        let mut series = self.series.borrow_mut();
        match series
            .iter()
            .find(|(m, c, _)| std::ptr::eq(*m, method) && *c == class)
        {
            Some((_, _, histogram)) => histogram.observe(seconds),
            None => {
                let histogram = metrics.requests(self.template, method, class);
                histogram.observe(seconds);
                series.push((method, class, histogram));
            }
        }
    }
}

/// A resource whose wrong methods answer docs/api.md's 405 (with the `Allow` header HTTP asks
/// for, listing `allow`) instead of actix's empty one, and which tells the metrics its template.
fn resource(path: &'static str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(Route::new(path))
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
        }))
}

/// docs/api.md: a trailing slash is accepted on every route (`/reviews/` = `/reviews`); runs of
/// slashes are merged too, as actix's `NormalizePath` would. Done by hand because `NormalizePath`
/// runs a regex over every path, which callgrind found to be a fifth of the instructions of a
/// cached read; here a path that needs nothing (nearly all) costs one scan of its bytes.
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
