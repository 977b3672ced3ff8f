//! GET /reviews/meta?product_id= and GET /reviews/:product_id/meta: a product's rating summary.

use super::params::ProductId;
use super::representation::Accepts;
use super::token::Token;
use super::AppState;
use crate::cache::Doc;
use crate::db;
use crate::error::ApiError;
use actix_web::{web, HttpResponse};

pub async fn meta(
    state: web::Data<AppState>,
    ProductId(product_id): ProductId,
    token: Token,
    accepts: Accepts,
) -> Result<HttpResponse, ApiError> {
    state
        .document(
            Doc::Meta(product_id),
            (&token, &accepts),
            &db::sql::META,
            &[&product_id],
        )
        .await
}
