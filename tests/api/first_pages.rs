//! The stored first pages (table first_pages, sql/list.sql's first way): built by the load, kept
//! exact by every write even when many race on the same products, checked by `verify`, and
//! never needed (a product without its row is listed through the sort indexes).
//!
//! Expected bodies come from the independent model of dataset.rs: the loaded rows, plus what the
//! test itself did (its posts, votes and reports), plus the two things only the server decides,
//! each posted review's date and photo ids, read back from the raw tables.

use crate::dataset::{Dataset, Photo, Review};
use crate::helpers::app::run_verify;
use crate::helpers::app::{TestApp, TestDb};
use crate::helpers::reply::created_id;
use futures_util::future::join_all;
use serde_json::{json, Value};

const SORTS: [&str; 3] = ["relevant", "newest", "helpful"];

/// A fresh database loaded with `Dataset::build(30, 7)` through the real `load`, served without
/// the cache (these tests are about what PostgreSQL answers).
async fn loaded() -> (TestDb, TestApp, Dataset) {
    loaded_with_pool(8).await
}

/// The same, with `pool_size` connections for the writes (more writes at once in PostgreSQL).
async fn loaded_with_pool(pool_size: usize) -> (TestDb, TestApp, Dataset) {
    crate::reads::loaded_with(|settings| {
        settings.cache.enabled = false;
        settings.database.pool_size = pool_size;
    })
    .await
}

/// K: how many reviews of each product and sort are stored.
async fn page_size(client: &tokio_postgres::Client) -> i64 {
    let k: i32 = client
        .query_one("SELECT public.first_page_size()", &[])
        .await
        .unwrap()
        .get(0);
    i64::from(k)
}

/// Every list of `products` in every sort, count 1..=K+2, pages 1, 2, 3 and one far past the
/// end, against the model.
async fn assert_lists_match(app: &TestApp, data: &Dataset, products: &[i32], k: i64) {
    for &product in products {
        for sort in SORTS {
            for count in 1..=k + 2 {
                for page in [1, 2, 3, 40] {
                    let path = format!(
                        "/reviews?product_id={product}&sort={sort}&count={count}&page={page}"
                    );
                    assert_eq!(
                        app.get_ok(&path).await,
                        data.list_body(product, sort, page, count),
                        "{path}"
                    );
                }
            }
        }
    }
}

/// One write a task made, as the model must apply it.
enum Done {
    Posted(Review, Vec<String>),
    Voted(i32),
    Reported(i32),
}

/// A tiny deterministic generator per task, so a failing interleaving's inputs reproduce.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// One round: 32 tasks each making 12 writes (posts, votes, reports) on `products` (whose review
/// ids so far are `known`) while 4 tasks read their lists; returns every acknowledged write.
async fn race(
    app: &TestApp,
    products: &[i32],
    chars: &[Vec<i32>],
    known: &[Vec<i32>],
    round: u64,
    k: i64,
) -> Vec<Done> {
    let writers = (0..32u64).map(|task| async move {
        let mut rng = Lcg(round * 1000 + task + 1);
        let mut done = Vec::new();
        let mut mine: Vec<Vec<i32>> = vec![Vec::new(); products.len()];
        for step in 0..12 {
            let which = rng.below(products.len() as u64) as usize;
            let product = products[which];
            let ids: Vec<i32> = known[which].iter().chain(&mine[which]).copied().collect();
            let action = if ids.is_empty() { 0 } else { rng.below(10) };
            if action < 4 {
                let rating = rng.below(5) as i32 + 1;
                let recommend = rng.below(2) == 0;
                let name = format!("racer{round}.{task}");
                let summary = format!("Race \"{round}.{task}.{step}\" café");
                let body = format!("Written by task {task} at step {step}.\nIt's fine \\o/");
                let photos: Vec<String> = (0..rng.below(3))
                    .map(|i| format!("https://p.example/{round}/{task}/{step}/{i}.jpg"))
                    .collect();
                let values: serde_json::Map<String, Value> = chars[which]
                    .iter()
                    .map(|id| (id.to_string(), json!(rng.below(5) + 1)))
                    .collect();
                let reply = app
                    .post_json(
                        "/reviews",
                        &json!({
                            "product_id": product, "rating": rating, "summary": summary,
                            "body": body, "recommend": recommend, "name": name,
                            "email": "racer@example.com", "photos": photos,
                            "characteristics": values,
                        }),
                    )
                    .await;
                let id = created_id(&reply);
                mine[which].push(id);
                let review = Review {
                    id,
                    product_id: product,
                    rating,
                    date_ms: 0, // the server's: read back at the end
                    summary,
                    body,
                    recommend,
                    reported: false,
                    name,
                    email: "racer@example.com".to_string(),
                    response: None,
                    helpfulness: 0,
                };
                done.push(Done::Posted(review, photos));
            } else {
                let id = ids[rng.below(ids.len() as u64) as usize];
                // Votes far more often than reports, so that the products keep reviews.
                let (path, op) = if action < 9 {
                    (format!("/reviews/{id}/helpful"), Done::Voted(id))
                } else {
                    (format!("/reviews/{id}/report"), Done::Reported(id))
                };
                let reply = app.put(&path).await;
                assert_eq!(reply.status, 204, "PUT {path}: {}", reply.body);
                done.push(op);
            }
        }
        done
    });
    // Readers race the writers; each answer must be a well-formed page in its sort's order.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let readers = (0..4u64).map(|task| {
        let stop = &stop;
        async move {
            let mut rng = Lcg(round * 1000 + 100 + task);
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 20 {
                let product = products[rng.below(products.len() as u64) as usize];
                let count = rng.below(k as u64 + 3) + 1;
                let page = rng.below(3) + 1;
                let path =
                    format!("/reviews?product_id={product}&sort=newest&count={count}&page={page}");
                let body = app.get_ok(&path).await;
                let v: Value = serde_json::from_str(&body).expect("a list is JSON");
                let dates: Vec<&str> = v["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .map(|r| r["date"].as_str().expect("date"))
                    .collect();
                assert!(dates.len() as u64 <= count, "{path}: {body}");
                assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{path}: {body}");
                reads += 1;
            }
            reads
        }
    });
    let writing = async {
        let done = join_all(writers).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        done
    };
    let (done, _reads) = tokio::join!(writing, join_all(readers));
    done.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_leave_every_stored_page_exact() {
    let (db, app, mut data) = loaded_with_pool(32).await;
    let client = db.client().await;
    let k = page_size(&client).await;

    // Product 2 has 60 reviews (more than K, with ties), product 1 none, and two products with a
    // few: posts push them across K (the stored row stops being the whole list), reports pull
    // product 2's first pages down, votes lift reviews from far down into the first pages.
    let mut small: Vec<(usize, i32)> = (3..data.max_product)
        .map(|p| {
            let n = data.reviews.iter().filter(|r| r.product_id == p).count();
            (n, p)
        })
        .filter(|(n, _)| *n >= 2)
        .collect();
    small.sort();
    let products = [1, 2, small[0].1, small[small.len() - 1].1];
    let chars: Vec<Vec<i32>> = products
        .iter()
        .map(|&p| {
            let mut ids: Vec<i32> = data
                .characteristics
                .iter()
                .filter(|c| c.product_id == p)
                .map(|c| c.id)
                .collect();
            ids.sort();
            ids
        })
        .collect();
    let mut known: Vec<Vec<i32>> = products
        .iter()
        .map(|&p| {
            data.reviews
                .iter()
                .filter(|r| r.product_id == p)
                .map(|r| r.id)
                .collect()
        })
        .collect();

    // Rounds of racing writes, each checked by verify: a change lost in a round shows even when a
    // later round would have written over it.
    let mut done = Vec::new();
    for round in 0..5 {
        let this_round = race(&app, &products, &chars, &known, round, k).await;
        for op in &this_round {
            if let Done::Posted(review, _) = op {
                let which = products
                    .iter()
                    .position(|&p| p == review.product_id)
                    .unwrap();
                known[which].push(review.id);
            }
        }
        done.extend(this_round);
        let (found, total) = reviews_api::verify::differences(&db.url, 3).await.unwrap();
        assert_eq!((found, total), (vec![], 0), "verify after round {round}");
    }

    // The model: the loaded rows plus every write that was acknowledged.
    let mut posted = 0;
    for op in done {
        match op {
            Done::Posted(mut review, photos) => {
                posted += 1;
                let row = client
                    .query_one("SELECT date_ms FROM reviews WHERE id = $1", &[&review.id])
                    .await
                    .unwrap();
                review.date_ms = row.get(0);
                let ids = client
                    .query(
                        "SELECT id, url FROM reviews_photos WHERE review_id = $1 ORDER BY id",
                        &[&review.id],
                    )
                    .await
                    .unwrap();
                let urls: Vec<String> = ids.iter().map(|r| r.get(1)).collect();
                assert_eq!(urls, photos, "photo ids follow the order they were sent in");
                for row in ids {
                    data.photos.push(Photo {
                        id: row.get(0),
                        review_id: review.id,
                        url: row.get(1),
                    });
                }
                data.reviews.push(review);
            }
            Done::Voted(id) => {
                data.reviews
                    .iter_mut()
                    .find(|r| r.id == id)
                    .unwrap()
                    .helpfulness += 1;
            }
            Done::Reported(id) => {
                data.reviews
                    .iter_mut()
                    .find(|r| r.id == id)
                    .unwrap()
                    .reported = true
            }
        }
    }
    assert!(posted > 50, "enough posts to cross K: {posted}");
    let crossed = data
        .reviews
        .iter()
        .filter(|r| r.product_id == products[3] && !r.reported)
        .count();
    assert!(
        crossed as i64 > k + 2,
        "product {} has {crossed} visible reviews",
        products[3]
    );

    assert_lists_match(&app, &data, &products, k).await;
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!((found, total), (vec![], 0), "verify after the race");
    // Each raced product and sort has its stored row (the lists above were answered from it).
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM first_pages WHERE product_id = ANY($1)",
            &[&products.to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3 * products.len() as i64);
}

#[tokio::test]
async fn the_load_stores_every_first_page_and_lists_work_without_them() {
    let (db, app, data) = loaded().await;
    let client = db.client().await;
    let k = page_size(&client).await;
    // A row per sort for every product with characteristics or reviews.
    let mut with_rows: Vec<i32> = data
        .characteristics
        .iter()
        .map(|c| c.product_id)
        .chain(data.reviews.iter().map(|r| r.product_id))
        .collect();
    with_rows.sort();
    with_rows.dedup();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM first_pages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3 * with_rows.len() as i64);
    let all: Vec<i32> = (1..=data.max_product + 1).collect();
    assert_lists_match(&app, &data, &all, k).await;

    // Without a stored row a product is listed through the sort indexes, byte for byte the same,
    // and verify does not call a missing row a difference. Its next write stores it again.
    client
        .execute("DELETE FROM first_pages WHERE product_id IN (2, 3)", &[])
        .await
        .unwrap();
    assert_lists_match(&app, &data, &[2, 3], k).await;
    assert_eq!(
        reviews_api::verify::differences(&db.url, 10).await.unwrap(),
        (vec![], 0)
    );
    let id = data.reviews.iter().find(|r| r.product_id == 2).unwrap().id;
    assert_eq!(app.put(&format!("/reviews/{id}/helpful")).await.status, 204);
    let stored: i64 = client
        .query_one("SELECT count(*) FROM first_pages WHERE product_id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3);
}

#[tokio::test]
async fn verify_finds_a_first_page_altered_by_hand() {
    let (db, app, _data) = loaded().await;
    let client = db.client().await;
    let clean = run_verify(&db.url).await;
    assert!(clean.status.success(), "verify after a load: {clean:?}");

    // The stored page is what is served: altering it by hand changes the answer...
    let path = "/reviews?product_id=2&sort=newest&count=5";
    let before = app.get_ok(path).await;
    client
        .execute(
            "UPDATE first_pages SET docs[2] = docs[3] WHERE product_id = 2 AND sort = 'n'",
            &[],
        )
        .await
        .unwrap();
    let altered = app.get_ok(path).await;
    assert_ne!(altered, before);
    // ... and verify says which product and shows both pages; so does a wrong `whole`.
    client
        .execute(
            "UPDATE first_pages SET whole = NOT whole WHERE product_id = 4 AND sort = 'h'",
            &[],
        )
        .await
        .unwrap();
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!(total, 2, "{found:?}");
    assert_eq!(
        found.iter().map(|d| d.product_id).collect::<Vec<_>>(),
        vec![2, 4]
    );
    assert!(
        found[0].expected.starts_with("first page (newest, "),
        "{found:?}"
    );
    assert_ne!(found[0].expected, found[0].actual);
    assert!(
        found[1].expected.starts_with("first page (helpful, "),
        "{found:?}"
    );
    let dirty = run_verify(&db.url).await;
    assert!(
        !dirty.status.success(),
        "verify on an altered page: {dirty:?}"
    );
    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert!(stdout.contains("product 2\n"), "{stdout}");
    assert!(stdout.contains("product 4\n"), "{stdout}");
    assert!(!stdout.contains("product 3\n"), "{stdout}");
}

/// The race above made deterministic: one write to a product holds its transaction open while a
/// second write to the same product runs. The second must wait and then recompute with the
/// first in view; recomputing from a snapshot taken before the first committed would store
/// pages without the first write (a lost update, which verify reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_the_other_write_of_its_product_and_keeps_it() {
    let (db, app, data) = loaded().await;
    let mut first = db.client().await;
    let second = db.client().await;
    // Two reviews of product 2 both on its first page of every sort: each vote changes it.
    let newest = data.ordered(2, "newest");
    let (a, b) = (newest[0].id, newest[1].id);

    let tx = first.transaction().await.unwrap();
    tx.execute(
        "UPDATE reviews SET helpfulness = helpfulness + 1 WHERE id = $1",
        &[&a],
    )
    .await
    .unwrap();
    let other = tokio::spawn(async move {
        second
            .execute(
                "UPDATE reviews SET helpfulness = helpfulness + 1 WHERE id = $1",
                &[&b],
            )
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !other.is_finished(),
        "the second write of the product waits for the first to commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(other.await.unwrap(), 1);

    assert_eq!(
        reviews_api::verify::differences(&db.url, 10).await.unwrap(),
        (vec![], 0),
        "both votes are in the stored pages"
    );
    let mut model = data.clone();
    for id in [a, b] {
        model
            .reviews
            .iter_mut()
            .find(|r| r.id == id)
            .unwrap()
            .helpfulness += 1;
    }
    for sort in SORTS {
        let path = format!("/reviews?product_id=2&sort={sort}&count=5");
        assert_eq!(
            app.get_ok(&path).await,
            model.list_body(2, sort, 1, 5),
            "{path}"
        );
    }
}

/// One statement that touches thousands of products (a bulk change by hand; the benchmark undoing
/// its writes) keeps every stored page exact without a lock per product, which would exhaust
/// PostgreSQL's lock table ("out of shared memory").
#[tokio::test]
async fn a_statement_touching_thousands_of_products_keeps_their_pages() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let products = 30_000;
    client
        .execute(
            "INSERT INTO reviews (product_id, rating, date_ms, body, recommend, reviewer_name,
                                  reviewer_email, helpfulness)
             SELECT p, 1 + p % 5, 1600000000000 + p, 'bulk', p % 2 = 0, 'n', 'n@example.com', p % 7
               FROM generate_series(1, $1::integer) AS p",
            &[&products],
        )
        .await
        .expect("one INSERT of a review for each of thousands of products");
    client
        .execute("UPDATE reviews SET helpfulness = helpfulness + 1", &[])
        .await
        .expect("one UPDATE of all of them");
    let stored: i64 = client
        .query_one("SELECT count(*) FROM first_pages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 3 * i64::from(products), "three sorts per product");
    // The stored pages against their recomputation (verify's own statement; meta is not in
    // question here: these rows were written around the service, which keeps meta).
    let differing: i64 = client
        .query(reviews_api::db::sql::VERIFY_PAGES, &[&10i64])
        .await
        .unwrap()
        .first()
        .map_or(0, |r| r.get(3));
    assert_eq!(differing, 0);
}
