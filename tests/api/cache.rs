//! Hot ids from memory, never stale: the body cache serves repeated reads, and a write through
//! any instance retires every instance's copy within a second (its own at once, the others' by
//! NOTIFY), also across a lost listener connection and while reads race the writes.

use crate::helpers::app::{spawn_app, TestApp, TestDb};
use crate::helpers::proxy::{Proxy, ProxyMode};
use crate::helpers::reply::poll;
use crate::helpers::seed::{expected_meta, post_review, seed_product};
use futures_util::future::join_all;
use reviews_api::coherence::LISTENER_APPLICATION_NAME;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long another instance may keep answering the old body after a write (docs/api.md's promise
/// is "never stale"; NOTIFY needs a moment to travel).
const PROPAGATION: Duration = Duration::from_secs(1);
const LISTEN_WAIT: Duration = Duration::from_secs(8);

async fn app(db: &TestDb, cache: bool) -> TestApp {
    let mut settings = db.settings();
    settings.cache.enabled = cache;
    spawn_app(settings).await
}

/// Two caching instances, both listening, and an uncached one: what the database holds.
async fn two_instances_and_truth(db: &TestDb) -> (TestApp, TestApp, TestApp) {
    let (a, b, truth) = (
        app(db, true).await,
        app(db, true).await,
        app(db, false).await,
    );
    assert!(a.wait_listening(true, LISTEN_WAIT).await);
    assert!(b.wait_listening(true, LISTEN_WAIT).await);
    (a, b, truth)
}

/// The documents of one product the tests watch: three list orders and meta.
fn documents(product_id: i32) -> Vec<String> {
    vec![
        format!("/reviews?product_id={product_id}"),
        format!("/reviews?product_id={product_id}&sort=helpful&count=100"),
        format!("/reviews/{product_id}/list?sort=newest"),
        format!("/reviews/meta?product_id={product_id}"),
    ]
}

async fn bodies(app: &TestApp, paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        out.push(app.get_ok(path).await);
    }
    out
}

/// Reads every document on each instance until one whole round is answered from memory (the
/// NOTIFY of an earlier write may still retire the first copies): each is then cached.
async fn warm(apps: &[&TestApp], paths: &[String]) {
    for app in apps {
        let all_hits = poll(
            Duration::from_secs(2),
            Duration::from_millis(20),
            || async {
                let before = app.metric("reviews_cache_hits_total").await;
                bodies(app, paths).await;
                app.metric("reviews_cache_hits_total").await - before == paths.len() as f64
            },
        )
        .await;
        assert!(
            all_hits,
            "{}: reads are not answered from memory",
            app.address
        );
    }
}

/// Polls `app` until it answers `expected` for every path, by `deadline`.
async fn converges(app: &TestApp, paths: &[String], expected: &[String], deadline: Instant) {
    loop {
        // Only a read begun after the deadline must be fresh: on a loaded machine the reads
        // themselves can take a good part of the second.
        let started = Instant::now();
        let now = bodies(app, paths).await;
        if now == expected {
            return;
        }
        if started >= deadline {
            for ((path, got), want) in paths.iter().zip(&now).zip(expected) {
                assert_eq!(got, want, "{} still stale at {path}", app.address);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a write through `writer` that finished at `done`: the writer answers the truth (an
/// instance without cache) at once, the documents in `changed` differ from `old`, and `other`
/// answers the same within [`PROPAGATION`].
async fn check_write(
    writer: &TestApp,
    other: &TestApp,
    truth: &TestApp,
    paths: &[String],
    old: &[String],
    changed: &[bool],
    done: Instant,
) -> Vec<String> {
    // The writer first, straight after its answer: its own copies are retired before it
    // answers, not only when its own NOTIFY comes back.
    let written = bodies(writer, paths).await;
    let expected = bodies(truth, paths).await;
    for (i, path) in paths.iter().enumerate() {
        if changed[i] {
            assert_ne!(expected[i], old[i], "the write did not change {path}");
        }
    }
    assert_eq!(written, expected, "the writing instance");
    converges(other, paths, &expected, done + PROPAGATION).await;
    expected
}

async fn listener_pids(client: &tokio_postgres::Client) -> Vec<i32> {
    listeners(client, "pid").await
}

/// Terminates every listener connection of this test's database; returns their pids.
async fn kill_listeners(client: &tokio_postgres::Client) -> Vec<i32> {
    listeners(client, "pid, pg_terminate_backend(pid)").await
}

/// `SELECT columns` over the listener connections of this test's database, by pid; the first
/// column is the pid.
async fn listeners(client: &tokio_postgres::Client, columns: &str) -> Vec<i32> {
    let sql = format!(
        "SELECT {columns} FROM pg_stat_activity
          WHERE application_name = $1 AND datname = current_database() ORDER BY pid"
    );
    client
        .query(&sql, &[&LISTENER_APPLICATION_NAME])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_reads_are_answered_from_memory_only_when_the_cache_is_on() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 80, &["Fit"]).await;
    let cached = app(&db, true).await;
    let uncached = app(&db, false).await;
    assert!(cached.wait_listening(true, LISTEN_WAIT).await);
    post_review(&uncached, &product, 4, true, &[3]).await;
    let paths = documents(80);
    let truth = bodies(&uncached, &paths).await;

    let hits = cached.metric("reviews_cache_hits_total").await;
    for _ in 0..5 {
        assert_eq!(bodies(&cached, &paths).await, truth);
    }
    // 5 rounds of 4 documents: at most one miss per document (plus one more if the NOTIFY of
    // the POST lands mid-way) leaves at least 12 hits.
    let gained = cached.metric("reviews_cache_hits_total").await - hits;
    assert!(gained >= 12.0, "hits rose by {gained}");

    for _ in 0..5 {
        assert_eq!(bodies(&uncached, &paths).await, truth);
    }
    assert_eq!(uncached.metric("reviews_cache_hits_total").await, 0.0);
    assert_eq!(uncached.metric("reviews_cache_entries").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_reaches_the_other_within_a_second() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 90, &["Fit", "Length"]).await;
    let (a, b, truth) = two_instances_and_truth(&db).await;
    let r1 = post_review(&a, &product, 5, true, &[4, 2]).await;
    let paths = documents(90);

    warm(&[&a, &b], &paths).await;
    let old = bodies(&b, &paths).await;
    let r2 = post_review(&a, &product, 2, false, &[1, 5]).await;
    let old = check_write(&a, &b, &truth, &paths, &old, &[true; 4], Instant::now()).await;

    warm(&[&a, &b], &paths).await;
    let reply = a.put(&format!("/reviews/{}/helpful", r1.review_id)).await;
    assert_eq!(reply.status, 204);
    let done = Instant::now();
    let lists = [true, true, true, false];
    let old = check_write(&a, &b, &truth, &paths, &old, &lists, done).await;

    warm(&[&a, &b], &paths).await;
    let reply = a.put(&format!("/reviews/report/{}", r2.review_id)).await;
    assert_eq!(reply.status, 204);
    let done = Instant::now();
    let last = check_write(&a, &b, &truth, &paths, &old, &[true; 4], done).await;
    assert_eq!(last[3], expected_meta(&product, &[r1]).await);

    // And the other way round: B writes, A follows.
    warm(&[&a, &b], &paths).await;
    post_review(&b, &product, 3, true, &[3, 3]).await;
    check_write(&b, &a, &truth, &paths, &last, &[true; 4], Instant::now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_listener_is_killed_an_instance_reconnects_and_stays_coherent() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 91, &["Fit"]).await;
    let (a, b, truth) = two_instances_and_truth(&db).await;
    post_review(&a, &product, 4, true, &[4]).await;
    let paths = documents(91);
    warm(&[&a, &b], &paths).await;

    let killed = kill_listeners(&client).await;
    assert_eq!(killed.len(), 2, "one listener per instance: {killed:?}");
    // Back when two new listener connections exist and both instances say they listen (the
    // flag drops before a new connection is made, so a 1 here is the new connection's).
    let back = poll(LISTEN_WAIT, Duration::from_millis(50), || async {
        let pids = listener_pids(&client).await;
        pids.len() == 2
            && pids.iter().all(|p| !killed.contains(p))
            && a.metric("reviews_cache_listening").await == 1.0
            && b.metric("reviews_cache_listening").await == 1.0
    })
    .await;
    assert!(
        back,
        "listeners did not reconnect: {:?}",
        listener_pids(&client).await
    );

    warm(&[&a, &b], &paths).await;
    let old = bodies(&b, &paths).await;
    post_review(&a, &product, 1, false, &[2]).await;
    check_write(&a, &b, &truth, &paths, &old, &[true; 4], Instant::now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_while_not_listening_is_never_served_stale() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 92, &["Fit", "Width"]).await;
    // B reaches the database through a proxy that can refuse new connections while B's pooled
    // connections keep working: B's listener, once killed, stays down until the proxy allows.
    let proxy = Proxy::start().await;
    let a = app(&db, true).await;
    let mut settings = db.settings();
    settings.database.url = proxy.url_for(&db.url);
    let b = spawn_app(settings).await;
    let truth = app(&db, false).await;
    assert!(a.wait_listening(true, LISTEN_WAIT).await);
    assert!(b.wait_listening(true, LISTEN_WAIT).await);
    post_review(&a, &product, 4, true, &[4, 4]).await;
    let paths = documents(92);
    warm(&[&a, &b], &paths).await;
    let old = bodies(&b, &paths).await;

    proxy.set(ProxyMode::RefuseNew);
    assert_eq!(kill_listeners(&client).await.len(), 2);
    assert!(
        b.wait_listening(false, Duration::from_secs(3)).await,
        "B did not notice that its listener is gone"
    );
    post_review(&a, &product, 2, false, &[1, 3]).await;
    let expected = bodies(&truth, &paths).await;
    for (path, (new, old)) in paths.iter().zip(expected.iter().zip(&old)) {
        assert_ne!(new, old, "the write did not change {path}");
    }
    // Not listening, B does not trust its memory.
    assert_eq!(bodies(&b, &paths).await, expected, "B while not listening");

    proxy.set(ProxyMode::Forward);
    assert!(
        b.wait_listening(true, LISTEN_WAIT).await,
        "B's listener did not come back"
    );
    for _ in 0..3 {
        assert_eq!(
            bodies(&b, &paths).await,
            expected,
            "B after listening again"
        );
    }
    // And it hears writes again.
    warm(&[&b], &paths).await;
    post_review(&a, &product, 5, true, &[5, 5]).await;
    check_write(
        &a,
        &b,
        &truth,
        &paths,
        &expected,
        &[true; 4],
        Instant::now(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_writes_on_two_instances_end_at_the_final_state() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 93, &["Fit", "Length"]).await;
    let (a, b, truth) = two_instances_and_truth(&db).await;
    let mut posted = Vec::new();
    for i in 0..3 {
        posted.push(post_review(&truth, &product, i + 2, i % 2 == 0, &[i + 1, 3]).await);
    }
    let paths = documents(93);
    let instances = [&a, &b];
    let stop = &AtomicBool::new(false);

    let readers = join_all(instances.iter().flat_map(|app| {
        let app: &TestApp = app;
        paths.iter().map(move |path| async move {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                app.get_ok(path).await;
                reads += 1;
            }
            reads
        })
    }));
    let voted: Vec<i32> = posted.iter().map(|p| p.review_id).collect();
    let writers = async {
        let posters = (0..2).map(|w: i32| {
            let (product, instances) = (&product, &instances);
            async move {
                let mut mine = Vec::new();
                for i in 0..8 {
                    let via = instances[(w + i) as usize % 2];
                    let rating = (w * 8 + i) % 5 + 1;
                    mine.push(
                        post_review(via, product, rating, i % 3 != 0, &[rating, 5 - i % 5]).await,
                    );
                }
                mine
            }
        });
        let voters = (0..2).map(|w: usize| {
            let (voted, instances) = (&voted, &instances);
            async move {
                for i in 0..15 {
                    let id = voted[(w + i) % voted.len()];
                    let reply = instances[(w + i) % 2]
                        .put(&format!("/reviews/{id}/helpful"))
                        .await;
                    assert_eq!(reply.status, 204);
                }
            }
        });
        let (mine, _) = futures_util::future::join(join_all(posters), join_all(voters)).await;
        stop.store(true, Ordering::Relaxed);
        mine
    };
    let (reads, mine) = futures_util::future::join(readers, writers).await;
    let done = Instant::now();
    assert!(reads.iter().all(|n| *n > 0), "every reader read: {reads:?}");
    posted.extend(mine.into_iter().flatten());
    assert_eq!(posted.len(), 19);

    let expected = bodies(&truth, &paths).await;
    assert_eq!(expected[3], expected_meta(&product, &posted).await);
    for app in instances {
        converges(app, &paths, &expected, done + PROPAGATION).await;
        // Settled, not passing by.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(bodies(app, &paths).await, expected);
    }
}

/// An instance whose database path goes silent (a black hole: a frozen server, a dead path
/// behind a proxy that still answers TCP keepalives) cannot hear other instances' writes, so it
/// must stop answering from memory within a few seconds: a 503 or the fresh body, never the old
/// body for as long as the silence lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_database_goes_silent_stops_answering_from_memory() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 94, &["Fit"]).await;
    let proxy = Proxy::start().await;
    let a = app(&db, true).await;
    let mut settings = db.settings();
    settings.database.url = proxy.url_for(&db.url);
    settings.database.timeout_ms = 1000;
    let b = spawn_app(settings).await;
    assert!(b.wait_listening(true, LISTEN_WAIT).await);
    post_review(&a, &product, 4, true, &[4]).await;
    let meta = "/reviews/meta?product_id=94".to_string();
    warm(&[&b], std::slice::from_ref(&meta)).await;
    let old = b.get_ok(&meta).await;

    proxy.set(ProxyMode::Hang);
    post_review(&a, &product, 1, false, &[1]).await;
    let new = a.get_ok(&meta).await;
    assert_ne!(new, old);
    let last = std::sync::Mutex::new(None);
    let moved_on = poll(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let reply = b.get_reply(&meta).await;
            let ok = reply.body != old
                && ((reply.status, reply.body.as_str()) == (503, "Error: service unavailable")
                    || (reply.status == 200 && reply.body == new));
            *last.lock().unwrap() = Some(reply);
            ok
        },
    )
    .await;
    assert!(
        moved_on,
        "5 s into the silence B still answers its old body: {:?}",
        last.lock().unwrap()
    );

    proxy.set(ProxyMode::Forward);
    converges(
        &b,
        std::slice::from_ref(&meta),
        std::slice::from_ref(&new),
        Instant::now() + Duration::from_secs(5),
    )
    .await;
}
