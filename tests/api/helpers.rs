//! Test scaffolding: throwaway databases and the real application on a random port.
#![allow(dead_code)]

use reviews_api::config::Settings;
use reviews_api::startup::Application;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests create their databases on: TEST_DATABASE_URL; else the usual server at
/// 127.0.0.1:5432; else, so that `cargo test` passes on a machine where none runs, a private
/// cluster started from the machine's PostgreSQL binaries, exactly as `demo` does. It is left
/// running for the next test run to reuse.
pub fn admin_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return url;
        }
        let usual = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
        if std::net::TcpStream::connect_timeout(&usual, std::time::Duration::from_secs(2)).is_ok() {
            return "postgres://postgres@127.0.0.1:5432/postgres".to_string();
        }
        // Under /tmp: as root the cluster runs as the postgres user, which must reach the folder.
        let dir = std::env::temp_dir().join("reviews-api-test-pg");
        let cluster = reviews_api::devdb::DevCluster::start(&dir)
            .expect("no PostgreSQL at 127.0.0.1:5432 and no private cluster could start");
        let url = cluster.url.clone();
        std::mem::forget(cluster);
        url
    })
    .clone()
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
        let url = reviews_api::demo::with_dbname(&admin_url(), &name);
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

// ---------------------------------------------------------------------------------------------
// Helpers of the write, cache and fault tests: HTTP replies as plain values, products seeded the
// way the loader leaves them, docs/api.md's documents rebuilt independently, database snapshots, and
// a TCP proxy that can cut or black-hole the database.

use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Longer than any answer docs/api.md allows: a request still unanswered by then is a hang.
pub const HANG: Duration = Duration::from_secs(15);

/// One HTTP answer, read completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl TestApp {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let answer = async {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let body = response.text().await.expect("response body");
            Reply {
                status,
                content_type,
                body,
            }
        };
        tokio::time::timeout(HANG, answer)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {HANG:?}"))
    }

    pub async fn get_reply(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// The body of a GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> String {
        let reply = self.get_reply(path).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.body
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_bytes(path, body.to_string().into_bytes()).await
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Reply {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str) -> Reply {
        self.call(reqwest::Method::PUT, path, None).await
    }

    /// A sample of `/metrics` without labels (`name value`).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get_ok("/metrics").await;
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    }

    /// Waits until the cache listener reports `listening`; false when it did not within `limit`.
    pub async fn wait_listening(&self, listening: bool, limit: Duration) -> bool {
        let wanted = if listening { 1.0 } else { 0.0 };
        poll(limit, Duration::from_millis(50), || async {
            self.metric("reviews_cache_listening").await == wanted
        })
        .await
    }
}

/// Calls `check` every `every` until it is true (true) or `limit` has passed (false).
pub async fn poll<F, Fut>(limit: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A product as the loader leaves it: its characteristics, and a product_meta row listing them
/// (ordered by id, sums and counts zero). A product without characteristics gets no row.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i32,
    /// (characteristic id, name), ordered by id.
    pub chars: Vec<(i32, String)>,
}

impl Product {
    /// The `characteristics` object of a POST body: `values` in the order of `chars`.
    pub fn ratings(&self, values: &[i32]) -> Value {
        assert_eq!(
            values.len(),
            self.chars.len(),
            "one value per characteristic"
        );
        let map: serde_json::Map<String, Value> = self
            .chars
            .iter()
            .zip(values)
            .map(|((id, _), v)| (id.to_string(), json!(v)))
            .collect();
        Value::Object(map)
    }
}

pub async fn seed_product(
    client: &tokio_postgres::Client,
    product_id: i32,
    names: &[&str],
) -> Product {
    let mut chars = Vec::new();
    for name in names {
        let row = client
            .query_one(
                "INSERT INTO characteristics (product_id, name) VALUES ($1, $2) RETURNING id",
                &[&product_id, name],
            )
            .await
            .expect("insert characteristic");
        chars.push((row.get::<_, i32>(0), name.to_string()));
    }
    chars.sort();
    if !chars.is_empty() {
        let ids: Vec<i32> = chars.iter().map(|c| c.0).collect();
        let names: Vec<String> = chars.iter().map(|c| c.1.clone()).collect();
        let sums = vec![0i64; ids.len()];
        let counts = vec![0i32; ids.len()];
        client
            .execute(
                "INSERT INTO product_meta (product_id, char_ids, char_names, char_sums, char_counts)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&product_id, &ids, &names, &sums, &counts],
            )
            .await
            .expect("insert product_meta");
    }
    Product {
        id: product_id,
        chars,
    }
}

/// What a test knows about a review it posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub review_id: i32,
    pub rating: i32,
    pub recommend: bool,
    /// One value per characteristic of the product, in the order of `Product::chars`.
    pub values: Vec<i32>,
}

/// A valid POST body for `product` (product_id in the body).
pub fn review_body(product: &Product, rating: i32, recommend: bool, values: &[i32]) -> Value {
    json!({
        "product_id": product.id,
        "rating": rating,
        "summary": format!("Rated {rating}"),
        "body": "A review written by a test.",
        "recommend": recommend,
        "name": "tester",
        "email": "tester@example.com",
        "photos": [],
        "characteristics": product.ratings(values),
    })
}

/// The new review id of a 201 answer, which must be exactly `{"review_id":N}`.
pub fn created_id(reply: &Reply) -> i32 {
    assert_eq!(reply.status, 201, "POST: {}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let id = reply
        .body
        .strip_prefix("{\"review_id\":")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or_else(|| panic!("not {{\"review_id\":N}}: {}", reply.body));
    assert!(id >= 1, "review id {id}");
    id
}

/// POSTs a valid review through `app` and returns what was posted.
pub async fn post_review(
    app: &TestApp,
    product: &Product,
    rating: i32,
    recommend: bool,
    values: &[i32],
) -> Posted {
    let reply = app
        .post_json("/reviews", &review_body(product, rating, recommend, values))
        .await;
    Posted {
        review_id: created_id(&reply),
        rating,
        recommend,
        values: values.to_vec(),
    }
}

/// The meta document docs/api.md prescribes for `product` when exactly `visible` are its visible
/// reviews, rebuilt here from the contract (averages from the model in dataset.rs).
pub async fn expected_meta(product: &Product, visible: &[Posted]) -> String {
    let mut ratings = [0u32; 5];
    let mut recommended = [0u32; 2];
    for review in visible {
        ratings[review.rating as usize - 1] += 1;
        recommended[usize::from(review.recommend)] += 1;
    }
    let ratings: Vec<String> = (1..=5)
        .filter(|r| ratings[r - 1] > 0)
        .map(|r| format!("\"{r}\":\"{}\"", ratings[r - 1]))
        .collect();
    let recommended: Vec<String> = [("false", recommended[0]), ("true", recommended[1])]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("\"{k}\":\"{n}\""))
        .collect();
    let mut chars = Vec::new();
    for (i, (id, name)) in product.chars.iter().enumerate() {
        let values: Vec<i32> = visible.iter().map(|r| r.values[i]).collect();
        let value = average(&values);
        chars.push(format!(
            "{}:{{\"id\":{id},\"value\":{}}}",
            serde_json::to_string(name).unwrap(),
            value.map_or("null".to_string(), |v| format!("\"{v}\""))
        ));
    }
    format!(
        "{{\"product_id\":\"{}\",\"ratings\":{{{}}},\"recommended\":{{{}}},\"characteristics\":{{{}}}}}",
        product.id,
        ratings.join(","),
        recommended.join(","),
        chars.join(",")
    )
}

/// `avg(integer)::text` of `values` as PostgreSQL prints it, from the independent model in
/// dataset.rs; None for no values.
pub fn average(values: &[i32]) -> Option<String> {
    let sum: i64 = values.iter().map(|v| i64::from(*v)).sum();
    (!values.is_empty()).then(|| crate::dataset::pg_average(sum, values.len() as i64))
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

/// The review ids of a list document, in order.
pub fn listed_ids(list: &str) -> Vec<i64> {
    let v: Value = serde_json::from_str(list).expect("list is JSON");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["review_id"].as_i64().expect("review_id"))
        .collect()
}

/// What a TCP proxy in front of the database does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes flow both ways.
    Forward,
    /// Every live connection is dropped; new ones are accepted and closed at once.
    Cut,
    /// A black hole: live connections stall (bytes are held, not lost) and new ones are
    /// accepted and never answered, until the mode changes.
    Hang,
    /// Live connections keep working; new ones are accepted and closed at once.
    RefuseNew,
}

/// A TCP proxy on 127.0.0.1 in front of the test server, with a switch.
///
/// The pumps are hand-written rather than `copy_bidirectional`: in `Hang` they must hold bytes
/// already read and deliver them when forwarding resumes, which a dropped copy future would lose.
pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<ProxyMode>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to the server of [`admin_url`].
    pub async fn start() -> Proxy {
        let config: tokio_postgres::Config = admin_url().parse().expect("admin url");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the proxy needs a TCP database host, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = format!("{host}:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let local = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(ProxyMode::Forward);
        let modes = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let current = *modes.borrow();
                match current {
                    ProxyMode::Cut | ProxyMode::RefuseNew => drop(socket),
                    ProxyMode::Forward | ProxyMode::Hang => {
                        tokio::spawn(serve(socket, upstream.clone(), modes.subscribe()));
                    }
                }
            }
        });
        Proxy {
            port: local,
            mode,
            accept,
        }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// `url` (a database URL of the test server) pointing at this proxy instead.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("scheme://");
        let end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..end];
        let userinfo = authority.rfind('@').map_or("", |i| &authority[..=i]);
        format!(
            "{scheme}://{userinfo}127.0.0.1:{}{}",
            self.port,
            &rest[end..]
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(ProxyMode::Cut);
    }
}

async fn serve(client: TcpStream, upstream: String, mut mode: watch::Receiver<ProxyMode>) {
    // A connection accepted while hanging waits, unanswered, for the switch.
    loop {
        match *mode.borrow_and_update() {
            ProxyMode::Forward => break,
            ProxyMode::Hang => {}
            ProxyMode::Cut | ProxyMode::RefuseNew => return,
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode.clone()) => {}
        _ = until_cut(mode) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match *mode.borrow_and_update() {
                ProxyMode::Hang => {}
                ProxyMode::Cut => return,
                ProxyMode::Forward | ProxyMode::RefuseNew => break,
            }
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn until_cut(mut mode: watch::Receiver<ProxyMode>) {
    loop {
        if *mode.borrow_and_update() == ProxyMode::Cut {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
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
