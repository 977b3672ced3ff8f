//! Builds the application once, as a short list of named steps: the pools, the shared state, the
//! listener of other instances' writes, the HTTP server; then, while it already answers (503 until
//! ready), the wait for the database and the schema.
//!
//! Shared state is made here, outside `HttpServer::new`, and cloned into each worker: state made
//! inside that closure would be per worker (one pool per thread, one cache per thread). The one
//! exception is deliberate: each worker's read lanes (`Shared::for_worker`).

use crate::cache::BodyCache;
use crate::coherence::{self, Coherence};
use crate::config::Settings;
use crate::db::{self, url::describe};
use crate::http::{self, Shared};
use crate::metrics::Metrics;
use actix_web::dev::{Server, Service};
use actix_web::middleware::{Condition, Logger};
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;
use std::future::Future;
use std::net::{TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Waiting = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

pub struct Application {
    port: u16,
    server: Server,
    /// GET /metrics on its own address (server.metrics_listen), if so configured.
    metrics_server: Option<Server>,
    /// Set on SIGTERM or Ctrl-C: responses then close their connections (see
    /// `http::count_and_log`).
    draining: Arc<AtomicBool>,
    drain: Duration,
    /// Closed once the server has stopped, so the database sees the connections end at once.
    pools: Vec<Pool>,
    /// The wait for the database, when it did not answer at once (see [`Application::build`]).
    waiting: Option<Waiting>,
}

impl Application {
    /// Binds `server.host:server.port` (port 0 picks a free port, as tests do) and prepares the
    /// server; it runs when [`Application::run_until_stopped`] is awaited. When the database
    /// answers at once the schema is applied here, and every route serves from the start; when
    /// not, the server starts all the same (/health and the data routes answer 503) and goes on
    /// trying with backoff for `database.startup_wait_secs`, serving as soon as it answers.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::new());
        let primary = db::make_pool(&settings.database, &settings.database.url)?;
        let replicas = replica_pools(&settings)?;
        let coherence = Arc::new(Coherence::new(
            BodyCache::new(&settings.cache, metrics.cache.clone()),
            !replicas.is_empty(),
        ));
        let shared = shared_state(&settings, &primary, &replicas, &coherence, &metrics);
        coherence::spawn_listener(
            coherence,
            settings.database.url.clone(),
            settings.database.timeout(),
        );
        let draining = Arc::new(AtomicBool::new(false));
        let listener = bind(&settings)?;
        let port = listener.local_addr()?.port();
        let metrics_server = metrics_server(&settings, shared.clone())?;
        let server = http_server(&settings, listener, shared.clone(), draining.clone())?;
        log::info!("listening on http://{}:{port}", settings.server.host);
        let waiting = prepare_database(&settings, primary.clone(), shared).await;
        let mut pools: Vec<Pool> = replicas.into_iter().map(|(_, pool)| pool).collect();
        pools.push(primary);
        Ok(Application {
            port,
            server,
            metrics_server,
            draining,
            drain: Duration::from_secs(settings.server.drain_secs),
            pools,
            waiting,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, or until the wait for the database gives up. On SIGTERM
    /// it first drains for `server.drain_secs`: it goes on serving, but every answer closes its
    /// connection, so a proxy in front (NGINX) never has a request cut on a connection the
    /// instance closes under it and needs no reload to let the instance go (actix-web's own stop
    /// closes idle keep-alive connections at once, which races a proxy sending on one). Then, as
    /// on Ctrl-C, it stops accepting, lets the requests in flight finish (at most
    /// `server.shutdown_timeout_secs`) and closes the database connections.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let draining = self.draining.clone();
        let drain = self.drain;
        let signals = tokio::spawn(async move {
            if stop_signal().await == Stop::Drain {
                log::info!("SIGTERM: draining connections for {drain:?}");
                draining.store(true, Ordering::Release);
                tokio::time::sleep(drain).await;
            }
            log::info!("stopping");
            handle.stop(true).await;
        });
        let waiting = async {
            match self.waiting {
                Some(waiting) => waiting.await,
                None => Ok(()),
            }
        };
        if let Some(metrics) = self.metrics_server {
            // Stops with the process: it holds no request worth draining.
            tokio::spawn(metrics);
        }
        let mut server = self.server;
        let served = tokio::select! {
            served = &mut server => served.map_err(anyhow::Error::from),
            Err(e) = waiting => {
                // `stop` sends its command at once; the server completes it as it is polled here.
                drop(server.handle().stop(false));
                let _ = (&mut server).await;
                Err(e)
            }
        };
        signals.abort();
        for pool in &self.pools {
            pool.close();
        }
        log::info!("stopped");
        served
    }
}

/// One pool per replica, each with its poller of the replica's replay position.
fn replica_pools(settings: &Settings) -> anyhow::Result<Vec<(Arc<db::Replica>, Pool)>> {
    settings
        .database
        .replica_urls
        .iter()
        .map(|url| {
            let replica = Arc::new(db::Replica::new(url));
            replica.spawn_poller(url.clone(), settings.database.timeout());
            Ok((replica, db::make_pool(&settings.database, url)?))
        })
        .collect()
}

/// What every worker shares: the pools as read lanes and write connections, the coherence of
/// the cache and the replicas, the figures.
fn shared_state(
    settings: &Settings,
    primary: &Pool,
    replicas: &[(Arc<db::Replica>, Pool)],
    coherence: &Arc<Coherence>,
    metrics: &Arc<Metrics>,
) -> Arc<Shared> {
    let workers = workers(settings);
    let read_lanes = settings.database.read_lanes_per_worker(workers);
    if read_lanes < settings.database.read_lanes {
        log::warn!(
            "database.pool_size {} is too small for {workers} workers with database.read_lanes \
             {} and a connection for writes: {read_lanes} read lanes per worker",
            settings.database.pool_size,
            settings.database.read_lanes
        );
    }
    let lanes =
        |pool: &Pool| db::Connections::new(pool.clone(), workers, read_lanes, metrics.db.clone());
    let reads = db::Reads::new(
        lanes(primary),
        replicas
            .iter()
            .map(|(r, p)| (r.clone(), lanes(p)))
            .collect(),
    );
    Arc::new(Shared::new(
        primary.clone(),
        reads,
        read_lanes,
        coherence.clone(),
        metrics.clone(),
        settings,
    ))
}

fn workers(settings: &Settings) -> usize {
    match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The HTTP server on `listener`, each worker with its share of the state, the middleware and
/// the routes.
fn http_server(
    settings: &Settings,
    listener: TcpListener,
    shared: Arc<Shared>,
    draining: Arc<AtomicBool>,
) -> anyhow::Result<Server> {
    let access_log = settings.server.access_log;
    let metrics = shared.metrics.clone();
    // Built once: the limiter's counts are shared by every worker.
    let (limit_writes, write_limit) = http::write_limit(&settings.limits);
    let origins = settings.server.cors_origins.clone();
    Ok(HttpServer::new(move || {
        let metrics = metrics.clone();
        let draining = draining.clone();
        // Outermost first: paths normalised, CORS (a preflight is answered here), the access log,
        // timing and counting, the write limit, then the routes.
        App::new()
            .app_data(web::Data::new(shared.for_worker()))
            .wrap(Condition::new(
                limit_writes,
                actix_governor::Governor::new(&write_limit),
            ))
            .wrap_fn(move |req, srv| {
                http::count_and_log(metrics.clone(), draining.clone(), srv.call(req))
            })
            .wrap(Condition::new(
                access_log,
                // The Common Log Format: host, ident, user, time, request line, status, bytes.
                Logger::new(r#"%a - - %t "%r" %s %b"#).log_target("access"),
            ))
            .wrap(Condition::new(!origins.is_empty(), http::cors(&origins)))
            .wrap_fn(|mut req, srv| {
                http::normalize_path(&mut req);
                srv.call(req)
            })
            .configure(http::routes)
    })
    .workers(workers(settings))
    .backlog(4096)
    // Signals are handled in `run_until_stopped`, which drains before stopping.
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    .listen(listener)?
    .run())
}

/// GET /metrics alone on `server.metrics_listen`, when set: Prometheus scrapes the instances
/// there, and a gateway in front of the API's address cannot pass it on.
fn metrics_server(settings: &Settings, shared: Arc<Shared>) -> anyhow::Result<Option<Server>> {
    if settings.server.metrics_listen.is_empty() {
        return Ok(None);
    }
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(shared.for_worker()))
            .app_data(http::MetricsApart)
            .configure(http::metrics_route)
    })
    .workers(1)
    .disable_signals()
    .bind(&settings.server.metrics_listen)?
    .run();
    log::info!(
        "metrics on http://{}/metrics",
        settings.server.metrics_listen
    );
    Ok(Some(server))
}

/// Reaches the database and applies the schema, then marks the state ready. One attempt now;
/// when it fails, the attempts that follow (backoff from 0.5 s to 5 s, one WARN line each) run
/// with the server, as the returned future, which fails only once
/// `database.startup_wait_secs` have passed.
async fn prepare_database(settings: &Settings, pool: Pool, shared: Arc<Shared>) -> Option<Waiting> {
    let url = describe(&settings.database.url);
    let limit = Duration::from_secs(settings.database.startup_wait_secs);
    let started = tokio::time::Instant::now();
    let mut attempt = 1;
    let mut backoff = Duration::from_millis(500);
    let e = match connect_and_migrate(&pool).await {
        Ok(topology) => {
            shared.serve(topology);
            return None;
        }
        Err(e) => e,
    };
    log::warn!(
        "the database at {url} does not answer yet (attempt 1): {e:#}; retrying in {backoff:?}"
    );
    Some(Box::pin(async move {
        loop {
            tokio::time::sleep(backoff).await;
            attempt += 1;
            match connect_and_migrate(&pool).await {
                Ok(topology) => {
                    log::info!("the database at {url} answers (attempt {attempt}): serving");
                    shared.serve(topology);
                    return Ok(());
                }
                Err(e) if started.elapsed() >= limit => anyhow::bail!(
                    "the database at {url} did not answer within {} s (database.startup_wait_secs; \
                     {attempt} attempts): {e:#}",
                    limit.as_secs()
                ),
                Err(e) => {
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    log::warn!(
                        "the database at {url} does not answer yet (attempt {attempt}): {e:#}; \
                         retrying in {backoff:?}"
                    );
                }
            }
        }
    }))
}

async fn connect_and_migrate(pool: &Pool) -> anyhow::Result<db::Topology> {
    let client = pool.get().await.map_err(|e| match e {
        // The connection's own error, without deadpool's wrapping of it.
        deadpool_postgres::PoolError::Backend(e) => anyhow::Error::from(e),
        e => e.into(),
    })?;
    db::migrate(&client).await
}

/// `server.host:server.port`, with SO_REUSEPORT when `server.reuse_port` (see config/default.toml).
fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let address = (settings.server.host.as_str(), settings.server.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("server.host {} has no address", settings.server.host))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if settings.server.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[derive(PartialEq)]
enum Stop {
    /// SIGTERM, what service managers and deploy/local send: drain first.
    Drain,
    /// Ctrl-C at a terminal: stop now.
    Now,
}

async fn stop_signal() -> Stop {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            log::error!("cannot listen for SIGTERM: {e}; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return Stop::Now;
        }
    };
    tokio::select! {
        _ = term.recv() => Stop::Drain,
        _ = tokio::signal::ctrl_c() => Stop::Now,
    }
}
