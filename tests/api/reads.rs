//! GET /reviews and GET /reviews/meta, byte for byte, on a dataset loaded through the real
//! `load` path, against the independent model of `dataset.rs`.

use crate::dataset::Dataset;
use crate::helpers::app::{spawn_app, temp_dir, TestApp, TestDb};
use reviews_api::config::Settings;
use reviews_api::etl::dataset::CsvFile;
use reviews_api::etl::load::{self, LoadArgs};

const SORTS: [&str; 3] = ["relevant", "newest", "helpful"];

/// Loads a fresh dataset into a fresh database and serves it.
async fn loaded(cache: bool) -> (TestDb, TestApp, Dataset) {
    loaded_with(|settings| settings.cache.enabled = cache).await
}

/// The same with the settings `configure` makes; the load's counts are checked against the
/// dataset's.
pub async fn loaded_with(configure: impl FnOnce(&mut Settings)) -> (TestDb, TestApp, Dataset) {
    let db = TestDb::new().await;
    let data = Dataset::build(30, 7);
    let folder = temp_dir("csv");
    let dir = folder.path();
    data.write(dir);
    let mut settings = db.settings();
    configure(&mut settings);
    let report = load::run(
        &settings,
        &LoadArgs {
            dir: dir.to_path_buf(),
            rejects: Some(dir.join("rejects.csv")),
        },
    )
    .await
    .expect("load");
    let counts = |file: CsvFile| {
        report
            .file(file.name())
            .map(|f| (f.loaded, f.rejected))
            .unwrap_or_else(|| panic!("no report for {}", file.name()))
    };
    assert_eq!(
        counts(CsvFile::Reviews),
        (data.reviews.len() as u64, data.bad_reviews.len() as u64)
    );
    assert_eq!(
        counts(CsvFile::Photos),
        (data.photos.len() as u64, data.bad_photos.len() as u64)
    );
    assert_eq!(
        counts(CsvFile::Characteristics),
        (
            data.characteristics.len() as u64,
            data.bad_characteristics.len() as u64
        )
    );
    assert_eq!(
        counts(CsvFile::CharacteristicReviews),
        (data.values.len() as u64, data.bad_values.len() as u64)
    );
    let app = spawn_app(settings).await;
    (db, app, data)
}

async fn body(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json",
        "{path}"
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("@example.com"), "an email leaked in {path}");
    text
}

#[tokio::test]
async fn every_product_sort_page_and_count_matches_the_model() {
    let (_db, app, data) = loaded(false).await;
    let pages: [(i64, i64); 7] = [(1, 5), (2, 5), (1, 1), (3, 7), (1, 1000), (2, 60), (50, 5)];
    for product in 1..=data.max_product + 1 {
        for sort in SORTS {
            for (page, count) in pages {
                let expected = data.list_body(product, sort, page, count);
                let q = format!("page={page}&count={count}&sort={sort}");
                assert_eq!(
                    body(&app, &format!("/reviews?product_id={product}&{q}")).await,
                    expected,
                    "product {product} {q}"
                );
                assert_eq!(
                    body(&app, &format!("/reviews/{product}/list?{q}")).await,
                    expected,
                    "older form, product {product} {q}"
                );
            }
        }
    }
}

#[tokio::test]
async fn defaults_and_clamping_of_page_and_count() {
    let (_db, app, data) = loaded(false).await;
    let cases: [(&str, i64, i64, &str); 7] = [
        ("product_id=2", 1, 5, "relevant"),
        ("product_id=2&page=0&count=0", 1, 5, "relevant"),
        ("product_id=2&page=-4&count=-1&sort=newest", 1, 5, "newest"),
        (
            "product_id=2&count=20000&sort=helpful",
            1,
            10_000,
            "helpful",
        ),
        (
            "product_id=2&page=2&count=3&sort=relevant&unknown=1",
            2,
            3,
            "relevant",
        ),
        ("product_id=2&page=4&page=1&count=9", 4, 9, "relevant"),
        ("count=2&product_id=2&page=3", 3, 2, "relevant"),
    ];
    for (query, page, count, sort) in cases {
        assert_eq!(
            body(&app, &format!("/reviews?{query}")).await,
            data.list_body(2, sort, page, count),
            "{query}"
        );
    }
    // A trailing slash is the same route.
    assert_eq!(
        body(&app, "/reviews/?product_id=2").await,
        data.list_body(2, "relevant", 1, 5)
    );
    assert_eq!(
        body(&app, "/reviews/2/list/").await,
        data.list_body(2, "relevant", 1, 5)
    );
}

#[tokio::test]
async fn meta_of_every_product_matches_the_model() {
    let (_db, app, data) = loaded(false).await;
    for product in 1..=data.max_product + 1 {
        let expected = data.meta_body(product);
        assert_eq!(
            body(&app, &format!("/reviews/meta?product_id={product}")).await,
            expected,
            "product {product}"
        );
        assert_eq!(
            body(&app, &format!("/reviews/{product}/meta")).await,
            expected
        );
    }
    assert_eq!(
        body(&app, "/reviews/meta?product_id=999999").await,
        r#"{"product_id":"999999","ratings":{},"recommended":{},"characteristics":{}}"#
    );
}

#[tokio::test]
async fn the_cache_serves_the_same_bytes() {
    let (_db, app, data) = loaded(true).await;
    // Nothing is cached until the instance hears other instances' writes.
    assert!(
        app.wait_listening(true, std::time::Duration::from_secs(5))
            .await
    );
    for round in 0..2 {
        for product in [2, 3, 4] {
            assert_eq!(
                body(&app, &format!("/reviews?product_id={product}&sort=newest")).await,
                data.list_body(product, "newest", 1, 5),
                "round {round}"
            );
            assert_eq!(
                body(&app, &format!("/reviews/{product}/meta")).await,
                data.meta_body(product)
            );
        }
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let hits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("reviews_cache_hits_total "))
        .and_then(|v| v.parse().ok())
        .expect("hits in /metrics");
    assert!(hits >= 6, "second round is served from memory: {metrics}");
}

#[tokio::test]
async fn bad_parameters_get_the_exact_error() {
    let db = TestDb::new().await;
    let app = spawn_app(db.settings()).await;
    let cases: [(&str, u16, &str); 16] = [
        ("/reviews", 422, "Error: invalid product_id provided"),
        (
            "/reviews?product_id=",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=abc",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=0",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=-3",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=2.5",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=4294967296",
            422,
            "Error: invalid product_id provided",
        ),
        (
            "/reviews?product_id=2&page=x",
            422,
            "Error: invalid page provided",
        ),
        (
            "/reviews?product_id=2&page=1.5",
            422,
            "Error: invalid page provided",
        ),
        (
            "/reviews?product_id=2&count=ten",
            422,
            "Error: invalid count provided",
        ),
        (
            "/reviews?product_id=2&sort=oldest",
            422,
            "Error: invalid sort provided",
        ),
        (
            "/reviews?product_id=2&sort=NEWEST",
            422,
            "Error: invalid sort provided",
        ),
        (
            "/reviews/abc/list",
            422,
            "Error: invalid product_id provided",
        ),
        ("/reviews/0/meta", 422, "Error: invalid product_id provided"),
        ("/reviews/meta", 422, "Error: invalid product_id provided"),
        (
            "/reviews/meta?product_id=x",
            422,
            "Error: invalid product_id provided",
        ),
    ];
    for (path, status, text) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{path}"
        );
        assert_eq!(response.text().await.unwrap(), text, "{path}");
    }
    // Unknown routes (deliberately outside the description: its `NotFound`).
    for path in [
        "/nothing/here",
        "/reviews/2/list/extra",
        "/reviews/2/other",
        "/",
    ] {
        let reply = app.call_unlisted(reqwest::Method::GET, path, None).await;
        assert_eq!(
            (
                reply.status,
                reply.content_type.as_str(),
                reply.body.as_str()
            ),
            (404, "text/plain; charset=utf-8", "Error: not found"),
            "{path}"
        );
    }
    // A known path with the wrong method (deliberately outside the description:
    // its `MethodNotAllowed`).
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/reviews", "GET, POST"),
        (reqwest::Method::POST, "/reviews/meta", "GET"),
        (reqwest::Method::PUT, "/reviews/2/list", "GET"),
        (reqwest::Method::GET, "/reviews/5/helpful", "PUT"),
        (reqwest::Method::POST, "/health", "GET"),
    ] {
        let reply = app.call_unlisted(method.clone(), path, None).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        // HTTP (RFC 9110, 15.5.6): a 405 lists the methods the path does take.
        assert_eq!(
            reply.headers.get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        assert_eq!(reply.body, "Error: method not allowed");
    }
    let health = app.get("/health").await;
    assert_eq!(health.status().as_u16(), 200);
}
