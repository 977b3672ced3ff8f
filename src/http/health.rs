//! GET /health: 200 when the database answers, 503 (within the timeout) when it does not, or
//! while `serve` is still waiting for it.

use super::AppState;
use crate::db;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};

pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.shared.ready()?;
    db::fetch_text(state.primary(), state.shared.timeout, &db::sql::HEALTH, &[]).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body("OK"))
}
