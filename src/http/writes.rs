//! POST /reviews (and /reviews/:product_id), PUT helpful and PUT report (both route forms).
//! Each is one statement from `sql/` (on Citus, from `sql/citus/`: see `db::Topology`), which also
//! keeps the product's meta exact and announces the change (NOTIFY) in the same transaction.

use super::new_review::NewReview;
use super::params::ReviewId;
use super::token::Token;
use super::AppState;
use crate::db;
use crate::error::ApiError;
use actix_web::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;

/// docs/api.md: a body over 64 KiB is refused with 413.
const MAX_BODY: usize = 64 * 1024;

pub async fn post_by_body(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload).await?;
    post(&state, NewReview::parse(None, &body)?, token).await
}

pub async fn post_by_path(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload).await?;
    let review = NewReview::parse(req.match_info().get("product_id"), &body)?;
    post(&state, review, token).await
}

async fn post(state: &AppState, review: NewReview, token: Token) -> Result<HttpResponse, ApiError> {
    let statements = state.shared.ready()?.writes();
    let row = db::query_opt(
        &state.shared.writes,
        state.shared.timeout,
        &statements.post_review,
        &[
            &review.product_id,
            &review.rating,
            &review.summary,
            &review.body,
            &review.recommend,
            &review.name,
            &review.email,
            &review.photos,
            &review.characteristic_ids,
            &review.characteristic_values,
        ],
    )
    .await?;
    // None: the statement found that the characteristics are not exactly the product's.
    let review_id = returned_id(row)?.ok_or(ApiError::Invalid("characteristics"))?;
    let position = state.wrote(review.product_id).await;
    let mut response = HttpResponse::Created();
    token
        .with(review.product_id, position)
        .set_on(&mut response);
    Ok(response
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(format!("{{\"review_id\":{review_id}}}")))
}

pub async fn helpful(
    state: web::Data<AppState>,
    review: ReviewId,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    mark(&state, review, token, |writes| &writes.helpful).await
}

pub async fn report(
    state: web::Data<AppState>,
    review: ReviewId,
    token: Token,
) -> Result<HttpResponse, ApiError> {
    mark(&state, review, token, |writes| &writes.report).await
}

/// helpful and report: one statement on one review that returns its product id, or no row when
/// the review does not exist.
async fn mark(
    state: &AppState,
    ReviewId(review_id): ReviewId,
    token: Token,
    statement: fn(&db::sql::Writes) -> &db::Statement,
) -> Result<HttpResponse, ApiError> {
    let shared = &state.shared;
    let statement = statement(shared.ready()?.writes());
    let row = db::query_opt(&shared.writes, shared.timeout, statement, &[&review_id]).await?;
    let product_id = returned_id(row)?.ok_or(ApiError::ReviewNotFound)?;
    // Here the write has committed: no read that began before it can store its body under the
    // new version (see coherence).
    let position = state.wrote(product_id).await;
    let mut response = HttpResponse::NoContent();
    token.with(product_id, position).set_on(&mut response);
    Ok(response.finish())
}

/// The id a write statement returns: none when it returned no row (plain PostgreSQL's statements)
/// or NULL (Citus's functions, which always return one row).
fn returned_id(row: Option<tokio_postgres::Row>) -> Result<Option<i32>, ApiError> {
    Ok(row.map(|row| row.try_get(0)).transpose()?.flatten())
}

/// The request body, refused with 413 as soon as it is known to be over the limit.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::MalformedJson)?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
