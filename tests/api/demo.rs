//! `demo` and the private cluster it starts: real PostgreSQL binaries, real processes.

use crate::helpers::app::{temp_dir, TestDb};
use crate::helpers::contract;
use reviews_api::demo;
use reviews_api::devdb::{self, DevCluster};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo process, killed if the test ends before it exits.
struct Demo {
    child: Child,
    dir: tempfile::TempDir,
}

impl Demo {
    /// `reviews-api demo ARGS` in a fresh working folder, stdout and stderr kept in files there.
    fn spawn(env: &[(&str, String)], args: &[&str]) -> Demo {
        let dir = temp_dir("demo");
        let mut command = Command::new(env!("CARGO_BIN_EXE_reviews-api"));
        command
            .arg("demo")
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("PORT")
            .env_remove("REVIEWS__DATABASE__URL")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start reviews-api demo");
        Demo { child, dir }
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Panics with the demo's own output when it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "demo exited early ({status})\n--- stdout\n{}\n--- stderr\n{}",
                self.output("stdout"),
                self.output("stderr")
            );
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1)).is_ok()
}

/// Where the server of the cluster in `dir` puts its Unix socket (PostgreSQL names it by port).
fn socket_of(dir: &Path, port: u16) -> std::path::PathBuf {
    dir.join("sock").join(format!(".s.PGSQL.{port}"))
}

async fn query_i64(url: &str, sql: &str) -> i64 {
    let client = reviews_api::db::connect(url).await.expect("connect");
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn dev_cluster_starts_answers_stops_and_restarts_from_its_folder() {
    // Arrange
    assert!(
        devdb::find_pg_bin_dir().is_some(),
        "this test needs PostgreSQL's initdb and pg_ctl (e.g. /usr/lib/postgresql/15/bin)"
    );
    let dir = temp_dir("devdb");
    let cluster_dir = dir.path().join("pg");

    // Act
    let mut cluster = DevCluster::start(&cluster_dir).expect("start the private cluster");

    // Assert: a real server, in our folder, answering through its URL and its Unix socket.
    assert!(cluster_dir.join("data/PG_VERSION").exists());
    assert_eq!(query_i64(&cluster.url, "SELECT 41::bigint + 1").await, 42);
    let port = cluster.port;
    assert_ne!(port, 5432);
    assert!(socket_of(&cluster_dir, port).exists(), "no Unix socket");

    // A second start on a running folder reuses that server instead of failing.
    let mut again = DevCluster::start(&cluster_dir).expect("reuse the running cluster");
    assert_eq!(again.port, port);
    again.stop().expect("stop through the second handle");
    assert!(!answers(port), "the port still answers after stop()");
    cluster
        .stop()
        .expect("stopping a stopped cluster is not an error");

    // The initialised folder is reused: a restart skips initdb and serves the same data.
    let mut restarted = DevCluster::start(&cluster_dir).expect("restart");
    let client = reviews_api::db::connect(&restarted.url).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (x int)")
        .await
        .unwrap();
    drop(client);
    restarted.stop().unwrap();
    let mut third = DevCluster::start(&cluster_dir).expect("third start");
    assert_eq!(
        query_i64(
            &third.url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'"
        )
        .await,
        1
    );
    let third_port = third.port;
    third.stop().unwrap();
    assert!(!answers(third_port));
}

#[tokio::test]
async fn dropping_a_dev_cluster_stops_it() {
    let dir = temp_dir("devdb-drop");
    let cluster = DevCluster::start(&dir.path().join("pg")).expect("start the private cluster");
    let port = cluster.port;
    assert!(answers(port));

    drop(cluster);

    assert!(!answers(port));
}

#[tokio::test]
async fn a_dev_cluster_in_a_deep_folder_goes_without_its_unix_socket() {
    // A socket path over ~100 bytes cannot be bound; TCP alone must still work.
    let dir = temp_dir("devdb-deep");
    let deep = dir
        .path()
        .join("a-folder-name-long-enough".repeat(4))
        .join("pg");
    let mut cluster = DevCluster::start(&deep).expect("start in a deep folder");

    assert_eq!(query_i64(&cluster.url, "SELECT 7::bigint").await, 7);
    assert!(
        !socket_of(&deep, cluster.port).exists(),
        "a socket path this long cannot be bound"
    );
    cluster.stop().unwrap();
}

#[tokio::test]
async fn an_empty_database_needs_demo_data() {
    let db = TestDb::new().await;
    let client = db.client().await;

    assert!(demo::needs_demo_data(&client).await.unwrap());
}

#[tokio::test]
async fn a_database_with_characteristics_only_is_not_loaded_again() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO characteristics (product_id, name) VALUES (1, 'Fit')")
        .await
        .unwrap();
    // generate and load are never reached: a folder that does not exist proves it.
    let nowhere = Path::new("/nonexistent/reviews-demo-data");

    let loaded = demo::load_if_empty(&client, &db.settings(), 300, nowhere)
        .await
        .unwrap();

    assert!(!loaded);
    assert_eq!(
        query_i64(&db.url, "SELECT count(*) FROM characteristics").await,
        1
    );
}

#[tokio::test]
async fn a_database_with_reviews_is_served_as_it_is() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO reviews (product_id, rating, date_ms, body, recommend, reviewer_name, \
             reviewer_email) VALUES (1, 5, 1596080481467, 'Great', true, 'ann', 'a@b.co')",
        )
        .await
        .unwrap();
    let nowhere = Path::new("/nonexistent/reviews-demo-data");

    assert!(!demo::needs_demo_data(&client).await.unwrap());
    assert!(!demo::load_if_empty(&client, &db.settings(), 300, nowhere)
        .await
        .unwrap());
    assert_eq!(query_i64(&db.url, "SELECT count(*) FROM reviews").await, 1);
}

#[tokio::test]
async fn a_missing_database_is_created_once() {
    // Dropped (the database with it) at the end, whatever happens.
    let db = TestDb::reserve("demo_create");
    let url = db.url.clone();

    assert!(demo::create_database_if_missing(&url).await.unwrap());
    assert!(!demo::create_database_if_missing(&url).await.unwrap());
    assert_eq!(query_i64(&url, "SELECT 1::bigint").await, 1);
}

#[tokio::test]
async fn demo_refuses_a_database_url_that_does_not_answer() {
    // A port nobody listens on: the user's explicit choice is not replaced by a private cluster.
    let port = devdb::free_port().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/reviews");
    let mut demo = Demo::spawn(&[("DATABASE_URL", url)], &["--products", "300"]);

    let status = demo
        .wait_exit(Duration::from_secs(30))
        .expect("demo should give up, not hang");

    assert!(!status.success());
    let stderr = demo.output("stderr");
    assert!(stderr.contains("DATABASE_URL"), "stderr: {stderr}");
    assert!(
        !demo.dir.path().join(".demo-pg").exists(),
        "no private cluster for an explicit URL"
    );
}

/// Needs `generate` and `load`: the whole newcomer path on a database the demo creates itself.
#[tokio::test]
async fn demo_creates_the_database_loads_it_and_serves() {
    // Arrange: a database name that does not exist yet, and a free HTTP port.
    // Dropped (the database with it) at the end, whatever happens.
    let db = TestDb::reserve("demo_e2e");
    let url = db.url.clone();
    let port = devdb::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Act
    let mut demo = Demo::spawn(
        &[("DATABASE_URL", url.clone()), ("PORT", port.to_string())],
        &["--products", "300"],
    );

    // Assert: it serves, health first (the database answers), then a product's meta.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        demo.assert_running();
        if let Ok(response) = http.get(format!("{base}/health")).send().await {
            let response = contract::checked("GET", "/health", response).await;
            if response.status() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "demo did not serve /health in time"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let meta = http
        .get(format!("{base}/reviews/meta?product_id=1"))
        .send()
        .await
        .unwrap();
    let meta = contract::checked("GET", "/reviews/meta?product_id=1", meta).await;
    assert_eq!(meta.status(), 200);
    let stdout = demo.output("stdout");
    assert!(
        stdout.contains(&format!("{base}/health")),
        "stdout: {stdout}"
    );
    assert!(stdout.contains("sort=newest"), "stdout: {stdout}");
    drop(http);

    // SIGTERM: the server stops by itself and the demo exits cleanly.
    let pid = demo.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = demo
        .wait_exit(Duration::from_secs(40))
        .expect("demo should exit on SIGTERM");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        demo.output("stderr")
    );

    // The demo created the database and loaded it.
    assert!(query_i64(&url, "SELECT count(*) FROM reviews").await > 0);
    assert!(query_i64(&url, "SELECT count(*) FROM characteristics").await > 0);
    assert!(demo.dir.path().join(".demo-data").exists());
}
