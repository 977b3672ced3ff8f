//! GET /reviews?product_id= and GET /reviews/:product_id/list.

use super::params::{Page, Query};
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
    list(&state, Page::parse(query.get("product_id"), &query)?).await
}

pub async fn by_path(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string());
    list(
        &state,
        Page::parse(req.match_info().get("product_id"), &query)?,
    )
    .await
}

async fn list(state: &AppState, page: Page) -> Result<HttpResponse, ApiError> {
    let offset = page.offset();
    state
        .document(
            Doc::List {
                product_id: page.product_id,
                sort: page.sort.as_str(),
                page: page.page,
                count: page.count,
            },
            &db::sql::LIST,
            &[
                &page.product_id,
                &page.sort.as_str(),
                &page.count,
                &page.page,
                &offset,
            ],
        )
        .await
}
