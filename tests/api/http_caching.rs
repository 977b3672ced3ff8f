//! What browsers, proxies and CDNs get: gzip for those that take it (the same bytes once
//! decoded), strong ETags with 304 exactly when the client's copy is current (from the cache
//! without the database when cached), and Cache-Control as src/http/representation.rs documents.

use crate::helpers::app::{spawn_app, TestApp, TestDb};
use crate::helpers::reply::Reply;
use crate::helpers::seed::{post_review, seed_product};
use crate::reads::loaded_with;
use reqwest::Method;

const GZIP: (&str, &str) = ("accept-encoding", "gzip, deflate, br");
const SHARED: &str = "public, max-age=0, s-maxage=1";

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Every route, sort, page and count, in both forms, cache on and off: the gzip answer decodes to
/// the plain answer's bytes; a big one is compressed, and smaller on the wire.
#[tokio::test]
async fn gzip_answers_decode_to_the_same_bytes_for_every_route() {
    for cache in [false, true] {
        let (_db, app, data) = loaded_with(|s| s.cache.enabled = cache).await;
        let mut compressed = 0;
        for product in 1..=data.max_product + 1 {
            let mut paths = vec![
                format!("/reviews/meta?product_id={product}"),
                format!("/reviews/{product}/meta"),
            ];
            for sort in ["relevant", "newest", "helpful"] {
                for (page, count) in [(1, 5), (2, 5), (1, 1000), (3, 7)] {
                    let q = format!("page={page}&count={count}&sort={sort}");
                    paths.push(format!("/reviews?product_id={product}&{q}"));
                    paths.push(format!("/reviews/{product}/list?{q}"));
                }
            }
            for path in paths {
                let plain = app.get_reply(&path).await;
                let gzip = app.call_with(Method::GET, &path, &[GZIP]).await;
                assert_eq!((plain.status, gzip.status), (200, 200), "{path}");
                assert_eq!(gzip.body, plain.body, "{path}: decoded, the same bytes");
                assert_eq!(header(&plain, "content-encoding"), None, "{path}");
                assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
                assert_eq!(header(&gzip, "vary"), Some("Accept-Encoding"));
                if header(&gzip, "content-encoding") == Some("gzip") {
                    compressed += 1;
                    assert!(
                        gzip.wire_bytes < plain.wire_bytes,
                        "{path}: gzip is smaller"
                    );
                    assert_ne!(header(&gzip, "etag"), header(&plain, "etag"), "{path}");
                } else {
                    assert_eq!(header(&gzip, "etag"), header(&plain, "etag"), "{path}");
                }
                // Big answers are always compressed (small ones only when cached).
                if plain.body.len() >= reviews_api::http::representation::GZIP_UNCACHED_MIN {
                    assert_eq!(header(&gzip, "content-encoding"), Some("gzip"), "{path}");
                }
            }
        }
        assert!(
            compressed > 10,
            "cache {cache}: {compressed} compressed answers"
        );
    }
}

/// 304 exactly when If-None-Match names the current tag: before and after a write changes the
/// body; a cached body answers it without the database.
#[tokio::test]
async fn not_modified_exactly_when_the_tag_is_current() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 600, &["Fit"]).await;
    let app = spawn_app(db.settings()).await;
    assert!(
        app.wait_listening(true, std::time::Duration::from_secs(8))
            .await
    );
    post_review(&app, &product, 4, true, &[4]).await;
    let meta = "/reviews/meta?product_id=600";
    let statements = || async {
        let text = app.get_ok("/metrics").await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("reviews_db_statement_duration_seconds_count{statement=\"meta\"} ")
            })
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    // The write's own NOTIFY comes back to this instance a moment later and retires what was
    // cached before it arrived: read until the body stays cached.
    let mut first = app.get_reply(meta).await;
    for _ in 0..50 {
        let cached = statements().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        first = app.get_reply(meta).await;
        if statements().await == cached {
            break;
        }
    }
    let tag = header(&first, "etag").unwrap().to_string();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let before = statements().await;
    let same = app
        .call_with(Method::GET, meta, &[("if-none-match", &tag)])
        .await;
    assert_eq!((same.status, same.body.as_str()), (304, ""));
    assert_eq!(header(&same, "etag"), Some(tag.as_str()));
    assert_eq!(header(&same, "cache-control"), Some(SHARED));
    assert_eq!(statements().await, before, "a cached body answers the 304");
    for other in ["\"0000000000000000\"", "W/\"x\", \"y\""] {
        let changed = app
            .call_with(Method::GET, meta, &[("if-none-match", other)])
            .await;
        assert_eq!(
            (changed.status, &changed.body),
            (200, &first.body),
            "{other}"
        );
    }
    let weak_list = format!("\"a\", W/{tag}");
    let listed = app
        .call_with(Method::GET, meta, &[("if-none-match", &weak_list)])
        .await;
    assert_eq!(listed.status, 304, "any listed tag, weakly compared");

    post_review(&app, &product, 1, false, &[1]).await;
    let stale = app
        .call_with(Method::GET, meta, &[("if-none-match", &tag)])
        .await;
    assert_eq!(stale.status, 200, "the write changed the body");
    let new_tag = header(&stale, "etag").unwrap().to_string();
    assert_ne!(new_tag, tag);
    let current = app
        .call_with(Method::GET, meta, &[("if-none-match", &new_tag)])
        .await;
    assert_eq!(current.status, 304);
    // The gzip form has a tag of its own.
    let gz = app
        .call_with(Method::GET, "/reviews?product_id=600&count=1000", &[GZIP])
        .await;
    let gz_tag = header(&gz, "etag").unwrap().to_string();
    let again = app
        .call_with(
            Method::GET,
            "/reviews?product_id=600&count=1000",
            &[GZIP, ("if-none-match", &gz_tag)],
        )
        .await;
    assert_eq!(again.status, 304);
}

/// Cache-Control: shared reads for s-maxage, the writer's reads and every write private, errors
/// and operational answers never stored.
#[tokio::test]
async fn cache_control_as_documented() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 610, &["Fit"]).await;
    let mut settings = db.settings();
    settings.server.shared_max_age_secs = 3;
    let app = spawn_app(settings).await;
    let read = app.get_reply("/reviews?product_id=610").await;
    assert_eq!(
        header(&read, "cache-control"),
        Some("public, max-age=0, s-maxage=3")
    );
    let posted = app
        .post_json(
            "/reviews",
            &crate::helpers::seed::review_body(&product, 5, true, &[5]),
        )
        .await;
    assert_eq!(header(&posted, "cache-control"), Some("private, no-store"));
    let token = header(&posted, "x-consistency-token").unwrap().to_string();
    let own = app
        .call_with(
            Method::GET,
            "/reviews?product_id=610",
            &[("x-consistency-token", &token)],
        )
        .await;
    assert_eq!(header(&own, "cache-control"), Some("private, no-store"));
    let error = app.get_reply("/reviews?product_id=x").await;
    assert_eq!(
        (error.status, header(&error, "cache-control")),
        (422, Some("no-store"))
    );
    let health = app.get_reply("/health").await;
    assert_eq!(header(&health, "cache-control"), Some("no-store"));
}

/// An unknown product answers 200 (docs/api.md), cacheable like any answer; an error is not.
#[tokio::test]
async fn an_unknown_product_is_cacheable_like_any_and_an_error_is_not() {
    let db = TestDb::new().await;
    let app: TestApp = spawn_app(db.settings()).await;
    let unknown = app.get_reply("/reviews/meta?product_id=987654").await;
    assert_eq!(unknown.status, 200);
    assert_eq!(header(&unknown, "cache-control"), Some(SHARED));
    let review = app.put("/reviews/987654/helpful").await;
    assert_eq!(
        (review.status, header(&review, "cache-control")),
        (404, Some("no-store"))
    );
}
