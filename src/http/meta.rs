//! GET /reviews/meta?product_id= and GET /reviews/:product_id/meta.

use super::params::{id, Query};
use super::AppState;
use crate::cache::Doc;
use crate::db;
use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};

pub async fn by_query(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string());
    meta(&state, id(query.get("product_id"), "product_id")?).await
}

pub async fn by_path(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    meta(
        &state,
        id(req.match_info().get("product_id"), "product_id")?,
    )
    .await
}

async fn meta(state: &AppState, product_id: i32) -> Result<HttpResponse, ApiError> {
    state
        .document(Doc::Meta(product_id), &db::sql::META, &[&product_id])
        .await
}
