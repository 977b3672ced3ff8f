//! Past one machine: the topology of `deploy/local` (a PostgreSQL primary, streaming replicas,
//! several instances, NGINX in front), started for real on free ports in a temporary folder and
//! stopped by `deploy/local down` when the test ends, passed or not. Needs NGINX
//! (`apt-get install nginx-light`); fails, never skips, without it.

use crate::helpers::deploy::{
    closed_loop, helpfulness_of, missing_reviews, review_body, target, Deployment, Tally, Target,
};
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The generated dataset's size: small, so that `up` takes seconds.
const PRODUCTS: &str = "200";

/// `deploy/local up`'s arguments for the topology of most tests here; no write limit at NGINX,
/// whose loads write far faster than one shopper.
const TWO_INSTANCES_ONE_REPLICA: [&str; 8] = [
    "--instances",
    "2",
    "--replicas",
    "1",
    "--products",
    PRODUCTS,
    "--write-limit",
    "0",
];

/// How soon after a write is acknowledged every instance must show it.
const FRESH: Duration = Duration::from_secs(1);
/// The same through NGINX's microcache: an entry lives at most until the second after it was
/// filled (NGINX counts expiry in whole seconds), and while one request refreshes an expired entry
/// the others still get it (proxy_cache_use_stale updating): 1 s, plus one refresh.
const FRESH_VIA_GATEWAY: Duration = Duration::from_millis(1100);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(crate::helpers::reply::HANG)
        .build()
        .unwrap()
}

/// Product ids 1..=n of the generated dataset, with their characteristic ids.
async fn targets(deployment: &Deployment, n: i32) -> Vec<Target> {
    let http = client();
    let mut out = Vec::new();
    for id in 1..=n {
        out.push(target(&http, &deployment.url, id).await);
    }
    out
}

/// `(status, body)` of a GET.
async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// A product's list (all of it, newest first) and meta, as one instance or NGINX serves them.
async fn view(http: &reqwest::Client, base: &str, product_id: i32) -> (Value, Value) {
    let (s1, list) = get(
        http,
        &format!("{base}/reviews?product_id={product_id}&sort=newest&count=1000"),
    )
    .await;
    let (s2, meta) = get(
        http,
        &format!("{base}/reviews/meta?product_id={product_id}"),
    )
    .await;
    assert_eq!((s1, s2), (200, 200), "{base}: {list} {meta}");
    (
        serde_json::from_str(&list).unwrap(),
        serde_json::from_str(&meta).unwrap(),
    )
}

fn review_in(list: &Value, id: i64) -> Option<&Value> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["review_id"].as_i64() == Some(id))
}

fn rating_count(meta: &Value, rating: &str) -> i64 {
    meta["ratings"][rating]
        .as_str()
        .map_or(0, |s| s.parse().unwrap())
}

/// Every base URL shows `holds` within FRESH of `since` (the last one, NGINX, within
/// FRESH_VIA_GATEWAY), and keeps showing it on every read until
/// the replica has surely applied the write (`since` + 3 s): no client ever reads back in time.
async fn everywhere<F>(
    http: &reqwest::Client,
    bases: &[String],
    product: i32,
    since: Instant,
    what: &str,
    holds: F,
) where
    F: Fn(&Value, &Value) -> bool,
{
    for (i, base) in bases.iter().enumerate() {
        let fresh = if i + 1 == bases.len() {
            FRESH_VIA_GATEWAY
        } else {
            FRESH
        };
        loop {
            let (list, meta) = view(http, base, product).await;
            if holds(&list, &meta) {
                break;
            }
            assert!(
                since.elapsed() < fresh,
                "{what}: {base} still did not show it {:?} after it was acknowledged\nlist {list}\nmeta {meta}",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while since.elapsed() < Duration::from_secs(3) {
        for base in bases {
            let (list, meta) = view(http, base, product).await;
            assert!(
                holds(&list, &meta),
                "{what}: {base} showed it, then no longer ({:?} after)\nlist {list}\nmeta {meta}",
                since.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With the replica applying WAL 2 s late, a write made through one instance is read back within
/// a second from every instance (asked directly) and through NGINX: the new review, its rating in
/// meta, a helpful vote, a report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_read_back_from_every_instance_despite_a_lagging_replica() {
    let deployment = Deployment::up(&[
        "--instances",
        "2",
        "--replicas",
        "1",
        "--replica-delay-ms",
        "2000",
        "--products",
        PRODUCTS,
    ]);
    let http = client();
    let instances = deployment.instance_urls();
    assert_eq!(instances.len(), 2);
    let mut bases = instances.clone();
    bases.push(deployment.url.clone());
    let product = 11;
    let target = target(&http, &deployment.url, product).await;
    let (_, meta_before) = view(&http, &deployment.url, product).await;
    let fives = rating_count(&meta_before, "5");

    // A review, posted through instance 1.
    let posted = http
        .post(format!("{}/reviews", instances[0]))
        .json(&review_body(&target, 5, "read back"))
        .send()
        .await
        .expect("POST");
    let since = Instant::now();
    assert_eq!(posted.status().as_u16(), 201);
    let id = posted.json::<Value>().await.unwrap()["review_id"]
        .as_i64()
        .unwrap();
    everywhere(
        &http,
        &bases,
        product,
        since,
        "a new review",
        |list, meta| review_in(list, id).is_some() && rating_count(meta, "5") == fives + 1,
    )
    .await;

    // A helpful vote, through NGINX.
    let voted = http
        .put(format!("{}/reviews/{id}/helpful", deployment.url))
        .send()
        .await
        .expect("PUT helpful");
    let since = Instant::now();
    assert_eq!(voted.status().as_u16(), 204);
    everywhere(
        &http,
        &bases,
        product,
        since,
        "a helpful vote",
        |list, _| review_in(list, id).is_some_and(|r| r["helpfulness"] == 1),
    )
    .await;

    // A report, through instance 2: the review disappears from the list and from meta.
    let reported = http
        .put(format!("{}/reviews/{id}/report", instances[1]))
        .send()
        .await
        .expect("PUT report");
    let since = Instant::now();
    assert_eq!(reported.status().as_u16(), 204);
    everywhere(&http, &bases, product, since, "a report", |list, meta| {
        review_in(list, id).is_none() && rating_count(meta, "5") == fives
    })
    .await;

    // A load of another dataset through the primary: once it is done, no instance answers from
    // before it, though the replica applies it 2 s late (every product changed at once).
    let other = crate::helpers::app::temp_dir("reload");
    let generate = Command::new(env!("CARGO_BIN_EXE_reviews-api"))
        .args(["generate", "--products", PRODUCTS, "--seed", "9", "--out"])
        .arg(other.path())
        .output()
        .expect("generate");
    assert!(generate.status.success());
    let (before, _) = view(&http, &deployment.url, product).await;
    let load = Command::new(env!("CARGO_BIN_EXE_reviews-api"))
        .arg("load")
        .arg(other.path())
        .arg("--rejects")
        .arg(other.path().join("rejects.csv"))
        .env("DATABASE_URL", deployment.primary_url())
        .output()
        .expect("load");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let since = Instant::now();
    everywhere(&http, &bases, product, since, "a load", |list, _| {
        list != &before
    })
    .await;

    // And the replica does serve reads here (else the above would prove nothing): reads of
    // products nobody wrote to, each new so that no cache answers it, show up in its statistics
    // (flushed about once a second while its sessions are busy).
    let before = deployment.index_scans("replica-1").await;
    let mut next = 100;
    let served =
        crate::helpers::reply::poll(Duration::from_secs(15), Duration::from_millis(100), || {
            next += 1;
            let (http, instances, deployment, p) =
                (&http, &instances, &deployment, 100 + next % 100);
            async move {
                for base in instances {
                    view(http, base, p).await;
                }
                deployment.index_scans("replica-1").await > before
            }
        })
        .await;
    assert!(served, "the lagging replica served no read");
}

fn assert_no_failures(what: &str, tally: &Tally) {
    assert!(tally.requests > 0, "{what}: no request was made");
    assert!(
        tally.failures.is_empty(),
        "{what}: {} of {} requests failed; the first ones: {:#?}",
        tally.failures.len(),
        tally.requests,
        &tally.failures[..tally.failures.len().min(10)]
    );
}

/// Reads keep answering while the only replica, which was serving them, stops at once (pg_ctl
/// stop -m immediate): asked through NGINX and asked of each instance directly, not one non-2xx
/// answer or socket error. The cache is off, so that every read reaches PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_the_replica_stopping() {
    let deployment = Arc::new(Deployment::up_with_env(
        &TWO_INSTANCES_ONE_REPLICA,
        &[("REVIEWS__CACHE__ENABLED", "false")],
    ));
    let targets = targets(&deployment, 20).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut runs = Vec::new();
    let mut bases = deployment.instance_urls();
    bases.push(deployment.url.clone());
    for base in &bases {
        runs.push((
            base.clone(),
            tokio::spawn(closed_loop(
                base.clone(),
                targets.clone(),
                2,
                false,
                stop.clone(),
            )),
        ));
    }
    // The replica serves reads before it stops (its own statistics count them; they reach the
    // statistics within about a second).
    let served = crate::helpers::reply::poll(
        Duration::from_secs(5),
        Duration::from_millis(200),
        || async { deployment.index_scans("replica-1").await > 0 },
    )
    .await;
    assert!(served, "the replica served no read");
    let d = deployment.clone();
    tokio::task::spawn_blocking(move || d.pg_stop("replica-1", true))
        .await
        .unwrap();
    // `status` shows it down at once (not the PID it had, which may linger unreaped).
    let status = String::from_utf8(deployment.run(&["status"]).stdout).unwrap();
    assert!(
        status_of(&status, "replica-1").contains(" no "),
        "status after the replica stopped:\n{status}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for (base, run) in runs {
        let tally = run.await.unwrap();
        assert_no_failures(&format!("reads of {base} with the replica stopped"), &tally);
    }
}

/// The line of part `name` in `deploy/local status`'s output.
fn status_of<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} in status:\n{status}"))
}

/// `down` returns once everything it started has exited (status shows every part down at once),
/// and `up` again with the same options starts again from what the folder holds: the same data,
/// a write made before `down` included, on the same ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_after_down_starts_again_from_what_is_there() {
    let args = [
        "--instances",
        "1",
        "--replicas",
        "1",
        "--products",
        PRODUCTS,
    ];
    let deployment = Deployment::up(&args);
    let http = client();
    let voted = http
        .put(format!("{}/reviews/3/helpful", deployment.url))
        .send()
        .await
        .expect("PUT helpful");
    assert_eq!(voted.status().as_u16(), 204);
    let (before, _) = view(
        &http,
        &deployment.url,
        product_of_review(&deployment, 3).await,
    )
    .await;
    let ports: Vec<u16> = deployment.parts().iter().map(|p| p.port).collect();

    deployment.run(&["down"]);
    let status = String::from_utf8(deployment.run(&["status"]).stdout).unwrap();
    for part in deployment.parts() {
        assert!(
            status_of(&status, &part.name).contains(" no "),
            "{} alive right after down:\n{status}",
            part.name
        );
    }

    let mut again = vec!["up"];
    again.extend(args);
    let out = deployment.run(&again);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), deployment.url);
    let (after, _) = view(
        &http,
        &deployment.url,
        product_of_review(&deployment, 3).await,
    )
    .await;
    assert_eq!(after, before, "the data as it was, the vote included");
    let ports_again: Vec<u16> = deployment.parts().iter().map(|p| p.port).collect();
    assert_eq!(ports_again, ports);
    let status = String::from_utf8(deployment.run(&["status"]).stdout).unwrap();
    assert_eq!(status.matches(" yes ").count(), ports.len(), "{status}");
}

async fn product_of_review(deployment: &Deployment, review: i32) -> i32 {
    let client = reviews_api::db::connect(&deployment.primary_url())
        .await
        .expect("connect");
    client
        .query_one("SELECT product_id FROM reviews WHERE id = $1", &[&review])
        .await
        .expect("the review")
        .get(0)
}

/// `deploy/local up --shards 2`: a Citus coordinator and two workers behind the instances and
/// NGINX serve the same bytes as plain PostgreSQL for the same data; a review posted through
/// NGINX shows in every instance's reads within a second; a stopped worker turns only its own
/// products into 503s, and they answer again by themselves once it is back; verify is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_behind_nginx_answers_like_plain_postgresql() {
    let citus = Deployment::up(&["--shards", "2", "--instances", "2", "--products", PRODUCTS]);
    let plain = Deployment::up(&[
        "--instances",
        "1",
        "--replicas",
        "0",
        "--products",
        PRODUCTS,
    ]);
    let http = client();
    let status = String::from_utf8(citus.run(&["status"]).stdout).unwrap();
    for node in ["coordinator", "worker-1", "worker-2"] {
        assert!(status_of(&status, node).contains(" yes "), "{status}");
    }
    assert!(
        status_of(&status, "worker-1").contains("shards "),
        "{status}"
    );

    for product in 1..=25 {
        for path in [
            format!("/reviews/meta?product_id={product}"),
            format!("/reviews?product_id={product}&sort=newest&count=50"),
            format!("/reviews?product_id={product}&sort=helpful&page=2&count=3"),
            format!("/reviews/{product}/list"),
        ] {
            let a = get(&http, &format!("{}{path}", plain.url)).await;
            let b = get(&http, &format!("{}{path}", citus.url)).await;
            assert_eq!(b, a, "{path}");
        }
    }

    // A review posted through NGINX, read back from every instance and through NGINX.
    let product = 11;
    let target = target(&http, &citus.url, product).await;
    let posted = http
        .post(format!("{}/reviews", citus.url))
        .json(&review_body(&target, 5, "on citus"))
        .send()
        .await
        .expect("POST");
    let since = Instant::now();
    assert_eq!(posted.status().as_u16(), 201);
    let id = posted.json::<Value>().await.unwrap()["review_id"]
        .as_i64()
        .unwrap();
    let mut bases = citus.instance_urls();
    bases.push(citus.url.clone());
    everywhere(
        &http,
        &bases,
        product,
        since,
        "a review on Citus",
        |list, _| review_in(list, id).is_some(),
    )
    .await;

    // Worker 1 stops: its products answer 503, worker 2's 200; then it is back.
    let coordinator = reviews_api::db::connect(&citus.primary_url())
        .await
        .unwrap();
    let held = |node: &'static str| {
        let (coordinator, citus) = (&coordinator, &citus);
        async move {
            let port = i32::from(citus.part(node).port);
            coordinator
                .query(
                    "SELECT m.product_id FROM product_meta m
                      JOIN pg_dist_placement p
                        ON p.shardid = get_shard_id_for_distribution_column('product_meta', m.product_id)
                      JOIN pg_dist_node n ON n.groupid = p.groupid
                     WHERE n.nodeport = $1 AND m.product_id <= 100 ORDER BY 1 LIMIT 5",
                    &[&port],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<i32>>()
        }
    };
    let (down, up) = (held("worker-1").await, held("worker-2").await);
    assert!(!down.is_empty() && !up.is_empty());
    citus.pg_stop("worker-1", true);
    // Pages never asked for before: no instance has them in its cache.
    let fresh = |product: i32, page: u32| {
        format!(
            "{}/reviews?product_id={product}&count=9&page={page}",
            citus.url
        )
    };
    for product in &down {
        let (status, _) = get(&http, &fresh(*product, 2)).await;
        assert_eq!(status, 503, "product {product} of the stopped worker");
    }
    for product in &up {
        let (status, body) = get(&http, &fresh(*product, 2)).await;
        assert_eq!(status, 200, "product {product} of the other worker: {body}");
    }
    citus.pg_start("worker-1");
    let mut page = 2;
    let back =
        crate::helpers::reply::poll(Duration::from_secs(15), Duration::from_millis(200), || {
            page += 1;
            let (http, down, fresh) = (&http, &down, &fresh);
            async move {
                let mut all = true;
                for product in down {
                    all &= get(http, &fresh(*product, page)).await.0 == 200;
                }
                all
            }
        })
        .await;
    assert!(back, "the stopped worker's products did not answer again");
    citus.verify();
}

/// A closed-loop load of reads and writes through NGINX during a rolling restart of every
/// instance: no socket error, no non-2xx answer, every acknowledged review and vote on the
/// primary, and `verify` passes. Then an instance is SIGKILLed under load: no GET fails (NGINX
/// passes them on), and no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_request_and_a_killed_instance_no_read() {
    let deployment = Arc::new(Deployment::up(&TWO_INSTANCES_ONE_REPLICA));
    let targets = targets(&deployment, 20).await;

    // The rolling restart, under load from the first moment to a second past its end.
    let (stop, load) = reads_and_writes(&deployment, &targets);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids_before: Vec<String> = instance_pids(&deployment);
    let started = Instant::now();
    deployment.run_async(&["restart"]).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.unwrap();
    let pids_after = instance_pids(&deployment);
    for (before, after) in pids_before.iter().zip(&pids_after) {
        assert_ne!(
            before, after,
            "every instance is a new process after the restart"
        );
    }
    assert_no_failures(&format!("load during a rolling restart ({took:?})"), &tally);
    assert!(
        !tally.acknowledged.is_empty(),
        "no POST was made during the restart"
    );
    let primary = deployment.primary_url();
    let missing = missing_reviews(&primary, &tally.acknowledged).await;
    assert!(
        missing.is_empty(),
        "acknowledged reviews missing: {missing:?}"
    );
    assert_eq!(
        helpfulness_of(&primary, &tally.acknowledged).await,
        tally.helpful.len() as i64,
        "every acknowledged helpful vote counted once"
    );
    let d = deployment.clone();
    tokio::task::spawn_blocking(move || d.verify())
        .await
        .unwrap();

    // The failure drill: instance 1 SIGKILLed under load.
    let (stop, load) = reads_and_writes(&deployment, &targets);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    deployment.run_async(&["kill", "1"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = load.await.unwrap();
    assert!(tally.requests > 0);
    let failed_gets = tally.failed("GET");
    assert!(
        failed_gets.is_empty(),
        "{} GETs failed with an instance killed: {:#?}",
        failed_gets.len(),
        &failed_gets[..failed_gets.len().min(10)]
    );
    let missing = missing_reviews(&primary, &tally.acknowledged).await;
    assert!(missing.is_empty(), "acknowledged reviews lost: {missing:?}");
    // A vote that failed may still have counted (the instance died after committing it), never
    // the other way round.
    assert!(helpfulness_of(&primary, &tally.acknowledged).await >= tally.helpful.len() as i64);
    deployment.run_async(&["start", "1"]).await;
    let d = deployment.clone();
    tokio::task::spawn_blocking(move || d.verify())
        .await
        .unwrap();
}

/// Four clients of reads and writes through NGINX, until the flag is set.
fn reads_and_writes(
    deployment: &Deployment,
    targets: &[Target],
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Tally>) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(closed_loop(
        deployment.url.clone(),
        targets.to_vec(),
        4,
        true,
        stop.clone(),
    ));
    (stop, load)
}

fn instance_pids(deployment: &Deployment) -> Vec<String> {
    deployment
        .parts()
        .into_iter()
        .filter(|p| p.kind == "instance")
        .map(|p| p.pid)
        .collect()
}

/// One client of the read-your-writes test: what it last sent back, and how it sends it.
struct Writer {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    /// As a browser does (the cookie) or as an API client does (the header).
    by_cookie: bool,
}

impl Writer {
    fn with_token(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.token, self.by_cookie) {
            (Some(t), true) => request.header("cookie", format!("reviews_token={t}")),
            (Some(t), false) => request.header("x-consistency-token", t),
            (None, _) => request,
        }
    }

    /// A write; keeps the token it answers; returns (status, body, the instance that served it).
    async fn write(&mut self, request: reqwest::RequestBuilder) -> (u16, String, String) {
        let response = self.with_token(request).send().await.expect("write");
        let status = response.status().as_u16();
        let served = served_by(response.headers());
        if let Some(token) = response.headers().get("x-consistency-token") {
            self.token = Some(token.to_str().unwrap().to_string());
        }
        (status, response.text().await.unwrap(), served)
    }

    /// A read through NGINX that lands on another instance than `not`, asked at once.
    async fn read_elsewhere(&self, path: &str, not: &str, token: bool) -> Value {
        for _ in 0..20 {
            let request = self.http.get(format!("{}{path}", self.url));
            let request = if token {
                self.with_token(request)
            } else {
                request
            };
            let response = request.send().await.expect("read");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            // A microcache HIT names no instance: it did not come from the writer's.
            let served = served_by(response.headers());
            if not.is_empty() || served != not {
                return response.json().await.unwrap();
            }
        }
        panic!("{path}: NGINX kept sending the read to the writer's instance {not}")
    }
}

fn served_by(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn meta_total(meta: &Value) -> i64 {
    ["1", "2", "3", "4", "5"]
        .iter()
        .map(|r| rating_count(meta, r))
        .sum()
}

/// 3 instances, 2 replicas applying WAL 1.5 s late, cache on, through NGINX: 200 rounds of each
/// write (POST, helpful, report), each read back at once, on another instance than the write's,
/// in list (newest and relevant) and meta: the client that sends its token back (as a cookie or
/// as a header) never reads its old data; a client without the token sees each write within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_reads_its_own_writes_at_once_through_any_instance() {
    let deployment = Deployment::up(&[
        "--instances",
        "3",
        "--replicas",
        "2",
        "--replica-delay-ms",
        "1500",
        "--products",
        PRODUCTS,
        "--write-limit",
        "0",
    ]);
    let http = client();
    let targets = targets(&deployment, 10).await;
    let mut writer = Writer {
        http: http.clone(),
        url: deployment.url.clone(),
        token: None,
        by_cookie: false,
    };
    let (mut stale_with_token, mut stale_without, mut slowest) = (0, 0, Duration::ZERO);
    let mut posted: Vec<(i32, i64, i64)> = Vec::new(); // (product, review, helpfulness)
    const ROUNDS: usize = 200;
    for kind in ["post", "helpful", "report"] {
        for round in 0..ROUNDS {
            writer.by_cookie = round % 2 == 1;
            let (product, review, helpfulness) = match kind {
                "post" => (targets[round % targets.len()].product_id, 0, 0),
                _ => posted[round],
            };
            let newest = format!("/reviews?product_id={product}&sort=newest&count=1000");
            let relevant = format!("/reviews?product_id={product}&count=1000");
            let meta_path = format!("/reviews/meta?product_id={product}");
            let total_before = meta_total(&writer.read_elsewhere(&meta_path, "", true).await);
            let (status, body, served) = match kind {
                "post" => {
                    let target = &targets[round % targets.len()];
                    let request = http
                        .post(format!("{}/reviews", deployment.url))
                        .json(&review_body(target, 5, &format!("round {round}")));
                    writer.write(request).await
                }
                _ => {
                    let request = http.put(format!("{}/reviews/{review}/{kind}", deployment.url));
                    writer.write(request).await
                }
            };
            let since = Instant::now();
            assert!((200..300).contains(&status), "{kind}: {status} {body}");
            let review = match kind {
                "post" => serde_json::from_str::<Value>(&body).unwrap()["review_id"]
                    .as_i64()
                    .unwrap(),
                _ => review,
            };
            let fresh = |list: &Value, other: &Value, meta: &Value| -> bool {
                match kind {
                    "post" => {
                        review_in(list, review).is_some()
                            && review_in(other, review).is_some()
                            && meta_total(meta) == total_before + 1
                    }
                    "helpful" => [list, other].iter().all(|l| {
                        review_in(l, review)
                            .is_some_and(|r| r["helpfulness"].as_i64() == Some(helpfulness + 1))
                    }),
                    _ => {
                        review_in(list, review).is_none()
                            && review_in(other, review).is_none()
                            && meta_total(meta) == total_before - 1
                    }
                }
            };
            // The writer and someone else, both at once (at the same moment), each on another
            // instance than the write's; then the other again until it shows.
            let reads = |token: bool| {
                let (writer, newest, relevant, meta_path, served) =
                    (&writer, &newest, &relevant, &meta_path, &served);
                async move {
                    (
                        writer.read_elsewhere(newest, served, token).await,
                        writer.read_elsewhere(relevant, served, token).await,
                        writer.read_elsewhere(meta_path, served, token).await,
                    )
                }
            };
            let ((list, other, meta), mut theirs) = tokio::join!(reads(true), reads(false));
            if !fresh(&list, &other, &meta) {
                stale_with_token += 1;
                eprintln!("{kind} round {round}: stale for the writer\n{list}\n{meta}");
            }
            loop {
                if fresh(&theirs.0, &theirs.1, &theirs.2) {
                    slowest = slowest.max(since.elapsed());
                    break;
                }
                stale_without += 1;
                assert!(
                    since.elapsed() < FRESH_VIA_GATEWAY,
                    "{kind} round {round}: a client without the token still did not see it {:?} after",
                    since.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                theirs = reads(false).await;
            }
            match kind {
                "post" => posted.push((product, review, 0)),
                "helpful" => posted[round].2 += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "{} rounds: {stale_with_token} stale reads with the token; without it {stale_without} \
         stale reads before it showed, the slowest after {slowest:?}",
        3 * ROUNDS
    );
    assert_eq!(stale_with_token, 0, "the writer read its old data");
    deployment.verify();
}

/// NGINX's write limit (deploy/local's default, 10 a second with bursts of 20): a burst of votes
/// from one address gets 429s with Retry-After in docs/api.md's shape, reads and another address
/// are unaffected, and the refused votes left no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_gateway_limit_get_429_and_leave_no_trace() {
    let deployment = Deployment::up(&[
        "--instances",
        "1",
        "--replicas",
        "0",
        "--products",
        PRODUCTS,
    ]);
    let http = client();
    let other_address = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let review = 7;
    let vote = |http: &reqwest::Client| {
        http.put(format!("{}/reviews/{review}/helpful", deployment.url))
            .send()
    };
    let before = helpfulness_of(&deployment.primary_url(), &[review]).await;
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..60 {
        let response = vote(&http).await.unwrap();
        match response.status().as_u16() {
            204 => accepted += 1,
            429 => {
                refused += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                assert!(response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"));
                assert_eq!(response.text().await.unwrap(), "Error: too many requests");
            }
            other => panic!("a vote answered {other}"),
        }
    }
    assert!(
        refused > 0 && accepted >= 20,
        "{accepted} accepted, {refused} refused"
    );
    // Reads from the same address, and a vote from another, are not limited.
    for _ in 0..30 {
        let (status, _) = get(
            &http,
            &format!("{}/reviews/meta?product_id=1", deployment.url),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(vote(&other_address).await.unwrap().status().as_u16(), 204);
    accepted += 1;
    // /metrics stays inside.
    let (status, body) = get(&http, &format!("{}/metrics", deployment.url)).await;
    assert_eq!((status, body.as_str()), (404, "Error: not found"));
    let after = helpfulness_of(&deployment.primary_url(), &[review]).await;
    assert_eq!(after - before, accepted, "only the accepted votes counted");
    deployment.verify();
}

/// NGINX's microcache answers a hot product's reads without the instances: of many reads of one
/// URI over a second or two, about one a second reaches an instance; turned off (`deploy/local
/// microcache off`, a reload), every read does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microcache_keeps_a_hot_products_reads_off_the_instances() {
    let deployment = Deployment::up(&[
        "--instances",
        "2",
        "--replicas",
        "0",
        "--products",
        PRODUCTS,
    ]);
    let http = client();
    let url = format!("{}/reviews?product_id=3&sort=helpful", deployment.url);
    // Answers the instances gave, all classes, by their own /metrics (each of these reads of
    // /metrics counts one more per instance).
    let answered = || async {
        let mut total = 0.0;
        for instance in deployment.instance_urls() {
            let (_, text) = get(&http, &format!("{instance}/metrics")).await;
            total += text
                .lines()
                .filter_map(|l| l.strip_prefix("reviews_http_responses_total{class=\""))
                .filter_map(|l| l.split_once("\"} "))
                .map(|(_, v)| v.parse::<f64>().unwrap())
                .sum::<f64>();
        }
        total as i64
    };
    const READS: i64 = 400;
    // READS reads of `url`, 20 at a time: (how many NGINX answered from its cache, seconds taken).
    let burst = || async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (http, url) = (http.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut hits = 0;
                for _ in 0..READS / 20 {
                    let response = http.get(&url).send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    // HIT, or UPDATING: the expired entry, while one request refreshes it.
                    let status = response.headers().get("x-cache").map(|v| v.as_bytes());
                    if matches!(status, Some(b"HIT" | b"UPDATING")) {
                        hits += 1;
                    }
                    response.bytes().await.unwrap();
                }
                hits
            }));
        }
        let mut hits = 0;
        for task in tasks {
            hits += task.await.unwrap();
        }
        (hits, started.elapsed().as_secs_f64())
    };
    let instances = deployment.instance_urls().len() as i64;

    let before = answered().await;
    let (hits, seconds) = burst().await;
    let reached = answered().await - before - instances;
    // One fill per second begun (and one refresh racing an expiry), nothing more.
    let bound = seconds.ceil() as i64 + 2;
    assert!(
        reached <= bound,
        "{reached} of {READS} reads reached the instances in {seconds:.1} s (at most {bound})"
    );
    assert!(
        hits >= READS - bound,
        "{hits} of {READS} were microcache hits"
    );

    deployment.run(&["microcache", "off"]);
    let before = answered().await;
    let (hits, _) = burst().await;
    let reached = answered().await - before - instances;
    assert_eq!((reached, hits), (READS, 0), "without the microcache");
}
