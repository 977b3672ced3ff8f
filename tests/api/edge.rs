//! What the service gives clients at its edge: the consistency token that lets a writer read its
//! own write at once, the optional limit on writes per client address, CORS for configured
//! origins, and /metrics on an address of its own. (Across instances and lagging replicas,
//! through NGINX: scale.rs.)

use crate::helpers::app::{spawn_app, TestApp, TestDb};
use crate::helpers::seed::{post_review, review_body, seed_product};
use reqwest::header::HeaderMap;
use reqwest::Method;

const TOKEN: &str = "x-consistency-token";

fn token_of(headers: &HeaderMap) -> String {
    headers[TOKEN].to_str().unwrap().to_string()
}

/// A write answers its token twice, as the header and as the cookie; a read carrying it skips the
/// cached body (it reads the database, then refreshes the cache); a malformed token is ignored.
#[tokio::test]
async fn a_write_answers_a_token_and_a_read_with_it_skips_the_cache() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 500, &["Fit"]).await;
    let app = spawn_app(db.settings()).await;
    assert!(
        app.wait_listening(true, std::time::Duration::from_secs(8))
            .await
    );

    let posted = app
        .post_json("/reviews", &review_body(&product, 5, true, &[5]))
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let token = token_of(&posted.headers);
    assert!(token.starts_with("500:"), "{token}");
    let cookie = posted.headers["set-cookie"].to_str().unwrap();
    assert_eq!(
        cookie,
        format!("reviews_token={token}; Path=/reviews; Max-Age=30; HttpOnly; SameSite=Lax")
    );
    let review = posted.body[13..posted.body.len() - 1].to_string();
    let voted = app
        .call_with(
            Method::PUT,
            &format!("/reviews/{review}/helpful"),
            &[(TOKEN, &token)],
        )
        .await;
    assert_eq!(voted.status, 204);
    let both = token_of(&voted.headers);
    assert_eq!(both, token, "one entry per product, the latest");

    let meta = "/reviews/meta?product_id=500";
    let plain = app.get_ok(meta).await;
    let hits = app.metric("reviews_cache_hits_total").await;
    let misses = app.metric("reviews_cache_misses_total").await;
    for (name, value) in [
        (TOKEN, token.clone()),
        ("cookie", format!("a=b; reviews_token={token}")),
    ] {
        let read = app.call_with(Method::GET, meta, &[(name, &value)]).await;
        assert_eq!((read.status, &read.body), (200, &plain), "{name}");
    }
    assert_eq!(
        app.metric("reviews_cache_hits_total").await,
        hits,
        "never from the cache"
    );
    assert_eq!(app.metric("reviews_cache_misses_total").await, misses + 2.0);
    // Another product's token, or garbage: as without one (this read is a hit).
    for value in ["501:FFFF", "nonsense", "500:", "500:1.500:2"] {
        let read = app.call_with(Method::GET, meta, &[(TOKEN, value)]).await;
        assert_eq!((read.status, &read.body), (200, &plain), "{value}");
    }
    assert_eq!(app.metric("reviews_cache_hits_total").await, hits + 4.0);
}

/// limits.writes_per_second: past the burst, a write from the same address answers 429 with
/// Retry-After and changes nothing; reads are not limited; behind a trusted proxy each
/// X-Forwarded-For client has its own budget, and from anyone else the header is ignored.
#[tokio::test]
async fn writes_past_the_service_limit_answer_429_and_change_nothing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 510, &["Fit"]).await;
    let mut settings = db.settings();
    settings.limits.writes_per_second = 1;
    settings.limits.write_burst = 3;
    settings.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = spawn_app(settings).await;
    let review = post_review(&app, &product, 4, true, &[4]).await.review_id;
    let helpful = format!("/reviews/{review}/helpful");
    let from = |address: &'static str| [("x-forwarded-for", address)];

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = app
            .call_with(Method::PUT, &helpful, &from("203.0.113.9"))
            .await;
        if reply.status == 429 {
            assert_eq!(reply.body, "Error: too many requests");
            assert!(reply.content_type.starts_with("text/plain"));
            let wait: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [204, 204, 204, 429], "a burst of 3, then refused");
    let helpfulness: i32 = client
        .query_one("SELECT helpfulness FROM reviews WHERE id = $1", &[&review])
        .await
        .unwrap()
        .get(0);
    assert_eq!(helpfulness, 3, "the refused vote changed nothing");
    // Another client behind the same proxy has its own budget; reads are never limited.
    let other = app
        .call_with(Method::PUT, &helpful, &from("198.51.100.4"))
        .await;
    assert_eq!(other.status, 204);
    for _ in 0..10 {
        app.get_ok("/reviews/meta?product_id=510").await;
    }
}

/// An address that is not a trusted proxy cannot pick its budget with X-Forwarded-For.
#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 520, &["Fit"]).await;
    let mut settings = db.settings();
    settings.limits.writes_per_second = 1;
    settings.limits.write_burst = 2;
    let app = spawn_app(settings).await;
    let review = post_review(&app, &product, 4, true, &[4]).await.review_id;
    // The POST above took one of the two.
    let helpful = format!("/reviews/{review}/helpful");
    let first = app
        .call_with(Method::PUT, &helpful, &[("x-forwarded-for", "192.0.2.1")])
        .await;
    let second = app
        .call_with(Method::PUT, &helpful, &[("x-forwarded-for", "192.0.2.2")])
        .await;
    assert_eq!((first.status, second.status), (204, 429));
}

/// CORS for the configured origins only: a preflight of a vote with the token header, a read
/// that exposes the token header; another origin, or none configured, gets no CORS headers.
#[tokio::test]
async fn configured_origins_may_call_from_the_browser_and_others_may_not() {
    let db = TestDb::new().await;
    let mut settings = db.settings();
    settings.server.cors_origins = vec!["https://shop.example".into()];
    let app = spawn_app(settings).await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str, app: &TestApp| {
        http.request(
            Method::OPTIONS,
            format!("{}/reviews/5/helpful", app.address),
        )
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", TOKEN)
        .send()
    };
    let ok = preflight("https://shop.example", &app).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains(TOKEN), "{allowed}");

    let read = http
        .get(format!("{}/reviews/meta?product_id=5", app.address))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let exposed = read.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains(TOKEN), "{exposed}");

    let stranger = http
        .get(format!("{}/reviews/meta?product_id=5", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let default = spawn_app(db.settings()).await;
    let read = http
        .get(format!("{}/reviews/meta?product_id=5", default.address))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert!(
        read.headers().get("access-control-allow-origin").is_none(),
        "same origin only by default"
    );
}

/// server.metrics_listen: /metrics on that address only; the API's address answers it 404.
#[tokio::test]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let db = TestDb::new().await;
    let mut settings = db.settings();
    let port = reviews_api::devdb::free_port().unwrap();
    settings.server.metrics_listen = format!("127.0.0.1:{port}");
    let app = spawn_app(settings).await;
    let api = app.get_reply("/metrics").await;
    assert_eq!((api.status, api.body.as_str()), (404, "Error: not found"));
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("reviews_http_request_duration_seconds"),
        "{text}"
    );
}
