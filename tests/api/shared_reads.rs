//! Reads share their worker's lanes (src/db/shared.rs): many in flight on one connection, each
//! with its own answer, and a lane whose connection hangs is replaced, not reused.

use crate::helpers::app::{spawn_app, TestApp, TestDb};
use crate::helpers::reply::listed_ids;
use crate::helpers::seed::{post_review, seed_product};
use reviews_api::db::sql;
use std::time::{Duration, Instant};

/// One worker with one lane: every read of the app goes through the same connection.
async fn one_lane_app(db: &TestDb) -> TestApp {
    let mut settings = db.settings();
    settings.server.workers = 1;
    settings.database.read_lanes = 1;
    settings.database.pool_size = 4;
    settings.database.timeout_ms = 1000;
    settings.cache.enabled = false;
    spawn_app(settings).await
}

async fn open_connections(app: &TestApp) -> f64 {
    app.metric("reviews_db_pool_connections{state=\"open\"}")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_the_lane_and_each_gets_its_own_answer() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let app = one_lane_app(&db).await;
    let mut expected = Vec::new();
    for product_id in 1..=8 {
        let product = seed_product(&client, product_id, &["Fit"]).await;
        for rating in 1..=product_id.min(5) {
            post_review(&app, &product, rating, rating % 2 == 0, &[rating]).await;
        }
    }
    for product_id in 1..=8 {
        for path in [
            format!("/reviews?product_id={product_id}&sort=newest"),
            format!("/reviews/{product_id}/meta"),
        ] {
            let body = app.get_ok(&path).await;
            expected.push((path, body));
        }
    }
    // The POSTs took one connection at a time, and the lane one (perhaps the same).
    let before = open_connections(&app).await;
    assert!((1.0..=2.0).contains(&before), "{before} connections open");

    let app = &app;
    let replies = futures_util::future::join_all(
        (0..8)
            .flat_map(|_| expected.iter())
            .map(|(path, body)| async move { (app.get_reply(path).await, path, body) }),
    )
    .await;
    for (reply, path, body) in replies {
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(&reply.body, body, "{path} answered another read's document");
    }
    assert_eq!(
        open_connections(app).await,
        before,
        "128 concurrent reads opened connections of their own"
    );
}

/// Stops or resumes PostgreSQL backends (they run on this machine).
fn signal(pids: &[i32], signal: &str) {
    for pid in pids {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// Resumes the stopped backends however the test ends, so the database can be dropped.
struct Resume(Vec<i32>);

impl Drop for Resume {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_lane_is_a_fast_503_and_its_connection_is_never_used_again() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let app = one_lane_app(&db).await;
    let product = seed_product(&client, 7, &["Fit"]).await;
    post_review(&app, &product, 5, true, &[3]).await;
    let meta = app.get_ok("/reviews/7/meta").await;

    // The lane's backend is the one whose last statement is sql/meta.sql. SIGSTOP freezes it
    // with its socket open: a hung server, which the pool's recycling cannot tell from a live one.
    let lane: Vec<i32> = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
            &[&sql::META.sql],
        )
        .await
        .expect("find the lane's backend")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(lane.len(), 1, "one backend ran the meta statement");
    signal(&lane, "-STOP");
    let _resume = Resume(lane);

    let start = Instant::now();
    let reply = app.get_reply("/reviews/7/meta").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "Error: service unavailable")
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // The backend is still frozen. Had its connection gone back to the pool, the pool would
    // hand it to one of these (reads refill the lane from the pool, writes take from it).
    let start = Instant::now();
    assert_eq!(app.get_ok("/reviews/7/meta").await, meta);
    post_review(&app, &product, 4, false, &[2]).await;
    post_review(&app, &product, 3, false, &[1]).await;
    let reply = app.get_reply("/reviews/7/list?count=10").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(listed_ids(&reply.body).len(), 3);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}
