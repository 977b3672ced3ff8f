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
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Literal paths before the patterns that would also match them (`/reviews/meta`).
    cfg.service(
        resource("/reviews")
            .route(web::get().to(reviews::by_query))
            .route(web::post().to(writes::post_by_body)),
    )
    .service(resource("/reviews/meta").route(web::get().to(meta::by_query)))
    .service(resource("/reviews/helpful/{review_id}").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/report/{review_id}").route(web::put().to(writes::report)))
    .service(resource("/reviews/{product_id}").route(web::post().to(writes::post_by_path)))
    .service(resource("/reviews/{product_id}/list").route(web::get().to(reviews::by_path)))
    .service(resource("/reviews/{product_id}/meta").route(web::get().to(meta::by_path)))
    .service(resource("/reviews/{review_id}/helpful").route(web::put().to(writes::helpful)))
    .service(resource("/reviews/{review_id}/report").route(web::put().to(writes::report)))
    .service(resource("/health").route(web::get().to(health::health)))
    .service(resource("/metrics").route(web::get().to(metrics::metrics)))
    .service(resource("/openapi.yaml").route(web::get().to(docs::openapi_yaml)))
    .service(resource("/openapi.json").route(web::get().to(docs::openapi_json_route)))
    .service(resource("/docs").route(web::get().to(docs::page)))
    .service(resource("/docs/init.js").route(web::get().to(docs::init_js)))
    .service(resource("/docs/swagger-ui-bundle.js").route(web::get().to(docs::bundle_js)))
    .service(resource("/docs/swagger-ui.css").route(web::get().to(docs::css)))
    .service(resource("/bench/constant/{bytes}").route(web::get().to(bench::constant)))
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::NotFound)
    }));
}

/// A resource whose wrong methods answer docs/api.md's 405 instead of actix's empty one.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed)
    }))
}
