//! /metrics: request durations by route template (never the raw path), method and status class,
//! statement durations by statement, the wait for a connection, and the older counters.

use crate::helpers::app::{spawn_app, TestDb};
use crate::helpers::seed::{post_review, seed_product};

#[tokio::test]
async fn requests_and_statements_are_timed_by_template_and_name() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 40, &["Fit"]).await;
    let mut settings = db.settings();
    settings.cache.enabled = false;
    let pool_size = settings.database.pool_size as f64;
    let app = spawn_app(settings).await;
    post_review(&app, &product, 4, true, &[4]).await;
    for _ in 0..3 {
        app.get_ok("/reviews/40/meta").await;
    }
    app.get_ok("/reviews?product_id=40&count=2").await;
    assert_eq!(
        app.call_unlisted(reqwest::Method::GET, "/no/such/route", None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get_reply("/reviews/meta?product_id=x").await.status,
        422
    );

    let text = app.get_ok("/metrics").await;
    let sample = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    let requests = "reviews_http_request_duration_seconds";
    assert_eq!(
        sample(&format!(
            "{requests}_count{{route=\"/reviews/{{product_id}}/meta\",method=\"GET\",status=\"2xx\"}}"
        )),
        3.0
    );
    assert_eq!(
        sample(&format!(
            "{requests}_bucket{{le=\"+Inf\",route=\"/reviews/{{product_id}}/meta\",method=\"GET\",status=\"2xx\"}}"
        )),
        3.0
    );
    assert_eq!(
        sample(&format!(
            "{requests}_count{{route=\"/reviews\",method=\"POST\",status=\"2xx\"}}"
        )),
        1.0
    );
    assert_eq!(
        sample(&format!(
            "{requests}_count{{route=\"/reviews/meta\",method=\"GET\",status=\"4xx\"}}"
        )),
        1.0
    );
    assert_eq!(
        sample(&format!(
            "{requests}_count{{route=\"none\",method=\"GET\",status=\"4xx\"}}"
        )),
        1.0
    );
    assert!(!text.contains("/reviews/40"), "a raw path became a label");
    assert!(
        !text.contains("/no/such/route"),
        "a raw path became a label"
    );

    let statements = "reviews_db_statement_duration_seconds";
    assert_eq!(
        sample(&format!("{statements}_count{{statement=\"meta\"}}")),
        3.0
    );
    assert_eq!(
        sample(&format!("{statements}_count{{statement=\"list\"}}")),
        1.0
    );
    // Named by its file in sql/: post_review, or citus/post_review on Citus.
    let post = reviews_api::db::Topology::of(&client)
        .await
        .unwrap()
        .writes()
        .post_review
        .name;
    assert_eq!(
        sample(&format!("{statements}_count{{statement=\"{post}\"}}")),
        1.0
    );
    // One wait per statement run: three meta, one list, one post.
    assert_eq!(sample("reviews_db_pool_wait_seconds_count"), 5.0);
    assert!(sample(&format!("{statements}_sum{{statement=\"meta\"}}")) > 0.0);

    assert_eq!(sample("reviews_http_responses_total{class=\"2xx\"}"), 5.0);
    assert_eq!(sample("reviews_http_responses_total{class=\"4xx\"}"), 2.0);
    assert_eq!(
        sample("reviews_db_pool_connections{state=\"max\"}"),
        pool_size
    );
    assert!(text.contains("# TYPE reviews_http_request_duration_seconds histogram"));
    assert!(text.contains("# UNIT reviews_http_request_duration_seconds seconds"));
}
