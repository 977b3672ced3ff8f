//! GET /reviews?product_id= and GET /reviews/:product_id/list: a page of a product's reviews.

use super::params::Page;
use super::representation::Accepts;
use super::token::Token;
use super::AppState;
use crate::cache::Doc;
use crate::db;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};

pub async fn list(
    state: web::Data<AppState>,
    page: Page,
    token: Token,
    accepts: Accepts,
) -> Result<HttpResponse, ApiError> {
    let offset = page.offset();
    state
        .document(
            Doc::List {
                product_id: page.product_id,
                sort: page.sort.as_str(),
                page: page.page,
                count: page.count,
            },
            (&token, &accepts),
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
