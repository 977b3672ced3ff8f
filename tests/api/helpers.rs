//! Test scaffolding: throwaway databases and the real application on a random port.
#![allow(dead_code)]

use reviews_api::config::Settings;
use reviews_api::startup::Application;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A uniquely named database, schema applied, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "reviews_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = reviews_api::db::connect(&admin_url())
            .await
            .expect("admin connection");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = url_with_db(&admin_url(), &name);
        let client = reviews_api::db::connect(&url)
            .await
            .expect("test db connection");
        reviews_api::db::migrate(&client).await.expect("migrate");
        TestDb { name, url }
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
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a private runtime on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = reviews_api::db::connect(&admin_url()).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// `base` with its database name replaced by `db`.
pub fn url_with_db(base: &str, db: &str) -> String {
    match base.rfind('/') {
        Some(i) if base[..i].ends_with('/') => format!("{base}/{db}"),
        Some(i) => {
            let (head, tail) = base.split_at(i);
            let query = tail.find('?').map(|q| &tail[q..]).unwrap_or("");
            format!("{head}/{db}{query}")
        }
        None => format!("{base}/{db}"),
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
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

/// A fresh empty directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "reviews-api-test-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// `text` as one quoted CSV field.
pub fn csv_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The rejects file of a load, parsed: (file, line, reason, original row bytes) per row.
pub fn read_rejects(path: &std::path::Path) -> Vec<(String, u64, String, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("the rejects file exists");
    let mut reader = reviews_api::etl::csv::Reader::new(file);
    let header = reader.next_record().unwrap().expect("a header");
    assert_eq!(header.raw(), b"file,line,reason,row");
    let mut rows = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        assert!(
            r.error().is_none() && r.len() == 4,
            "rejects line {}",
            r.line()
        );
        let text = |i| String::from_utf8(r.field(i).to_vec()).unwrap();
        rows.push((
            text(0),
            text(1).parse().unwrap(),
            text(2),
            r.field(3).to_vec(),
        ));
    }
    rows
}
