//! The one error type of the HTTP boundary and its mapping to docs/api.md's statuses and texts.
//!
//! Every client error is a status and a one-line `text/plain` body starting with `Error: `.
//! A 5xx cause is logged here, once, and never shown to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or field fails its rule; the field is named in the text.
    #[error("invalid {0} provided")]
    Invalid(&'static str),
    #[error("malformed JSON body")]
    MalformedJson,
    #[error("review not found")]
    ReviewNotFound,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The database is unreachable, saturated or too slow; the cause is only logged.
    #[error("service unavailable")]
    Unavailable(#[source] DbFault),
}

/// Why the database could not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum DbFault {
    #[error("no connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("statement failed: {0}")]
    Statement(#[from] tokio_postgres::Error),
    #[error("no answer within the configured timeout")]
    Timeout,
    #[error("a read statement returned no row")]
    NoRow,
    /// The failure of a load that several requests for the same cached body waited on.
    #[error("{0}")]
    Shared(String),
}

impl<E: Into<DbFault>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Unavailable(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedJson => StatusCode::BAD_REQUEST,
            ApiError::ReviewNotFound | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unavailable(cause) = self {
            log::error!("503: {cause}");
        }
        HttpResponse::build(self.status_code())
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body(format!("Error: {self}"))
    }
}
