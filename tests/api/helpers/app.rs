//! Throwaway databases and folders, and the real application on a random port.

use super::topology::Topology;
use reviews_api::config::Settings;
use reviews_api::startup::Application;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests create their databases on: see [`super::topology`] (plain PostgreSQL, or
/// the coordinator of a Citus cluster with TEST_TOPOLOGY=citus).
pub fn admin_url() -> String {
    super::topology::get().coordinator().to_string()
}

/// A uniquely named database, schema applied, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    topology: &'static Topology,
}

impl TestDb {
    /// A database of the run's topology (see [`super::topology`]).
    pub async fn new() -> TestDb {
        TestDb::new_on(super::topology::get()).await
    }

    /// A database on `topology`, schema applied.
    pub async fn new_on(topology: &'static Topology) -> TestDb {
        let db = TestDb::reserve_on(topology, "test");
        topology.create_database(&db.name).await;
        db.migrate().await;
        db
    }

    pub async fn migrate(&self) {
        reviews_api::db::migrate(&self.client().await)
            .await
            .expect("migrate");
    }

    /// A unique database name on the test server (`reviews_LABEL_...`) and its URL, for a test
    /// that has the database created some other way; not created here, but dropped like any.
    pub fn reserve(label: &str) -> TestDb {
        TestDb::reserve_on(super::topology::get(), label)
    }

    /// [`TestDb::reserve`] on `topology`.
    pub fn reserve_on(topology: &'static Topology, label: &str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "reviews_{label}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = reviews_api::db::url::with_dbname(topology.coordinator(), &name);
        TestDb {
            name,
            url,
            topology,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        reviews_api::db::connect(&self.url)
            .await
            .expect("test db connection")
    }

    /// Settings pointing at this database, serving on a random port.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::defaults();
        settings.database.url = self.url.clone();
        settings.server.port = 0;
        settings.server.workers = 2;
        settings.database.pool_size = 8;
        settings
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, topology) = (self.name.clone(), self.topology);
        // Drop runs outside async context guarantees: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(topology.drop_database(&name));
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// Private to the helpers: every request goes through one that checks the answer against
    /// openapi.yaml (helpers/contract.rs).
    pub(super) http: reqwest::Client,
}

impl TestApp {
    /// A GET of a route of openapi.yaml, its answer checked against the description, then
    /// handed back whole (status, headers, body).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request");
        super::contract::checked("GET", path, response).await
    }
}

/// Starts the real application on a random port against `settings`' database.
pub async fn spawn_app(settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::new(),
    }
}

/// Every public table's row count and rows, and optionally every sequence's last value: equal
/// snapshots mean the database did not change.
pub async fn snapshot(client: &tokio_postgres::Client, with_sequences: bool) -> Vec<String> {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .expect("list tables");
    assert!(tables.len() >= 5, "the schema's tables");
    let mut out = Vec::new();
    for table in tables {
        let name: String = table.get(0);
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM \"{name}\" t"
                ),
                &[],
            )
            .await
            .expect("snapshot table");
        out.push(format!(
            "{name}: {} rows\n{}",
            row.get::<_, i64>(0),
            row.get::<_, String>(1)
        ));
    }
    if with_sequences {
        for row in client
            .query(
                "SELECT schemaname || '.' || sequencename || ' = ' || coalesce(last_value::text, 'unused')
                   FROM pg_sequences ORDER BY 1",
                &[],
            )
            .await
            .expect("sequences")
        {
            out.push(row.get(0));
        }
    }
    out
}

/// A fresh folder under the system's temporary folder, removed when dropped. Open to all (0755):
/// as root, a private cluster inside it runs as `postgres`, which must reach it.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(&format!("reviews-api-test-{label}-"))
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .expect("create a temporary folder")
}

/// `reviews-api verify` against `url`, as a user runs it.
pub async fn run_verify(url: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_reviews-api"))
        .arg("verify")
        .env("DATABASE_URL", url)
        .env_remove("PORT")
        .output()
        .await
        .expect("run reviews-api verify")
}
