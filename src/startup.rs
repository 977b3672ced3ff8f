//! Builds the application once: the pool, the schema, the shared state, the listener.
//!
//! Shared state is made here, outside `HttpServer::new`, and cloned into each worker: state made
//! inside that closure would be per worker (one pool per thread, one cache per thread). The one
//! exception is deliberate: each worker's read lanes (`AppState::for_worker`).

use crate::cache::{self, BodyCache};
use crate::config::Settings;
use crate::db;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use actix_web::dev::{Server, Service};
use actix_web::middleware::{Condition, Logger};
use actix_web::{web, App, HttpServer};
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Application {
    port: u16,
    server: Server,
    /// Set on SIGTERM or Ctrl-C: responses then close their connections (see `http::count_and_log`).
    draining: Arc<AtomicBool>,
    drain: std::time::Duration,
    /// Closed once the server has stopped, so the database sees the connections end at once.
    pools: Vec<deadpool_postgres::Pool>,
}

impl Application {
    /// Applies the schema, binds `server.host:server.port` (port 0 picks a free port, as tests
    /// do) and prepares the server; it runs when [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let pool = db::make_pool(&settings.database, &settings.database.url)?;
        let client = pool.get().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the database at {}: {e}",
                settings.database.url
            )
        })?;
        db::migrate(&client).await?;
        drop(client);

        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(BodyCache::new(&settings.cache, metrics.cache.clone()));
        let replicas = settings
            .database
            .replica_urls
            .iter()
            .map(|url| {
                let replica = Arc::new(db::Replica::new(url));
                replica.spawn_poller(url.clone(), settings.database.timeout());
                Ok((replica, db::make_pool(&settings.database, url)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let freshness = (!replicas.is_empty()).then(Arc::<db::Freshness>::default);
        cache::spawn_listener(
            cache.clone(),
            freshness.clone(),
            settings.database.url.clone(),
            settings.database.timeout(),
        );
        let mut pools: Vec<_> = replicas.iter().map(|(_, p)| p.clone()).collect();
        pools.push(pool.clone());
        let listener = bind(&settings)?;
        let port = listener.local_addr()?.port();
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let read_lanes = settings.database.read_lanes_per_worker(workers);
        if read_lanes < settings.database.read_lanes {
            log::warn!(
                "database.pool_size {} is too small for {workers} workers with database.read_lanes \
                 {} and a connection for writes: {read_lanes} read lanes per worker",
                settings.database.pool_size,
                settings.database.read_lanes
            );
        }
        let state = Arc::new(AppState::new(
            pool,
            replicas,
            freshness,
            cache,
            metrics.clone(),
            &settings,
            workers,
            read_lanes,
        ));
        let access_log = settings.server.access_log;
        let draining = Arc::new(AtomicBool::new(false));
        let closing = draining.clone();
        let server = HttpServer::new(move || {
            let metrics = metrics.clone();
            let closing = closing.clone();
            App::new()
                .app_data(web::Data::new(state.for_worker()))
                .wrap_fn(move |req, srv| {
                    http::count_and_log(metrics.clone(), closing.clone(), srv.call(req))
                })
                .wrap(Condition::new(
                    access_log,
                    // The Common Log Format: host, ident, user, time, request line, status, bytes.
                    Logger::new(r#"%a - - %t "%r" %s %b"#).log_target("access"),
                ))
                .wrap_fn(|mut req, srv| {
                    http::normalize_path(&mut req);
                    srv.call(req)
                })
                .configure(http::routes)
        })
        .workers(workers)
        .backlog(4096)
        // Signals are handled in `run_until_stopped`, which drains before stopping.
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        log::info!("listening on http://{}:{port}", settings.server.host);
        Ok(Application {
            port,
            server,
            draining,
            drain: std::time::Duration::from_secs(settings.server.drain_secs),
            pools,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C. On SIGTERM it first drains for `server.drain_secs`: it
    /// goes on serving, but every answer closes its connection, so a proxy in front (NGINX) never
    /// has a request cut on a connection the instance closes under it and needs no reload to let
    /// the instance go (actix-web's own stop closes idle keep-alive connections at once, which
    /// races a proxy sending on one). Then, as on Ctrl-C, it stops accepting, lets the requests in
    /// flight finish (at most `server.shutdown_timeout_secs`) and closes the database connections.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let draining = self.draining.clone();
        let drain = self.drain;
        tokio::spawn(async move {
            if stop_signal().await == Stop::Drain {
                log::info!("SIGTERM: draining connections for {drain:?}");
                draining.store(true, Ordering::Release);
                tokio::time::sleep(drain).await;
            }
            log::info!("stopping");
            handle.stop(true).await;
        });
        let served = self.server.await;
        for pool in &self.pools {
            pool.close();
        }
        log::info!("stopped");
        Ok(served?)
    }
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
