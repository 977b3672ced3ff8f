//! GET /bench/constant/{bytes}: the same HTTP stack answering a constant in-memory body of the
//! given size, with the headers of a real document. bench/run measures it as the ceiling of the
//! cached routes. Answers 404 unless `server.bench_routes` is on.

use super::AppState;
use crate::error::ApiError;
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};

pub const MAX_BYTES: usize = 1 << 20;

pub async fn constant(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body = state.shared.bench_body.as_ref().ok_or(ApiError::NotFound)?;
    let bytes = req
        .match_info()
        .get("bytes")
        .and_then(|b| b.parse::<usize>().ok())
        .filter(|b| *b <= MAX_BYTES)
        .ok_or(ApiError::Invalid("bytes"))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(body.slice(..bytes)))
}
