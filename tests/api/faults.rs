//! A database fault is a fast 503, never a hang, and the service recovers by itself.
//!
//! The app reaches PostgreSQL through a TCP proxy the test controls: `Cut` drops every connection
//! and refuses new ones (the database went away), `Hang` holds every byte and answers nothing (a
//! black hole: a dead network path, a frozen server).

use crate::helpers::app::{snapshot, spawn_app, TestApp, TestDb};
use crate::helpers::proxy::{Proxy, ProxyMode};
use crate::helpers::reply::{poll, Reply};
use crate::helpers::seed::{post_review, review_body, seed_product};
use std::time::{Duration, Instant};

const UNAVAILABLE: &str = "Error: service unavailable";
/// docs/api.md: answered within the configured timeout (1 s here), with room for a busy machine.
const FAST: Duration = Duration::from_secs(3);
const RECOVERY: Duration = Duration::from_secs(8);

async fn app_behind(proxy: &Proxy, db: &TestDb) -> TestApp {
    let mut settings = db.settings();
    settings.database.url = proxy.url_for(&db.url);
    settings.database.timeout_ms = 1000;
    settings.cache.enabled = false;
    spawn_app(settings).await
}

async fn timed(answer: impl std::future::Future<Output = Reply>) -> (Reply, Duration) {
    let start = Instant::now();
    let reply = answer.await;
    (reply, start.elapsed())
}

fn assert_fast_503(what: &str, (reply, took): (Reply, Duration)) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, UNAVAILABLE),
        "{what} while the database is unreachable"
    );
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{what}: {}",
        reply.content_type
    );
    assert!(took < FAST, "{what} took {took:?}");
}

/// Polls until /health and `list` answer 200 again; returns how long that took.
async fn recovers(app: &TestApp, list: &str) -> Duration {
    let start = Instant::now();
    let ok = poll(RECOVERY, Duration::from_millis(100), || async {
        app.get_reply("/health").await.status == 200 && app.get_reply(list).await.status == 200
    })
    .await;
    assert!(ok, "no recovery within {RECOVERY:?}");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_is_a_fast_503_and_the_service_recovers() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 100, &["Fit"]).await;
    let proxy = Proxy::start().await;
    let app = app_behind(&proxy, &db).await;
    let review = post_review(&app, &product, 4, true, &[4]).await;
    let list = "/reviews?product_id=100";
    let health = app.get_reply("/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let before = app.get_ok(list).await;
    let meta = app.get_ok("/reviews/meta?product_id=100").await;

    proxy.set(ProxyMode::Cut);
    assert_fast_503("/health", timed(app.get_reply("/health")).await);
    assert_fast_503("list", timed(app.get_reply(list)).await);
    assert_fast_503("meta", timed(app.get_reply("/reviews/100/meta")).await);
    let body = review_body(&product, 1, false, &[1]);
    assert_fast_503("POST", timed(app.post_json("/reviews", &body)).await);
    let helpful = format!("/reviews/{}/helpful", review.review_id);
    assert_fast_503("helpful", timed(app.put(&helpful)).await);
    // Still fast after the pool has been emptied by the failures.
    assert_fast_503("/health again", timed(app.get_reply("/health")).await);

    proxy.set(ProxyMode::Forward);
    recovers(&app, list).await;
    assert_eq!(
        app.get_ok(list).await,
        before,
        "nothing was written during the cut"
    );
    assert_eq!(app.get_ok("/reviews/meta?product_id=100").await, meta);
    // Writes work again too.
    post_review(&app, &product, 2, false, &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_database_is_a_fast_503_not_a_hang() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 101, &["Fit"]).await;
    let proxy = Proxy::start().await;
    let app = app_behind(&proxy, &db).await;
    post_review(&app, &product, 4, true, &[4]).await;
    let list = "/reviews?product_id=101";
    assert_eq!(app.get_reply("/health").await.status, 200);
    let before = app.get_ok(list).await;

    proxy.set(ProxyMode::Hang);
    assert_fast_503("/health", timed(app.get_reply("/health")).await);
    assert_fast_503("list", timed(app.get_reply(list)).await);
    // Several at once: pooled connections stalled mid-query and new ones never answered.
    let many = futures_util::future::join_all((0..4).map(|i| {
        let app = &app;
        async move {
            let path = if i % 2 == 0 { "/health" } else { list };
            timed(app.get_reply(path)).await
        }
    }))
    .await;
    for outcome in many {
        assert_fast_503("concurrent read", outcome);
    }

    proxy.set(ProxyMode::Forward);
    recovers(&app, list).await;
    assert_eq!(app.get_ok(list).await, before);
}

/// A statement that fails on its own terms (here a constraint no row can meet) is a fault of ours,
/// not of an unavailable database: 500 with the generic text, nothing changed, and the service
/// goes on serving.
#[tokio::test]
async fn a_statement_that_fails_on_its_own_terms_is_a_500_and_changes_nothing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 102, &["Fit"]).await;
    let mut settings = db.settings();
    settings.cache.enabled = false;
    let app = spawn_app(settings).await;
    let review = post_review(&app, &product, 4, true, &[4]).await;
    // One statement a query, and triggers allowed: Citus needs both (src/db/script.rs).
    reviews_api::db::run_each(
        &client,
        &["SET citus.enable_unsafe_triggers = on;
           ALTER TABLE reviews ADD CONSTRAINT refuse_all CHECK (false) NOT VALID;
           CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
           CREATE TRIGGER refuse BEFORE UPDATE ON reviews FOR EACH ROW EXECUTE FUNCTION refuse();"],
    )
    .await
    .unwrap();
    let before = snapshot(&client, false).await;

    let body = review_body(&product, 1, false, &[1]);
    let post = app.post_json("/reviews", &body).await;
    let helpful = app
        .put(&format!("/reviews/{}/helpful", review.review_id))
        .await;
    for (what, reply) in [("POST", post), ("helpful", helpful)] {
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (500, "Error: internal server error"),
            "{what}"
        );
        assert!(reply.content_type.starts_with("text/plain"), "{what}");
    }
    // Tables only: a sequence a failed insert drew from is not rolled back.
    assert_eq!(snapshot(&client, false).await, before);
    assert_eq!(app.get_reply("/health").await.status, 200);
    reviews_api::db::run_each(
        &client,
        &["ALTER TABLE reviews DROP CONSTRAINT refuse_all; DROP TRIGGER refuse ON reviews;"],
    )
    .await
    .unwrap();
    post_review(&app, &product, 2, false, &[2]).await;
}

/// `serve` beside a database that is not there yet (a container still starting): it listens at
/// once, /health and the data routes answer a fast 503, and it serves as soon as the database
/// answers, schema applied, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_database_that_is_not_there_yet() {
    let db = TestDb::reserve("late");
    let proxy = Proxy::start().await;
    proxy.set(ProxyMode::Cut);
    let admin = reviews_api::db::connect(&crate::helpers::app::admin_url())
        .await
        .expect("admin connection");
    admin
        .batch_execute(&format!("CREATE DATABASE {}", db.name))
        .await
        .expect("create the database, without its schema");
    let app = app_behind(&proxy, &db).await;
    assert_fast_503("/health", timed(app.get_reply("/health")).await);
    assert_fast_503(
        "meta",
        timed(app.get_reply("/reviews/meta?product_id=5")).await,
    );

    proxy.set(ProxyMode::Forward);
    recovers(&app, "/reviews?product_id=5").await;
    let meta = app.get_ok("/reviews/meta?product_id=5").await;
    assert_eq!(
        meta, r#"{"product_id":"5","ratings":{},"recommended":{},"characteristics":{}}"#,
        "served from the schema it applied once the database answered"
    );
}

/// When the database never answers, `serve` says so once per attempt (WARN), then exits with an
/// error after `database.startup_wait_secs`, naming the database without its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_gives_up_after_the_configured_wait_and_never_prints_the_password() {
    let proxy = Proxy::start().await;
    proxy.set(ProxyMode::Cut);
    let url = format!(
        "postgres://postgres:s3cr3t-pw@127.0.0.1:{}/reviews_never",
        proxy.port
    );
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_reviews-api"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("PORT", "0")
        .env("REVIEWS__DATABASE__STARTUP_WAIT_SECS", "3")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run reviews-api serve");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve exits non-zero:\n{stderr}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "gave up after {took:?}:\n{stderr}"
    );
    let warnings = stderr.matches("does not answer yet (attempt").count();
    assert!(warnings >= 2, "one WARN line per attempt:\n{stderr}");
    let place = format!("127.0.0.1:{}/reviews_never", proxy.port);
    assert!(
        stderr.contains(&format!("{place} did not answer within 3 s")),
        "a clear error naming the database:\n{stderr}"
    );
    assert!(
        !stderr.contains("s3cr3t-pw"),
        "the password leaked:\n{stderr}"
    );
}
