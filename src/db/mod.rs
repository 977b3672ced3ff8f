//! The connection pool, the schema, and the statements of `sql/`.
//!
//! Every statement the service runs is a file in `sql/`, named once in [`sql`], and prepared once
//! per connection (`prepare_cached`): a request never pays for parsing or planning.

use crate::config::DatabaseSettings;
use crate::error::{ApiError, DbFault};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// Every SQL file the code runs, by the name the code uses for it.
pub mod sql {
    pub const SCHEMA: &str = include_str!("../../sql/schema.sql");
    pub const INDEXES: &str = include_str!("../../sql/indexes.sql");
    pub const LIST: &str = include_str!("../../sql/list.sql");
    pub const META: &str = include_str!("../../sql/meta.sql");
    pub const HEALTH: &str = "SELECT 'ok'::text";
}

/// Builds the pool. Nothing connects until the first request, so `serve` starts even while the
/// database is down and answers 503 until it returns.
///
/// deadpool has no timeouts by default: without them an exhausted pool queues requests forever.
/// Here waiting for a connection, opening one and running a statement are each bounded by
/// `timeout_ms`; `statement_timeout` makes PostgreSQL itself give up on a slow statement too.
pub fn make_pool(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    let timeout = settings.timeout();
    let mut pg: tokio_postgres::Config = settings.url.parse()?;
    pg.connect_timeout(timeout);
    pg.options(format!("-c statement_timeout={}", settings.timeout_ms));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()?)
}

/// Runs one statement that returns one text column of one row (a finished JSON document), bounded
/// by `timeout` from asking for a connection to the last byte, so a hung network is a 503 too.
pub async fn fetch_text(
    pool: &Pool,
    timeout: Duration,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<String, ApiError> {
    tokio::time::timeout(timeout, async {
        let client = pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        let row = client.query_one(&statement, params).await?;
        Ok(row.try_get::<_, String>(0)?)
    })
    .await
    .unwrap_or(Err(ApiError::Unavailable(DbFault::Timeout)))
}

/// One connection outside the pool, for the command-line tools (migrate, load, verify).
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::error!("database connection closed: {e}");
        }
    });
    Ok(client)
}

/// Applies `sql/schema.sql` and `sql/indexes.sql`. Idempotent; an advisory lock keeps two
/// starting instances from running it at once.
pub async fn migrate(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute(&format!(
            "SET client_min_messages = warning; SELECT pg_advisory_lock(7265); {} {} SELECT pg_advisory_unlock(7265);",
            sql::SCHEMA,
            sql::INDEXES
        ))
        .await?;
    Ok(())
}
