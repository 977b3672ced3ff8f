//! Why a statement gave no answer. The database layer says what happened; the HTTP layer decides
//! what a client is told (`crate::error`).

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("statement failed: {}", describe(.0))]
    Statement(#[from] tokio_postgres::Error),
    #[error("no answer within the configured timeout")]
    Timeout,
    #[error("a read statement returned no row")]
    NoRow,
    /// `serve` has not reached the database (or applied the schema) yet.
    #[error("not serving yet: waiting for the database")]
    Starting,
}

impl DbError {
    /// True when the database could not be reached or could not serve in time: a condition of
    /// the database that passes by itself. False for a statement that failed on its own terms (a
    /// bug of ours: a constraint, a type, a syntax error), which no retry would mend.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) | DbError::Timeout | DbError::Starting => true,
            DbError::NoRow => false,
            DbError::Statement(e) => match e.code() {
                Some(code) => transient(code),
                // No SQLSTATE: the connection broke (closed, or a socket error) or the answer
                // could not be decoded (ours).
                None => {
                    e.is_closed()
                        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                }
            },
        }
    }
}

/// The server's own words when it sent any (SQLSTATE, message, detail), which tokio-postgres's
/// Display leaves out; else the client's.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

/// SQLSTATE classes of a database that is going away, overloaded or busy: 08 connection
/// exception, 40 transaction rollback (serialization, deadlock), 53 insufficient resources,
/// 57 operator intervention (shutdown, statement_timeout), 58 system error; and 55P03, a lock not
/// available in time.
fn transient(code: &SqlState) -> bool {
    let code = code.code();
    matches!(&code[..2], "08" | "40" | "53" | "57" | "58") || code == "55P03"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_of_the_database_is_transient_and_a_bug_is_not() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::QUERY_CANCELED,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::LOCK_NOT_AVAILABLE,
        ] {
            assert!(transient(&code), "{code:?}");
        }
        for code in [
            SqlState::CHECK_VIOLATION,
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_COLUMN,
            SqlState::INTERNAL_ERROR,
        ] {
            assert!(!transient(&code), "{code:?}");
        }
        assert!(DbError::Timeout.is_unavailable());
        assert!(!DbError::NoRow.is_unavailable());
    }
}
