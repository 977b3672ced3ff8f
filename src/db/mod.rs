//! The connection pool, the schema, and the statements of `sql/`.
//!
//! Every statement the service runs is a file in `sql/`, named once in [`sql`], and prepared once
//! per connection (`prepare_cached`): a request never pays for parsing or planning.

mod error;
mod replicas;
pub mod script;
mod shared;
pub mod url;

pub use error::DbError;
pub use replicas::{parse_lsn, Reads, Replica};
pub use shared::Connections;

use crate::config::DatabaseSettings;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

/// A statement of `sql/` with the types of its parameters, declared here so that what Rust binds
/// never depends on how PostgreSQL would infer a parameter used in two places.
pub struct Statement {
    /// Its file in sql/, without `.sql`: how logs and metrics name it.
    pub name: &'static str,
    pub sql: &'static str,
    pub params: &'static [Type],
}

/// Every SQL file the code runs, by the name the code uses for it.
pub mod sql {
    use super::Statement;
    use tokio_postgres::types::Type;

    pub const SCHEMA: &str = include_str!("../../sql/schema.sql");
    pub const INDEXES: &str = include_str!("../../sql/indexes.sql");
    pub const VERIFY: &str = include_str!("../../sql/verify.sql");
    pub const VERIFY_PAGES: &str = include_str!("../../sql/verify_pages.sql");

    pub const LIST: Statement = Statement {
        name: "list",
        sql: include_str!("../../sql/list.sql"),
        params: &[Type::INT4, Type::TEXT, Type::INT4, Type::INT8, Type::INT8],
    };
    pub const META: Statement = Statement {
        name: "meta",
        sql: include_str!("../../sql/meta.sql"),
        params: &[Type::INT4],
    };
    /// The parameters of both forms of POST /reviews (sql/post_review.sql and its Citus twin).
    const POST_REVIEW_PARAMS: &[Type] = &[
        Type::INT4,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT_ARRAY,
        Type::INT4_ARRAY,
        Type::INT4_ARRAY,
    ];

    /// The write statements of one topology (see [`super::Topology`]).
    pub struct Writes {
        pub post_review: Statement,
        pub helpful: Statement,
        pub report: Statement,
    }

    pub const PLAIN_WRITES: Writes = Writes {
        post_review: Statement {
            name: "post_review",
            sql: include_str!("../../sql/post_review.sql"),
            params: POST_REVIEW_PARAMS,
        },
        helpful: Statement {
            name: "helpful",
            sql: include_str!("../../sql/helpful.sql"),
            params: &[Type::INT4],
        },
        report: Statement {
            name: "report",
            sql: include_str!("../../sql/report.sql"),
            params: &[Type::INT4],
        },
    };

    pub const CITUS_WRITES: Writes = Writes {
        post_review: Statement {
            name: "citus/post_review",
            sql: include_str!("../../sql/citus/post_review.sql"),
            params: POST_REVIEW_PARAMS,
        },
        helpful: Statement {
            name: "citus/helpful",
            sql: include_str!("../../sql/citus/helpful.sql"),
            params: &[Type::INT4],
        },
        report: Statement {
            name: "citus/report",
            sql: include_str!("../../sql/citus/report.sql"),
            params: &[Type::INT4],
        },
    };

    /// Citus only, applied by migrate after SCHEMA (sql/citus/distribute.sql says why each).
    pub const CITUS_DISTRIBUTE: &str = include_str!("../../sql/citus/distribute.sql");
    pub const CITUS_WRITE_FUNCTIONS: &str = include_str!("../../sql/citus/writes.sql");
    pub const WAL_POSITION: Statement = Statement {
        name: "wal_position",
        sql: include_str!("../../sql/wal_position.sql"),
        params: &[],
    };
    pub const HEALTH: Statement = Statement {
        name: "health",
        sql: include_str!("../../sql/health.sql"),
        params: &[],
    };
}

/// Builds the pool of `url` (the primary's, or a replica's). Nothing connects here: connections
/// open when statements first need them (`startup` waits for the primary before serving data).
///
/// deadpool has no timeouts by default: without them an exhausted pool queues requests forever.
/// Here waiting for a connection, opening one and running a statement are each bounded by
/// `timeout_ms`; `statement_timeout` makes PostgreSQL itself give up on a slow statement too.
///
/// The plan cache is left to itself (plan_cache_mode = auto): on plain PostgreSQL each statement
/// is planned for its first five calls on a connection, then runs the generic plan sql/README.md
/// shows; on Citus the coordinator keeps planning each call with its parameters, which is how it
/// routes a statement to the one shard of its product (a forced generic plan cannot be routed:
/// "could not create distributed plan").
pub fn make_pool(settings: &DatabaseSettings, url: &str) -> anyhow::Result<Pool> {
    let timeout = settings.timeout();
    let mut pg: tokio_postgres::Config = url.parse()?;
    pg.connect_timeout(timeout);
    pg.application_name("reviews-api");
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

/// Runs one statement that returns at most one row, on a connection from `connections`, bounded
/// by `timeout` from asking for a connection to the last byte, so a hung network or an exhausted
/// pool is a 503 too, not a hang. A connection that gave no answer in time is retired.
pub async fn query_opt(
    connections: &Connections,
    timeout: Duration,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, DbError> {
    let asked = tokio::time::Instant::now();
    let deadline = asked + timeout;
    let client = tokio::time::timeout_at(deadline, connections.client())
        .await
        .map_err(|_| DbError::Timeout)??;
    let sent = tokio::time::Instant::now();
    let metrics = &connections.metrics;
    metrics
        .pool_wait_seconds
        .observe((sent - asked).as_secs_f64());
    let answer = tokio::time::timeout_at(deadline, async {
        let prepared = client
            .prepare_typed_cached(statement.sql, statement.params)
            .await?;
        client.query_opt(&prepared, params).await
    })
    .await;
    metrics.statement(statement.name, sent.elapsed());
    match answer {
        Ok(row) => Ok(row?),
        Err(_) => {
            connections.retire(client);
            Err(DbError::Timeout)
        }
    }
}

/// Runs a read statement that always returns one row of one text column: a finished JSON
/// document, handed to the client as it is.
pub async fn fetch_text(
    connections: &Connections,
    timeout: Duration,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<String, DbError> {
    match query_opt(connections, timeout, statement, params).await? {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(DbError::NoRow),
    }
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

/// Where the data lives: one PostgreSQL (with its streaming replicas), or a Citus cluster that
/// shards every table by product (docs/scaling.md). The reads and the schema's functions are the
/// same on both; the keys, the write statements and the load differ (sql/citus/).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Plain,
    /// The database has the `citus` extension: we talk to its coordinator.
    Citus,
}

impl Topology {
    /// The topology of the database `client` is connected to.
    pub async fn of(client: &tokio_postgres::Client) -> anyhow::Result<Topology> {
        let citus: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
                &[],
            )
            .await?
            .get(0);
        Ok(if citus {
            Topology::Citus
        } else {
            Topology::Plain
        })
    }

    pub fn writes(self) -> &'static sql::Writes {
        match self {
            Topology::Plain => &sql::PLAIN_WRITES,
            Topology::Citus => &sql::CITUS_WRITES,
        }
    }

    /// What `migrate` (and the load's staging) runs after sql/schema.sql, before sql/indexes.sql:
    /// on Citus the distribution of the tables; `reviews-api load` runs it again in its staging
    /// schema.
    pub fn distribute(self) -> &'static str {
        match self {
            Topology::Plain => "",
            Topology::Citus => sql::CITUS_DISTRIBUTE,
        }
    }
}

/// Applies `sql/schema.sql` and `sql/indexes.sql` (on Citus, with `sql/citus/` between them: the
/// tables distributed, the write functions). Idempotent; an advisory lock keeps two starting
/// instances from running it at once. Returns the database's topology.
///
/// On plain PostgreSQL it is one transaction. On Citus each statement is sent on its own (see
/// [`script`]) and commits on its own; each is idempotent, so a migrate cut short is finished by
/// the next one.
pub async fn migrate(client: &tokio_postgres::Client) -> anyhow::Result<Topology> {
    let topology = Topology::of(client).await?;
    client
        .batch_execute("SET client_min_messages = warning; SELECT pg_advisory_lock(7265)")
        .await?;
    let applied = match topology {
        Topology::Plain => {
            client
                .batch_execute(&format!("{} {}", sql::SCHEMA, sql::INDEXES))
                .await
        }
        // Citus refuses triggers on distributed tables unless told that the trigger function
        // is safe there: first_pages_refresh touches only the product's own rows, on its node.
        Topology::Citus => {
            let files = [
                sql::SCHEMA,
                sql::CITUS_DISTRIBUTE,
                sql::CITUS_WRITE_FUNCTIONS,
                "SET citus.enable_unsafe_triggers = on",
                sql::INDEXES,
            ];
            run_each(client, &files).await
        }
    };
    client
        .batch_execute("SELECT pg_advisory_unlock(7265); RESET ALL")
        .await?;
    applied?;
    Ok(topology)
}

/// Every statement of `files`, one query each.
pub async fn run_each(
    client: &impl tokio_postgres::GenericClient,
    files: &[&str],
) -> Result<(), tokio_postgres::Error> {
    for file in files {
        for statement in script::statements(file) {
            client.batch_execute(statement).await?;
        }
    }
    Ok(())
}
