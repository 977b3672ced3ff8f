//! Layered settings, read and validated once at start.
//!
//! Layers, later wins: the defaults compiled in from `config/default.toml` (so the binary runs
//! from any directory), `config/default.toml` and `config/local.toml` in the working directory if
//! present, environment variables `REVIEWS__SECTION__KEY`, then the two variables every platform
//! sets, `DATABASE_URL` and `PORT`.

use serde::Deserialize;
use std::time::Duration;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub load: LoadSettings,
    pub limits: LimitSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub bench_routes: bool,
    pub access_log: bool,
    pub shutdown_timeout_secs: u64,
    pub reuse_port: bool,
    pub drain_secs: u64,
    pub cors_origins: Vec<String>,
    pub metrics_listen: String,
    pub shared_max_age_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub replica_urls: Vec<String>,
    pub pool_size: usize,
    pub read_lanes: usize,
    pub timeout_ms: u64,
    pub startup_wait_secs: u64,
}

impl DatabaseSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The read lanes each of `workers` HTTP workers gets: `read_lanes`, or fewer when the pool
    /// could not otherwise keep a connection for writes.
    pub fn read_lanes_per_worker(&self, workers: usize) -> usize {
        self.read_lanes
            .min(self.pool_size.saturating_sub(1) / workers.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    pub enabled: bool,
    pub max_bytes: u64,
    pub ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub writes_per_second: u64,
    pub write_burst: u32,
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoadSettings {
    pub rejects: String,
}

impl Settings {
    /// Reads every layer. Fails fast, naming the bad key, rather than starting half-configured.
    pub fn load() -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::with_name("config/default").required(false))
            .add_source(config::File::with_name("config/local").required(false))
            .add_source(
                config::Environment::with_prefix("REVIEWS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("database.replica_urls")
                    .with_list_parse_key("server.cors_origins")
                    .with_list_parse_key("limits.trusted_proxies"),
            );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database.url", url)?;
        }
        if let Ok(port) = std::env::var("PORT") {
            builder = builder.set_override("server.port", port)?;
        }
        let settings: Settings = builder
            .build()?
            .try_deserialize()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone: what tests start from before pointing at their database.
    pub fn defaults() -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("config/default.toml is valid")
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.database.pool_size > 0,
            "database.pool_size must be at least 1"
        );
        anyhow::ensure!(
            self.database.timeout_ms > 0,
            "database.timeout_ms must be at least 1"
        );
        self.database
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| anyhow::anyhow!("database.url is not a valid PostgreSQL URL: {e}"))?;
        anyhow::ensure!(
            self.limits.write_burst > 0,
            "limits.write_burst must be at least 1"
        );
        if !self.server.metrics_listen.is_empty() {
            self.server
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("server.metrics_listen is not HOST:PORT: {e}"))?;
        }
        for url in &self.database.replica_urls {
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                anyhow::anyhow!("database.replica_urls: {url:?} is not a valid PostgreSQL URL: {e}")
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn read_lanes_leave_the_pool_a_connection_for_writes() {
        let mut db = Settings::defaults().database;
        db.read_lanes = 2;
        db.pool_size = 16;
        assert_eq!(db.read_lanes_per_worker(2), 2);
        assert_eq!(db.read_lanes_per_worker(8), 1, "8 × 2 would take all 16");
        assert_eq!(
            db.read_lanes_per_worker(16),
            0,
            "reads then borrow like writes"
        );
        db.pool_size = 1;
        assert_eq!(db.read_lanes_per_worker(1), 0);
        db.read_lanes = 0;
        db.pool_size = 16;
        assert_eq!(db.read_lanes_per_worker(2), 0);
    }
}
