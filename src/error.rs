//! The one error type of the HTTP boundary and its mapping to docs/api.md's statuses and texts.
//!
//! Every client error is a status and a one-line `text/plain` body starting with `Error: `.
//! A 5xx cause is never shown to the client: the middleware of `http::metrics`, which knows the
//! route, logs it once.

use crate::cache::LoadError;
use crate::db::DbError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use std::sync::Arc;

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
    /// `allow`: the methods the path does take, for the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("request body too large")]
    PayloadTooLarge,
    /// The database gave no answer: 503 when it was unreachable, saturated or too slow, 500 when
    /// the statement itself failed. The cause is logged, never shown.
    #[error("{}", if .cause.is_unavailable() { "service unavailable" } else { "internal server error" })]
    Database {
        cause: Arc<DbError>,
        /// The cause was a cached load's that another request ran and reported.
        shared: bool,
    },
    /// A fault of ours outside the database; the cause is logged, never shown.
    #[error("internal server error")]
    Internal(String),
}

impl ApiError {
    /// The cause of a 5xx worth logging: None for client errors, for a failure that another
    /// request already reported, and while `serve` waits for its database (it logs each attempt).
    pub fn cause_to_log(&self) -> Option<&dyn std::fmt::Display> {
        match self {
            ApiError::Database { cause, .. } if matches!(**cause, DbError::Starting) => None,
            ApiError::Database {
                cause,
                shared: false,
            } => Some(cause),
            ApiError::Internal(cause) => Some(cause),
            _ => None,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(cause: DbError) -> Self {
        ApiError::Database {
            cause: Arc::new(cause),
            shared: false,
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        ApiError::Database {
            cause: e.cause,
            shared: e.shared,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedJson => StatusCode::BAD_REQUEST,
            ApiError::ReviewNotFound | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Database { cause, .. } if cause.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Database { .. } | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        response.body(format!("Error: {self}"))
    }
}
