//! Past one primary: the service on Citus (a coordinator and two workers, sharded by product)
//! answers the same bytes as on plain PostgreSQL for the same data, before and after a burst of
//! concurrent writes; every read is one task on one node; a stopped worker turns only its own
//! products into fast 503s, and everything recovers by itself.
//!
//! These tests use both topologies whatever TEST_TOPOLOGY says (helpers/topology.rs).

use crate::helpers::app::{spawn_app, temp_dir, TestApp, TestDb};
use crate::helpers::proxy::{Proxy, ProxyMode};
use crate::helpers::reply::{poll, Reply};
use crate::helpers::topology;
use futures_util::future::join_all;
use reviews_api::etl::generate::{self, GenerateArgs};
use reviews_api::etl::load::{self, LoadArgs};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A generated dataset in the real CSV format, written once per test.
fn generated(dir: &Path, products: u32) {
    generate::run(&GenerateArgs {
        products,
        seed: 7,
        out: Some(dir.to_path_buf()),
        list_files: false,
    })
    .expect("generate");
}

async fn load_into(db: &TestDb, dir: &Path) {
    load::run(
        &db.settings(),
        &LoadArgs {
            dir: dir.to_path_buf(),
            rejects: Some(dir.join(format!("rejects-{}.csv", db.name))),
        },
    )
    .await
    .expect("load");
}

async fn app_without_cache(db: &TestDb) -> TestApp {
    let mut settings = db.settings();
    settings.cache.enabled = false;
    spawn_app(settings).await
}

/// Every route's GET for `product`: each sort in both route forms, pages and counts within and
/// past the stored first page, and meta in both forms.
fn paths(product: i32) -> Vec<String> {
    let mut out = vec![
        format!("/reviews/meta?product_id={product}"),
        format!("/reviews/{product}/meta"),
        format!("/reviews?product_id={product}"),
    ];
    for sort in ["relevant", "newest", "helpful"] {
        for (page, count) in [(1, 5), (2, 5), (1, 20), (3, 7), (1, 1000), (40, 1)] {
            out.push(format!(
                "/reviews?product_id={product}&sort={sort}&page={page}&count={count}"
            ));
        }
        out.push(format!(
            "/reviews/{product}/list?sort={sort}&count=3&page=2"
        ));
    }
    out
}

/// Asserts both apps answer every path of `products` with the same status and bytes.
async fn same_bytes(plain: &TestApp, citus: &TestApp, products: &[i32], when: &str) -> usize {
    let mut compared = 0;
    for &product in products {
        for path in paths(product) {
            let (a, b) = tokio::join!(plain.get_reply(&path), citus.get_reply(&path));
            assert_eq!(a.status, 200, "{when}: plain {path}: {}", a.body);
            assert_eq!(
                (b.status, &b.body),
                (a.status, &a.body),
                "{when}: Citus and plain PostgreSQL differ at {path}"
            );
            compared += 1;
        }
    }
    compared
}

/// Products with many reviews first (their lists go past the stored first page), then a spread.
async fn sample(db: &TestDb, n: i64) -> Vec<i32> {
    let client = db.client().await;
    let rows = client
        .query(
            "(SELECT product_id FROM reviews GROUP BY product_id ORDER BY count(*) DESC, 1 LIMIT $1)
             UNION
             (SELECT product_id FROM product_meta ORDER BY product_id % 17, product_id LIMIT $1)",
            &[&n],
        )
        .await
        .unwrap();
    let mut products: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    products.sort();
    products.push(10_000_000); // a product with no data at all
    products
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_data_answers_the_same_bytes_on_citus_before_and_after_concurrent_writes() {
    let folder = temp_dir("citus-csv");
    generated(folder.path(), 300);
    let plain_db = TestDb::new_on(topology::plain()).await;
    let citus_db = TestDb::new_on(topology::citus()).await;
    load_into(&plain_db, folder.path()).await;
    load_into(&citus_db, folder.path()).await;
    let (plain, citus) = (
        app_without_cache(&plain_db).await,
        app_without_cache(&citus_db).await,
    );
    let products = sample(&plain_db, 12).await;
    let compared = same_bytes(&plain, &citus, &products, "as loaded").await;
    assert!(compared > 400, "{compared} bodies compared");

    // The burst: votes and reports on reviews of the compared products, the same ones through
    // both services, many at once; POSTs to other products meanwhile. Votes and reports commute,
    // so both end in the same state, whatever order each ran them in.
    let client = plain_db.client().await;
    let reviews: Vec<(i32, i32)> = client
        .query(
            "SELECT id, product_id FROM reviews WHERE product_id = ANY($1) AND NOT reported ORDER BY id",
            &[&products],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let writes: Vec<String> = reviews
        .iter()
        .enumerate()
        .flat_map(|(i, (id, _))| match i % 5 {
            0 => vec![format!("/reviews/{id}/report")],
            1 => vec![format!("/reviews/{id}/helpful"); 3],
            _ => vec![format!("/reviews/helpful/{id}")],
        })
        .collect();
    let others: Vec<i32> = client
        .query(
            "SELECT product_id FROM product_meta WHERE NOT product_id = ANY($1) ORDER BY product_id LIMIT 20",
            &[&products],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for app in [&plain, &citus] {
        let votes = writes
            .chunks(writes.len().div_ceil(8))
            .map(|chunk| async move {
                for path in chunk {
                    assert_eq!(app.put(path).await.status, 204, "PUT {path}");
                }
            });
        let posts = others.iter().map(|product| post_any(app, *product));
        let (_, posted) = tokio::join!(join_all(votes), join_all(posts));
        assert!(posted.iter().all(|status| *status == 201), "{posted:?}");
    }
    same_bytes(&plain, &citus, &products, "after the burst").await;
    for db in [&plain_db, &citus_db] {
        let (found, total) = reviews_api::verify::differences(&db.url, 5).await.unwrap();
        assert_eq!((total, found), (0, vec![]), "verify on {}", db.name);
    }
}

/// A valid review of `product`, whatever its characteristics (read from its meta).
async fn post_any(app: &TestApp, product: i32) -> u16 {
    let meta: Value = serde_json::from_str(
        &app.get_ok(&format!("/reviews/meta?product_id={product}"))
            .await,
    )
    .unwrap();
    let chars: serde_json::Map<String, Value> = meta["characteristics"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| (c["id"].to_string(), json!(3)))
        .collect();
    let body = json!({
        "product_id": product, "rating": 4, "summary": "burst", "body": "posted in a burst",
        "recommend": true, "name": "burst", "email": "burst@example.com",
        "photos": ["https://images.example/burst.jpg"], "characteristics": chars,
    });
    app.post_json("/reviews", &body).await.status
}

/// EXPLAIN through the coordinator of the service's own statements: one task each, for every
/// sort, page and count of the list (the stored first page, and past it through the indexes),
/// and for meta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_is_one_task_on_the_node_of_its_product() {
    let folder = temp_dir("citus-explain");
    generated(folder.path(), 100);
    let db = TestDb::new_on(topology::citus()).await;
    load_into(&db, folder.path()).await;
    let client = db.client().await;
    let product: i32 = client
        .query_one(
            "SELECT product_id FROM reviews GROUP BY product_id ORDER BY count(*) DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let list = &reviews_api::db::sql::LIST;
    let meta = &reviews_api::db::sql::META;
    let explain = |sql: &str| format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}");
    let list_plan = client
        .prepare_typed(&explain(list.sql), list.params)
        .await
        .expect("prepare EXPLAIN list");
    let meta_plan = client
        .prepare_typed(&explain(meta.sql), meta.params)
        .await
        .expect("prepare EXPLAIN meta");
    let mut plans = Vec::new();
    for sort in ["relevant", "newest", "helpful"] {
        for (page, count) in [(0i64, 5i32), (1, 5), (0, 20), (3, 7), (0, 1000), (500, 1)] {
            let offset = page * i64::from(count);
            let rows = client
                .query(&list_plan, &[&product, &sort, &count, &page, &offset])
                .await
                .unwrap();
            plans.push((format!("list {sort} page {page} count {count}"), rows));
        }
    }
    for _ in 0..7 {
        // Past the plan cache's first five calls too.
        let rows = client.query(&meta_plan, &[&product]).await.unwrap();
        plans.push(("meta".to_string(), rows));
    }
    for (what, rows) in plans {
        let text: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let text = text.join("\n");
        assert!(text.contains("Task Count: 1"), "{what}:\n{text}");
        assert!(
            text.contains("first_pages_") || what == "meta",
            "{what} reads the stored first page:\n{text}"
        );
    }
}

/// A worker stopped (its connections cut, new ones refused): reads and writes of the products it
/// holds answer a fast 503, those of the other worker's products go on answering 200; when it is
/// back every product answers again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_turns_only_its_products_into_fast_503s() {
    let citus = topology::citus();
    let proxies = [
        Proxy::start_to(&citus.workers()[0]).await,
        Proxy::start_to(&citus.workers()[1]).await,
    ];
    let addresses: Vec<String> = proxies
        .iter()
        .zip(citus.workers())
        .map(|(proxy, worker)| proxy.url_for(worker))
        .collect();
    let db = TestDb::reserve_on(citus, "workers");
    citus
        .create_database_reaching_workers_at(&db.name, &addresses)
        .await;
    db.migrate().await;
    let folder = temp_dir("citus-fault");
    generated(folder.path(), 60);
    load_into(&db, folder.path()).await;
    let mut settings = db.settings();
    settings.cache.enabled = false;
    settings.database.timeout_ms = 1000;
    let app = spawn_app(settings).await;

    // Which products each worker holds, by Citus's own placement.
    let client = db.client().await;
    let held = |port: u16| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT m.product_id FROM product_meta m
                      JOIN pg_dist_placement p
                        ON p.shardid = get_shard_id_for_distribution_column('product_meta', m.product_id)
                      JOIN pg_dist_node n ON n.groupid = p.groupid
                     WHERE n.nodeport = $1 ORDER BY 1 LIMIT 5",
                    &[&i32::from(port)],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i32>(0))
                .collect::<Vec<i32>>()
        }
    };
    let (down, up) = (held(proxies[0].port).await, held(proxies[1].port).await);
    assert!(!down.is_empty() && !up.is_empty(), "{down:?} {up:?}");

    proxies[0].set(ProxyMode::Cut);
    for product in &down {
        for path in [
            format!("/reviews?product_id={product}"),
            format!("/reviews/meta?product_id={product}"),
        ] {
            let started = Instant::now();
            let reply = app.get_reply(&path).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (503, "Error: service unavailable"),
                "{path} on the stopped worker"
            );
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{path} took {:?}",
                started.elapsed()
            );
        }
        let posted = post_any_or(&app, *product).await;
        assert_eq!(
            posted.status, 503,
            "POST to a product of the stopped worker"
        );
    }
    for product in &up {
        app.get_ok(&format!("/reviews?product_id={product}")).await;
        app.get_ok(&format!("/reviews/meta?product_id={product}"))
            .await;
    }

    proxies[0].set(ProxyMode::Forward);
    let recovered = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let mut all = true;
            for product in &down {
                all &= app
                    .get_reply(&format!("/reviews?product_id={product}"))
                    .await
                    .status
                    == 200;
            }
            all
        },
    )
    .await;
    assert!(
        recovered,
        "the products of the worker back did not answer again"
    );
    assert_eq!(post_any(&app, down[0]).await, 201);
}

/// POST a review of `product` without reading its meta first (unreachable here): its node answers
/// before the characteristics are judged.
async fn post_any_or(app: &TestApp, product: i32) -> Reply {
    let body = json!({
        "product_id": product, "rating": 4, "summary": "fault", "body": "posted in a fault",
        "recommend": true, "name": "fault", "email": "fault@example.com", "characteristics": {},
    });
    app.post_json("/reviews", &body).await
}
