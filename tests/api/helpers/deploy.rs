//! A scaled-out topology made by `deploy/local` (PostgreSQL primary, streaming replicas, several
//! `reviews-api serve` processes, NGINX) in a temporary folder on free ports, and a closed-loop
//! load to run through it. Dropping the [`Deployment`] runs `deploy/local down`, so a failed test
//! leaves no process behind.

use super::app::temp_dir;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local");
const BIN: &str = env!("CARGO_BIN_EXE_reviews-api");

/// One line of DIR/state.
#[derive(Debug, Clone)]
pub struct Part {
    pub kind: String,
    pub name: String,
    pub port: u16,
    pub pid: String,
    pub folder: PathBuf,
}

pub struct Deployment {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`: NGINX.
    pub url: String,
}

/// Fails, never skips, when NGINX is missing: the scale-out tests are the point of deploy/local.
pub fn require_nginx() {
    let found = which::which("nginx").is_ok() || Path::new("/usr/sbin/nginx").exists();
    assert!(
        found,
        "the scale-out tests run NGINX, which is not installed: apt-get install nginx-light"
    );
}

/// NGINX's port, which deploy/local allocates the others above: free, and below the kernel's
/// ephemeral ports (32768 and up on Linux), which outgoing connections take at random: an
/// instance restarting on a port that a client connection holds at that moment could not bind it.
/// A random slot of 20 ports in 15000..30000, so that concurrent tests and test runs seldom start
/// from the same place (deploy/local also skips any port that answers).
fn base_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..50 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let slot = (hasher.finish() % 750) as u16;
        let port = 15000 + slot * 20;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 15000..30000");
}

impl Deployment {
    /// `deploy/local up --dir <temp> --bin <this build> --port <free> ARGS`.
    pub fn up(args: &[&str]) -> Deployment {
        Deployment::up_with_env(args, &[])
    }

    /// `up`, with `env` in the environment of deploy/local, which its instances inherit
    /// (`REVIEWS__SECTION__KEY` settings).
    pub fn up_with_env(args: &[&str], env: &[(&str, &str)]) -> Deployment {
        require_nginx();
        let dir = temp_dir("deploy");
        let port = base_port();
        let mut all = vec![
            "up".to_string(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--bin".into(),
            BIN.into(),
            "--port".into(),
            port.to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        // Made before `up` runs, so that a failed `up` is followed by `down` all the same.
        let mut deployment = Deployment {
            dir,
            url: String::new(),
        };
        let out = deployment.script_with_env(&all, env);
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "up printed {url:?}");
        deployment.url = url;
        deployment
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `deploy/local ARGS --dir DIR`, which must succeed; its output otherwise in the panic.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.push("--dir".into());
        all.push(self.dir().display().to_string());
        self.script(&all)
    }

    fn script(&self, args: &[String]) -> Output {
        self.script_with_env(args, &[])
    }

    fn script_with_env(&self, args: &[String], env: &[(&str, &str)]) -> Output {
        let out = Command::new(SCRIPT)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run deploy/local");
        assert!(
            out.status.success(),
            "deploy/local {} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `run` off the async runtime's threads (the script sleeps and waits).
    pub async fn run_async(self: &Arc<Self>, args: &[&str]) -> Output {
        let me = self.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            me.run(&args)
        })
        .await
        .expect("deploy/local task")
    }

    pub fn parts(&self) -> Vec<Part> {
        let text = std::fs::read_to_string(self.dir().join("state")).expect("DIR/state");
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f.len(), 5, "state line {line:?}");
                Part {
                    kind: f[0].into(),
                    name: f[1].into(),
                    port: f[2].parse().expect("port"),
                    pid: f[3].into(),
                    folder: f[4].into(),
                }
            })
            .collect()
    }

    pub fn part(&self, name: &str) -> Part {
        self.parts()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name} in DIR/state"))
    }

    /// `http://127.0.0.1:PORT` of each instance, in order.
    pub fn instance_urls(&self) -> Vec<String> {
        self.parts()
            .into_iter()
            .filter(|p| p.kind == "instance")
            .map(|p| format!("http://127.0.0.1:{}", p.port))
            .collect()
    }

    /// The `reviews` database the instances write to: the primary, or the Citus coordinator.
    pub fn primary_url(&self) -> String {
        let main = self
            .parts()
            .into_iter()
            .find(|p| p.kind == "primary" || p.kind == "coordinator")
            .expect("a primary or a coordinator in DIR/state");
        format!("postgres://postgres@127.0.0.1:{}/reviews", main.port)
    }

    /// Index scans of the reviews tables that PostgreSQL part `name` ran itself (its own
    /// statistics: on a replica, the reads it served).
    pub async fn index_scans(&self, name: &str) -> i64 {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/reviews",
            self.part(name).port
        );
        let client = reviews_api::db::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to {name}: {e:#}"));
        let row = client
            .query_one(
                "SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_tables",
                &[],
            )
            .await
            .expect("pg_stat_user_tables");
        row.get(0)
    }

    /// Stops PostgreSQL part `name` (`reviews-api devdb stop`, as deploy/local does), `immediate`
    /// as a crash; returns once its server has exited.
    pub fn pg_stop(&self, name: &str, immediate: bool) {
        let mode = if immediate { "immediate" } else { "fast" };
        let stopped = reviews_api::devdb::DevCluster::stop_dir(&self.part(name).folder, mode)
            .unwrap_or_else(|e| panic!("stop {name}: {e:#}"));
        assert!(stopped, "{name} was not running");
    }

    /// Starts PostgreSQL part `name` again from its folder, on its port, with its settings.
    pub fn pg_start(&self, name: &str) {
        reviews_api::devdb::DevCluster::start(&self.part(name).folder)
            .unwrap_or_else(|e| panic!("start {name}: {e:#}"))
            .detach();
    }

    /// `reviews-api verify` against the primary: the precomputed meta equals a recomputation.
    pub fn verify(&self) {
        let out = Command::new(BIN)
            .arg("verify")
            .env("DATABASE_URL", self.primary_url())
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .output()
            .expect("run reviews-api verify");
        assert!(
            out.status.success(),
            "reviews-api verify failed ({})\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let out = Command::new(SCRIPT)
            .args(["down", "--dir"])
            .arg(self.dir())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "deploy/local down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cannot run deploy/local down: {e}"),
        }
    }
}

/// Every failed request of a load run: a socket error, or an answer other than 2xx.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: u64,
    /// (method, path, what happened)
    pub failures: Vec<(String, String, String)>,
    /// The ids of every review whose POST was answered 201.
    pub acknowledged: Vec<i32>,
    /// Votes answered 204, by review id.
    pub helpful: Vec<i32>,
}

impl Tally {
    pub fn failed(&self, method: &str) -> Vec<&(String, String, String)> {
        self.failures.iter().filter(|f| f.0 == method).collect()
    }
}

/// A product of the generated dataset and the characteristic ids a review of it must rate.
#[derive(Debug, Clone)]
pub struct Target {
    pub product_id: i32,
    pub char_ids: Vec<i64>,
}

/// The characteristic ids of `product_id`, from its meta document.
pub async fn target(http: &reqwest::Client, url: &str, product_id: i32) -> Target {
    let meta: Value = http
        .get(format!("{url}/reviews/meta?product_id={product_id}"))
        .send()
        .await
        .expect("GET meta")
        .json()
        .await
        .expect("meta JSON");
    let mut char_ids: Vec<i64> = meta["characteristics"]
        .as_object()
        .expect("characteristics")
        .values()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    char_ids.sort();
    Target {
        product_id,
        char_ids,
    }
}

/// A valid POST /reviews body for `target`, rating `rating`.
pub fn review_body(target: &Target, rating: i64, note: &str) -> Value {
    let chars: serde_json::Map<String, Value> = target
        .char_ids
        .iter()
        .map(|id| (id.to_string(), json!(rating)))
        .collect();
    json!({
        "product_id": target.product_id, "rating": rating, "summary": "scale test",
        "body": format!("posted under load: {note}"), "recommend": rating >= 3,
        "name": "loader", "email": "loader@example.com", "characteristics": chars,
    })
}

/// A closed loop of `tasks` clients through `url` until `stop` is set: reads of the targets'
/// lists and meta and, when `writes`, one request in five a write (a POST, or a helpful vote on a
/// review this loop posted). Every request is bounded by `HANG`: a hang counts as a failure.
pub async fn closed_loop(
    url: String,
    targets: Vec<Target>,
    tasks: usize,
    writes: bool,
    stop: Arc<AtomicBool>,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    // A connection per request. A client that keeps its connection to NGINX alive can see it
    // closed as it sends the next request when NGINX reloads (the old worker closes its idle
    // connections; HTTP/1.1's keep-alive race, which clients meet by retrying idempotent
    // requests, RFC 9112 9.3.1): one IncompleteMessage in 6,477 requests across the 4 reloads of
    // a rolling restart, measured. The test is about what happens behind NGINX, so it opens a
    // fresh connection each time, which NGINX's new workers accept.
    let http = reqwest::Client::builder()
        .timeout(super::reply::HANG)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (url, targets, stop, tally, http) = (
            url.clone(),
            targets.clone(),
            stop.clone(),
            tally.clone(),
            http.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut n: usize = task;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let target = &targets[n % targets.len()];
                let p = target.product_id;
                let voted = tally.lock().unwrap().acknowledged.last().copied();
                let (method, path, request) = match n % 10 {
                    0 | 5 if writes => (
                        "POST",
                        "/reviews".to_string(),
                        http.post(format!("{url}/reviews")).json(&review_body(
                            target,
                            (n % 5 + 1) as i64,
                            &n.to_string(),
                        )),
                    ),
                    7 if writes && voted.is_some() => {
                        let path = format!("/reviews/{}/helpful", voted.unwrap());
                        ("PUT", path.clone(), http.put(format!("{url}{path}")))
                    }
                    k if k % 2 == 0 => {
                        let path = format!("/reviews/meta?product_id={p}");
                        ("GET", path.clone(), http.get(format!("{url}{path}")))
                    }
                    _ => {
                        let path = format!("/reviews?product_id={p}&sort=newest&count=20");
                        ("GET", path.clone(), http.get(format!("{url}{path}")))
                    }
                };
                let outcome = match request.send().await {
                    Err(e) => Err(format!("socket error: {e:?}")),
                    Ok(response) => {
                        let status = response.status();
                        match response.text().await {
                            Err(e) => Err(format!("{status}, body cut: {e:?}")),
                            Ok(body) if !status.is_success() => Err(format!("{status}: {body}")),
                            Ok(body) => Ok(body),
                        }
                    }
                };
                let mut t = tally.lock().unwrap();
                t.requests += 1;
                match outcome {
                    Err(what) => t.failures.push((method.into(), path, what)),
                    Ok(body) if method == "POST" => {
                        let v: Value = serde_json::from_str(&body).expect("POST answer JSON");
                        t.acknowledged
                            .push(v["review_id"].as_i64().expect("review_id") as i32);
                    }
                    Ok(_) if method == "PUT" => t.helpful.push(voted.unwrap()),
                    Ok(_) => {}
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("load task");
    }
    Arc::try_unwrap(tally)
        .expect("tasks done")
        .into_inner()
        .unwrap()
}

/// The ids of `ids` that are not in the primary's reviews table.
pub async fn missing_reviews(primary_url: &str, ids: &[i32]) -> Vec<i32> {
    let client = reviews_api::db::connect(primary_url)
        .await
        .expect("connect to the primary");
    let rows = client
        .query(
            "SELECT x FROM unnest($1::int[]) AS x WHERE NOT EXISTS (SELECT 1 FROM reviews WHERE id = x)",
            &[&ids],
        )
        .await
        .expect("look the reviews up");
    rows.iter().map(|r| r.get(0)).collect()
}

/// The sum of the helpfulness of `ids` on the primary.
pub async fn helpfulness_of(primary_url: &str, ids: &[i32]) -> i64 {
    let client = reviews_api::db::connect(primary_url)
        .await
        .expect("connect to the primary");
    let row = client
        .query_one(
            "SELECT coalesce(sum(helpfulness), 0)::bigint FROM reviews WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("sum helpfulness");
    row.get(0)
}
