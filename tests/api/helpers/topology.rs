//! Where the tests' databases live: the same suite runs against plain PostgreSQL (the default)
//! and against a Citus cluster, a coordinator and two workers (TEST_TOPOLOGY=citus), which shards
//! every table by product (docs/scaling.md).
//!
//! Plain: TEST_DATABASE_URL; else the usual server at 127.0.0.1:5432; else, so that `cargo test`
//! passes on a machine where none runs, a private cluster started from the machine's PostgreSQL
//! binaries, exactly as `demo` does. Citus: TEST_CITUS_URLS (the coordinator's and each worker's
//! server, comma-separated); else three private clusters with Citus loaded, under the system's
//! temporary folder. Private clusters are left running for the next test run to reuse.
//!
//! A test database on Citus is made on every node, with the extension, and the workers are
//! registered in it: each test has a cluster of its own in effect (Citus keeps its node list per
//! database), on shared servers.

use reviews_api::db::url::with_dbname;
use reviews_api::devdb::{DevCluster, StartOptions};
use std::sync::OnceLock;

pub enum Topology {
    Plain(String),
    Citus {
        coordinator: String,
        workers: Vec<String>,
    },
}

/// The topology of this test run.
pub fn get() -> &'static Topology {
    match std::env::var("TEST_TOPOLOGY").as_deref() {
        Ok("citus") => citus(),
        Ok("plain") | Err(_) => plain(),
        Ok(other) => panic!("TEST_TOPOLOGY={other}: plain or citus"),
    }
}

/// Plain PostgreSQL, whatever the run's topology (for the tests that compare the two).
pub fn plain() -> &'static Topology {
    static PLAIN: OnceLock<Topology> = OnceLock::new();
    PLAIN.get_or_init(|| Topology::Plain(plain_server()))
}

/// The Citus cluster, whatever the run's topology (for the tests of Citus itself).
pub fn citus() -> &'static Topology {
    static CITUS: OnceLock<Topology> = OnceLock::new();
    CITUS.get_or_init(citus_cluster)
}

impl Topology {
    pub fn is_citus(&self) -> bool {
        matches!(self, Topology::Citus { .. })
    }

    /// The server the application and the tests talk to (its `postgres` database).
    pub fn coordinator(&self) -> &str {
        match self {
            Topology::Plain(url) => url,
            Topology::Citus { coordinator, .. } => coordinator,
        }
    }

    /// The worker servers' URLs (their `postgres` database); none on plain PostgreSQL.
    pub fn workers(&self) -> &[String] {
        match self {
            Topology::Plain(_) => &[],
            Topology::Citus { workers, .. } => workers,
        }
    }

    /// Creates database `name`, empty; on Citus on every node, with the workers registered.
    pub async fn create_database(&self, name: &str) {
        self.create_database_reaching_workers_at(name, self.workers())
            .await
    }

    /// [`Topology::create_database`], with the workers registered at `addresses` (one database
    /// URL per worker, such as a proxy's in front of it) rather than at their own.
    pub async fn create_database_reaching_workers_at(&self, name: &str, addresses: &[String]) {
        for server in
            std::iter::once(self.coordinator()).chain(self.workers().iter().map(String::as_str))
        {
            let admin = reviews_api::db::connect(server)
                .await
                .unwrap_or_else(|e| panic!("admin connection to {server}: {e:#}"));
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            if self.is_citus() {
                let db = reviews_api::db::connect(&with_dbname(server, name))
                    .await
                    .expect("connect to the new database");
                db.batch_execute("CREATE EXTENSION citus")
                    .await
                    .expect("CREATE EXTENSION citus");
            }
        }
        if let Topology::Citus {
            coordinator,
            workers: _,
        } = self
        {
            let db = reviews_api::db::connect(&with_dbname(coordinator, name))
                .await
                .expect("connect to the coordinator");
            let (host, port) = host_port(coordinator);
            db.execute("SELECT citus_set_coordinator_host($1, $2)", &[&host, &port])
                .await
                .expect("citus_set_coordinator_host");
            for worker in addresses {
                let (host, port) = host_port(worker);
                db.execute("SELECT citus_add_node($1, $2)", &[&host, &port])
                    .await
                    .expect("citus_add_node");
            }
        }
    }

    /// Drops database `name` everywhere it was made.
    pub async fn drop_database(&self, name: &str) {
        for server in
            std::iter::once(self.coordinator()).chain(self.workers().iter().map(String::as_str))
        {
            if let Ok(admin) = reviews_api::db::connect(server).await {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

fn host_port(url: &str) -> (String, i32) {
    let config: tokio_postgres::Config = url.parse().expect("a server URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("Citus nodes need a TCP host, not {other:?}"),
    };
    (
        host,
        i32::from(config.get_ports().first().copied().unwrap_or(5432)),
    )
}

fn plain_server() -> String {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return url;
    }
    let usual = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    if std::net::TcpStream::connect_timeout(&usual, std::time::Duration::from_secs(2)).is_ok() {
        return "postgres://postgres@127.0.0.1:5432/postgres".to_string();
    }
    // Under /tmp: as root the cluster runs as the postgres user, which must reach the folder.
    let dir = std::env::temp_dir().join("reviews-api-test-pg");
    let cluster = DevCluster::start(&dir)
        .expect("no PostgreSQL at 127.0.0.1:5432 and no private cluster could start");
    let url = cluster.url.clone();
    cluster.detach();
    url
}

fn citus_cluster() -> Topology {
    if let Ok(urls) = std::env::var("TEST_CITUS_URLS") {
        let mut urls = urls.split(',').map(str::to_string);
        let coordinator = urls.next().expect("TEST_CITUS_URLS: the coordinator first");
        return Topology::Citus {
            coordinator,
            workers: urls.collect(),
        };
    }
    assert!(
        reviews_api::devdb::find_pg_bin_dir()
            .and_then(|bin| bin.parent().map(|p| p.to_path_buf()))
            .is_some_and(|_| citus_installed()),
        "TEST_TOPOLOGY=citus needs the Citus extension: install your platform's package \
         (postgresql-15-citus from Citus's repository), or build it with ../shared/citus/build.sh"
    );
    let root = std::env::temp_dir().join("reviews-api-test-citus");
    let options = StartOptions {
        settings: vec![
            ("shared_preload_libraries".into(), "citus".into()),
            // Few shards: a test database is made for every test.
            ("citus.shard_count".into(), "8".into()),
            ("max_connections".into(), "300".into()),
        ],
        ..StartOptions::default()
    };
    let start = |name: &str| {
        let cluster = DevCluster::start_with(&root.join(name), &options)
            .unwrap_or_else(|e| panic!("cannot start the Citus {name}: {e:#}"));
        let url = cluster.url.clone();
        cluster.detach();
        url
    };
    Topology::Citus {
        coordinator: start("coordinator"),
        workers: vec![start("worker-1"), start("worker-2")],
    }
}

/// Whether the PostgreSQL found here has the Citus extension installed.
fn citus_installed() -> bool {
    let Some(bin) = reviews_api::devdb::find_pg_bin_dir() else {
        return false;
    };
    let Ok(out) = std::process::Command::new(bin.join("pg_config"))
        .arg("--sharedir")
        .output()
    else {
        return false;
    };
    let share = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::path::Path::new(&share)
        .join("extension/citus.control")
        .exists()
}
