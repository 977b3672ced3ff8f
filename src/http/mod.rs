//! The HTTP routes of docs/api.md, one file per route group. Both route families (the Atelier form
//! and the older form of the original load tests) are served by the same handlers.

mod bench;
mod docs;
mod health;
mod limits;
mod list;
mod meta;
mod metrics;
mod middleware;
mod new_review;
pub mod params;
pub mod representation;
mod state;
pub mod token;
mod writes;

pub use limits::{cors, writes as write_limit};
pub use metrics::MetricsApart;
pub use middleware::{count_and_log, normalize_path};
pub use state::{AppState, Shared};

use crate::error::ApiError;
use crate::metrics::Route;
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Literal paths before the patterns that would also match them (`/reviews/meta`).
    cfg.service(
        resource("/reviews", "GET, POST")
            .route(web::get().to(list::list))
            .route(web::post().to(writes::post_by_body)),
    )
    .service(resource("/reviews/meta", "GET").route(web::get().to(meta::meta)))
    .service(resource("/reviews/helpful/{review_id}", "PUT").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/report/{review_id}", "PUT").route(web::put().to(writes::report)))
    .service(resource("/reviews/{product_id}", "POST").route(web::post().to(writes::post_by_path)))
    .service(resource("/reviews/{product_id}/list", "GET").route(web::get().to(list::list)))
    .service(resource("/reviews/{product_id}/meta", "GET").route(web::get().to(meta::meta)))
    .service(resource("/reviews/{review_id}/helpful", "PUT").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/{review_id}/report", "PUT").route(web::put().to(writes::report)))
    .service(resource("/health", "GET").route(web::get().to(health::health)))
    .configure(metrics_route)
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

/// GET /metrics: with the other routes, or alone on `server.metrics_listen` (then the API's own
/// address answers it 404).
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics", "GET").route(web::get().to(metrics::metrics)));
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
