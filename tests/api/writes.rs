//! Writes that keep meta exact: POST /reviews in both forms, PUT helpful and report in both forms,
//! every rejection of docs/api.md (and that it changes nothing), concurrency, a statement that fails
//! half-way, and `verify`. The cache is off here: these tests are about the database path.

use crate::helpers::app::run_verify;
use crate::helpers::app::{snapshot, spawn_app, TestApp, TestDb};
use crate::helpers::contract;
use crate::helpers::reply::{created_id, listed_ids};
use crate::helpers::seed::{
    average, expected_meta, post_review, review_body, seed_product, Posted,
};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn app_without_cache(db: &TestDb) -> TestApp {
    let mut settings = db.settings();
    settings.cache.enabled = false;
    spawn_app(settings).await
}

/// Epoch milliseconds of docs/api.md's date format `YYYY-MM-DDTHH:MM:SS.mmmZ`; None for anything else.
fn parse_date_ms(s: &str) -> Option<i64> {
    let date = time::PrimitiveDateTime::parse(s, crate::dataset::API_DATE).ok()?;
    i64::try_from(date.assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One review as GET /reviews lists it.
struct ReviewDoc<'a> {
    id: i32,
    rating: i32,
    summary: &'a str,
    recommend: bool,
    body: &'a str,
    date: &'a str,
    name: &'a str,
    helpfulness: i32,
    photos: &'a [(i64, &'a str)],
}

impl ReviewDoc<'_> {
    /// Its JSON, keys in docs/api.md's order.
    fn json(&self) -> String {
        let ReviewDoc {
            id,
            rating,
            summary,
            recommend,
            body,
            date,
            name,
            helpfulness,
            photos,
        } = self;
        let s = |v: &str| serde_json::to_string(v).unwrap();
        let photos: Vec<String> = photos
            .iter()
            .map(|(id, url)| format!("{{\"id\":{id},\"url\":{}}}", s(url)))
            .collect();
        format!(
            "{{\"review_id\":{id},\"rating\":{rating},\"summary\":{},\"recommend\":{recommend},\"response\":null,\"body\":{},\"date\":{},\"reviewer_name\":{},\"helpfulness\":{helpfulness},\"photos\":[{}]}}",
            s(summary),
            s(body),
            s(date),
            s(name),
            photos.join(",")
        )
    }
}

#[tokio::test]
async fn a_post_in_either_form_is_listed_first_and_counted_in_meta() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 10, &["Fit", "Length", "Comfort"]).await;
    let app = app_without_cache(&db).await;
    let (fit, length, comfort) = (product.chars[0].0, product.chars[1].0, product.chars[2].0);

    let email1 = "first.reviewer@example.com";
    let email2 = "second.reviewer@example.org";
    let photos = [
        "https://images.example/zeta.jpg",
        "http://images.example/alpha.png",
    ];
    let (summary1, body1) = (
        "Runs \"true\" to size",
        "Comfortable.\nWould buy again, très bien \\o/",
    );
    let first = json!({
        "product_id": 10, "rating": 4, "summary": summary1, "body": body1, "recommend": true,
        "name": "ann", "email": email1, "photos": photos,
        "characteristics": {fit.to_string(): 4, length.to_string(): 1, comfort.to_string(): 3},
    });
    let reply1 = app.post_json("/reviews", &first).await;
    let id1 = created_id(&reply1);
    // The older form: product id from the path, none in the body; summary and photos omitted.
    let second = json!({
        "rating": 2, "body": "Too short for me.", "recommend": false, "name": "bob",
        "email": email2,
        "characteristics": {fit.to_string(): 4, length.to_string(): 1, comfort.to_string(): 4},
    });
    let reply2 = app.post_json("/reviews/10", &second).await;
    let id2 = created_id(&reply2);
    assert!(id2 > id1, "ids come from a sequence: {id1} then {id2}");

    let list = app.get_reply("/reviews?product_id=10&sort=newest").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.content_type, "application/json");
    let v: Value = serde_json::from_str(&list.body).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{}", list.body);
    let date1 = results[1]["date"].as_str().unwrap_or_default().to_string();
    let date2 = results[0]["date"].as_str().unwrap_or_default().to_string();
    for date in [&date1, &date2] {
        let ms = parse_date_ms(date)
            .unwrap_or_else(|| panic!("date {date:?} not in docs/api.md's format"));
        assert!(
            (now_ms() - ms).abs() < 5_000,
            "date {date} is not within a few seconds of now"
        );
    }
    let photo_ids: Vec<i64> = results[1]["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(photo_ids.len(), 2, "{}", list.body);
    assert!(
        photo_ids[0] < photo_ids[1],
        "photo ids ascending: {photo_ids:?}"
    );
    let expected_list = format!(
        "{{\"product\":\"10\",\"page\":0,\"count\":5,\"results\":[{},{}]}}",
        ReviewDoc {
            id: id2,
            rating: 2,
            summary: "",
            recommend: false,
            body: "Too short for me.",
            date: &date2,
            name: "bob",
            helpfulness: 0,
            photos: &[],
        }
        .json(),
        ReviewDoc {
            id: id1,
            rating: 4,
            summary: summary1,
            recommend: true,
            body: body1,
            date: &date1,
            name: "ann",
            helpfulness: 0,
            photos: &[(photo_ids[0], photos[0]), (photo_ids[1], photos[1])],
        }
        .json(),
    );
    assert_eq!(list.body, expected_list);
    assert_eq!(
        app.get_ok("/reviews/10/list?sort=newest").await,
        list.body,
        "both route forms answer the same body"
    );

    // docs/api.md's own examples of PostgreSQL's division rule, checked against the oracle the
    // expected meta uses.
    assert_eq!(average(&[4, 4]).as_deref(), Some("4.0000000000000000"));
    assert_eq!(average(&[1, 1]).as_deref(), Some("1.00000000000000000000"));
    let posted = [
        Posted {
            review_id: id1,
            rating: 4,
            recommend: true,
            values: vec![4, 1, 3],
        },
        Posted {
            review_id: id2,
            rating: 2,
            recommend: false,
            values: vec![4, 1, 4],
        },
    ];
    let meta = app.get_reply("/reviews/meta?product_id=10").await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.content_type, "application/json");
    let expected = format!(
        "{{\"product_id\":\"10\",\"ratings\":{{\"2\":\"1\",\"4\":\"1\"}},\"recommended\":{{\"false\":\"1\",\"true\":\"1\"}},\"characteristics\":{{\"Fit\":{{\"id\":{fit},\"value\":\"4.0000000000000000\"}},\"Length\":{{\"id\":{length},\"value\":\"1.00000000000000000000\"}},\"Comfort\":{{\"id\":{comfort},\"value\":\"3.5000000000000000\"}}}}}}"
    );
    assert_eq!(meta.body, expected);
    assert_eq!(meta.body, expected_meta(&product, &posted).await);
    assert_eq!(app.get_ok("/reviews/10/meta").await, meta.body);

    for body in [&reply1.body, &reply2.body, &list.body, &meta.body] {
        for secret in [email1, email2, "email", "reported"] {
            assert!(!body.contains(secret), "{secret:?} leaked in {body}");
        }
    }
}

#[tokio::test]
async fn a_product_without_characteristics_takes_reviews_with_empty_characteristics() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // No characteristics and no product_meta row: the first review creates the row.
    let product = seed_product(&client, 22, &[]).await;
    let app = app_without_cache(&db).await;
    assert_eq!(
        app.get_ok("/reviews/meta?product_id=22").await,
        r#"{"product_id":"22","ratings":{},"recommended":{},"characteristics":{}}"#
    );
    let a = post_review(&app, &product, 5, true, &[]).await;
    let b = post_review(&app, &product, 5, false, &[]).await;
    assert_eq!(
        app.get_ok("/reviews/meta?product_id=22").await,
        r#"{"product_id":"22","ratings":{"5":"2"},"recommended":{"false":"1","true":"1"},"characteristics":{}}"#
    );
    assert_eq!(
        listed_ids(&app.get_ok("/reviews?product_id=22&sort=newest").await),
        vec![i64::from(b.review_id), i64::from(a.review_id)]
    );
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!((found, total), (vec![], 0));
}

/// A path, a body and the exact answer docs/api.md prescribes for it.
struct Rejection {
    path: String,
    body: Vec<u8>,
    status: u16,
    text: &'static str,
}

#[tokio::test]
async fn every_invalid_post_is_rejected_with_its_text_and_changes_nothing() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 20, &["Size", "Width"]).await;
    let other = seed_product(&client, 21, &["Quality"]).await;
    let bare = seed_product(&client, 22, &[]).await;
    let app = app_without_cache(&db).await;
    let (a, b) = (
        product.chars[0].0.to_string(),
        product.chars[1].0.to_string(),
    );
    let c = other.chars[0].0.to_string();

    let valid = review_body(&product, 3, true, &[3, 4]);
    // The base body is valid (so each case below differs from a valid body by its one fault), and
    // the sequences have been used once (so a stray nextval would show in the snapshot).
    created_id(&app.post_json("/reviews", &valid).await);
    created_id(
        &app.post_json(
            "/reviews",
            &json!({"product_id": 20, "rating": 1, "body": "x", "recommend": false, "name": "n",
                    "email": "n@e.io", "photos": ["https://p.example/1.jpg"],
                    "characteristics": {a.clone(): 1, b.clone(): 1}}),
        )
        .await,
    );
    let before = snapshot(&client, true).await;

    let mut cases: Vec<Rejection> = Vec::new();
    let mut field = |name: &str, value: Option<Value>, text: &'static str| {
        let mut body = valid.clone();
        match value {
            Some(value) => body[name] = value,
            None => {
                body.as_object_mut().unwrap().remove(name);
            }
        }
        cases.push(Rejection {
            path: "/reviews".into(),
            body: body.to_string().into_bytes(),
            status: 422,
            text,
        });
    };
    let long = |n: usize| json!("x".repeat(n));
    let pid = "Error: invalid product_id provided";
    for v in [
        json!("20"),
        json!(0),
        json!(-1),
        json!(2_147_483_648u64),
        json!(20.5),
        json!(null),
    ] {
        field("product_id", Some(v), pid);
    }
    field("product_id", None, pid);
    let rating = "Error: invalid rating provided";
    for v in [
        json!("5"),
        json!(4.5),
        json!(0),
        json!(6),
        json!(null),
        json!(true),
    ] {
        field("rating", Some(v), rating);
    }
    field("rating", None, rating);
    let summary = "Error: invalid summary provided";
    for v in [json!(5), long(61), json!(["a"])] {
        field("summary", Some(v), summary);
    }
    let body = "Error: invalid body provided";
    for v in [json!(""), long(1001), json!(5), json!(null)] {
        field("body", Some(v), body);
    }
    field("body", None, body);
    let recommend = "Error: invalid recommend provided";
    for v in [json!("true"), json!(1), json!(null)] {
        field("recommend", Some(v), recommend);
    }
    field("recommend", None, recommend);
    let name = "Error: invalid name provided";
    for v in [json!(""), long(61), json!(5)] {
        field("name", Some(v), name);
    }
    field("name", None, name);
    let email = "Error: invalid email provided";
    for v in [
        json!("no-at.example.com"),
        json!("a@b@example.com"),
        json!("a@localhost"),
        json!(format!("{}@example.com", "a".repeat(49))),
        json!(5),
    ] {
        field("email", Some(v), email);
    }
    field("email", None, email);
    let photos = "Error: invalid photos provided";
    for v in [
        json!("https://p.example/a.jpg"),
        json!(["ftp://p.example/a.jpg"]),
        json!([5]),
        json!([format!("https://p.example/{}", "a".repeat(2048))]),
        json!((1..=6)
            .map(|i| format!("https://p.example/{i}.jpg"))
            .collect::<Vec<_>>()),
    ] {
        field("photos", Some(v), photos);
    }
    let chars = "Error: invalid characteristics provided";
    for v in [
        json!({}),                                         // none of the product's
        json!({a.clone(): 3}),                             // one missing
        json!({a.clone(): 3, b.clone(): 4, c.clone(): 2}), // an extra one, another product's
        json!({a.clone(): 3, c.clone(): 2}),               // another product's instead of one
        json!({a.clone(): 3, b.clone(): 4, "999999": 2}),  // an unknown extra one
        json!({a.clone(): 3, format!("0{a}"): 3}),         // the same one twice
        json!({a.clone(): 0, b.clone(): 4}),
        json!({a.clone(): 6, b.clone(): 4}),
        json!({a.clone(): "3", b.clone(): 4}),
        json!({a.clone(): 3.5, b.clone(): 4}),
        json!({a.clone(): null, b.clone(): 4}),
        json!({"x": 3, b.clone(): 4}),
        json!([3, 4]),
        json!(null),
    ] {
        field("characteristics", Some(v), chars);
    }
    field("characteristics", None, chars);
    // A product without characteristics must be rated with `{}`; an unknown product has none.
    for product_id in [bare.id, 999] {
        let mut body = valid.clone();
        body["product_id"] = json!(product_id);
        body["characteristics"] = json!({a.clone(): 3});
        cases.push(Rejection {
            path: "/reviews".into(),
            body: body.to_string().into_bytes(),
            status: 422,
            text: chars,
        });
    }
    // The older form takes the product id from the path.
    let mut without_id = valid.clone();
    without_id.as_object_mut().unwrap().remove("product_id");
    for path in [
        "/reviews/abc",
        "/reviews/0",
        "/reviews/-1",
        "/reviews/2147483648",
    ] {
        cases.push(Rejection {
            path: path.into(),
            body: without_id.to_string().into_bytes(),
            status: 422,
            text: pid,
        });
    }
    let mut wrong_chars = without_id.clone();
    wrong_chars["characteristics"] = json!({c.clone(): 3});
    cases.push(Rejection {
        path: "/reviews/20".into(),
        body: wrong_chars.to_string().into_bytes(),
        status: 422,
        text: chars,
    });
    let malformed = "Error: malformed JSON body";
    for raw in [
        "",
        "not json",
        "[1,2]",
        "\"text\"",
        "42",
        "null",
        "{\"rating\":",
        "{} {}",
    ] {
        for path in ["/reviews", "/reviews/20"] {
            cases.push(Rejection {
                path: path.into(),
                body: raw.as_bytes().to_vec(),
                status: 400,
                text: malformed,
            });
        }
    }
    // Over 64 KiB: a valid review padded with whitespace to 64 KiB + 1 byte.
    let mut big = valid.to_string().into_bytes();
    big.resize(64 * 1024 + 1, b' ');
    cases.push(Rejection {
        path: "/reviews".into(),
        body: big,
        status: 413,
        text: "",
    });

    for case in &cases {
        let reply = app.post_bytes(&case.path, case.body.clone()).await;
        let shown = String::from_utf8_lossy(&case.body[..case.body.len().min(200)]).into_owned();
        assert_eq!(
            reply.status, case.status,
            "POST {} {shown}: {}",
            case.path, reply.body
        );
        assert!(
            reply.content_type.starts_with("text/plain"),
            "POST {} {shown}: content type {}",
            case.path,
            reply.content_type
        );
        if case.status == 413 {
            // docs/api.md fixes the status; the text only has to be one `Error: ` line.
            assert!(
                reply.body.starts_with("Error: ") && !reply.body.contains('\n'),
                "413 body {:?}",
                reply.body
            );
        } else {
            assert_eq!(reply.body, case.text, "POST {} {shown}", case.path);
        }
    }
    assert_eq!(
        snapshot(&client, true).await,
        before,
        "a rejected request changes nothing (tables, meta, sequences)"
    );
}

#[tokio::test]
async fn the_body_limit_is_64_kib() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 5, &["Fit"]).await;
    let app = app_without_cache(&db).await;
    let mut body = review_body(&product, 4, true, &[2])
        .to_string()
        .into_bytes();
    body.resize(64 * 1024, b' ');
    created_id(&app.post_bytes("/reviews", body.clone()).await);
    body.push(b' ');
    assert_eq!(app.post_bytes("/reviews", body.clone()).await.status, 413);

    // Without Content-Length (chunked), the limit holds while reading.
    let before = snapshot(&client, true).await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let mut request = b"POST /reviews HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in body.chunks(8 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all; the answer is what counts.
    let _ = socket.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    contract::check_raw("POST", "/reviews", &answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "chunked body over 64 KiB: {answer}"
    );
    assert_eq!(snapshot(&client, true).await, before);
}

#[tokio::test]
async fn helpful_and_report_in_both_forms() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 30, &["Fit", "Quality"]).await;
    let app = app_without_cache(&db).await;
    let r1 = post_review(&app, &product, 5, true, &[5, 4]).await;
    let r2 = post_review(&app, &product, 2, false, &[1, 2]).await;
    let r3 = post_review(&app, &product, 4, true, &[3, 3]).await;
    let ids = |v: &[&Posted]| v.iter().map(|r| i64::from(r.review_id)).collect::<Vec<_>>();
    let order = |sort: &'static str| {
        let app = &app;
        async move {
            listed_ids(
                &app.get_ok(&format!("/reviews?product_id=30&sort={sort}"))
                    .await,
            )
        }
    };
    for sort in ["newest", "helpful", "relevant"] {
        assert_eq!(
            order(sort).await,
            ids(&[&r3, &r2, &r1]),
            "{sort} before votes"
        );
    }

    // r1 is 40 days older, so that `relevant` (each vote worth 30 days) differs from `helpful`.
    client
        .execute(
            "UPDATE reviews SET date_ms = date_ms - 40 * 86400000::bigint WHERE id = $1",
            &[&r1.review_id],
        )
        .await
        .unwrap();
    for path in [
        format!("/reviews/{}/helpful", r1.review_id),
        format!("/reviews/helpful/{}", r1.review_id),
        format!("/reviews/helpful/{}", r2.review_id),
    ] {
        let reply = app.put(&path).await;
        assert_eq!((reply.status, reply.body.as_str()), (204, ""), "PUT {path}");
    }
    // helpful: 2, 1, 0 votes. relevant: r2 = now + 30 d, r1 = now - 40 d + 60 d, r3 = now.
    assert_eq!(order("helpful").await, ids(&[&r1, &r2, &r3]));
    assert_eq!(order("relevant").await, ids(&[&r2, &r1, &r3]));
    assert_eq!(order("newest").await, ids(&[&r3, &r2, &r1]));
    let list: Value =
        serde_json::from_str(&app.get_ok("/reviews?product_id=30&sort=helpful").await).unwrap();
    let helpfulness: Vec<i64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["helpfulness"].as_i64().unwrap())
        .collect();
    assert_eq!(helpfulness, vec![2, 1, 0]);

    // Errors, in all four routes.
    for route in [
        "/reviews/{}/helpful",
        "/reviews/helpful/{}",
        "/reviews/{}/report",
        "/reviews/report/{}",
    ] {
        for bad in ["abc", "0", "-1", "1.5", "99999999999"] {
            let reply = app.put(&route.replace("{}", bad)).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (422, "Error: invalid review_id provided"),
                "{route} {bad}"
            );
        }
        for unknown in ["999999", "2147483647"] {
            let reply = app.put(&route.replace("{}", unknown)).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (404, "Error: review not found"),
                "{route} {unknown}"
            );
        }
    }
    let meta_all = expected_meta(&product, &[r1.clone(), r2.clone(), r3.clone()]).await;
    assert_eq!(app.get_ok("/reviews/meta?product_id=30").await, meta_all);

    // Report r2: gone from every order and from meta; a second report changes nothing more.
    let reply = app.put(&format!("/reviews/{}/report", r2.review_id)).await;
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
    let meta_after = expected_meta(&product, &[r1.clone(), r3.clone()]).await;
    assert_ne!(meta_after, meta_all);
    assert_eq!(app.get_ok("/reviews/meta?product_id=30").await, meta_after);
    assert_eq!(order("helpful").await, ids(&[&r1, &r3]));
    assert_eq!(order("relevant").await, ids(&[&r1, &r3]));
    assert_eq!(order("newest").await, ids(&[&r3, &r1]));
    let reply = app.put(&format!("/reviews/report/{}", r2.review_id)).await;
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
    assert_eq!(app.get_ok("/reviews/30/meta").await, meta_after);
    // The older form reports too.
    let reply = app.put(&format!("/reviews/report/{}", r3.review_id)).await;
    assert_eq!((reply.status, reply.body.as_str()), (204, ""));
    assert_eq!(
        app.get_ok("/reviews/meta?product_id=30").await,
        expected_meta(&product, std::slice::from_ref(&r1)).await
    );
    assert_eq!(order("newest").await, ids(&[&r1]));
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!((found, total), (vec![], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_helpful_votes_all_count() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 40, &["Fit"]).await;
    let app = app_without_cache(&db).await;
    let review = post_review(&app, &product, 3, true, &[3]).await;
    let path = |i: usize| {
        if i.is_multiple_of(2) {
            format!("/reviews/{}/helpful", review.review_id)
        } else {
            format!("/reviews/helpful/{}", review.review_id)
        }
    };
    let replies = join_all((0..100).map(|i| {
        let path = path(i);
        let app = &app;
        async move { app.put(&path).await }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 204), "{replies:?}");
    let list: Value = serde_json::from_str(&app.get_ok("/reviews?product_id=40").await).unwrap();
    assert_eq!(list["results"][0]["helpfulness"], json!(100));
    let stored: i32 = client
        .query_one(
            "SELECT helpfulness FROM reviews WHERE id = $1",
            &[&review.review_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_and_reports_keep_meta_exact() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 50, &["Fit", "Length"]).await;
    let app = app_without_cache(&db).await;
    // Each task posts; every third then reports its review (every sixth twice at once) while the
    // other posts are still running.
    let tasks = (0..50).map(|i: i32| {
        let (app, product) = (&app, &product);
        async move {
            let rating = i % 5 + 1;
            let recommend = i % 3 != 0;
            let values = [(i * 7) % 5 + 1, (i * 3) % 5 + 1];
            let posted = post_review(app, product, rating, recommend, &values).await;
            let reported = i % 3 == 0;
            if reported {
                let path = format!("/reviews/{}/report", posted.review_id);
                let times = if i % 6 == 0 { 2 } else { 1 };
                let replies = join_all((0..times).map(|_| app.put(&path))).await;
                for reply in replies {
                    assert_eq!(reply.status, 204, "{path}: {}", reply.body);
                }
            }
            (posted, reported)
        }
    });
    let outcome = join_all(tasks).await;
    let visible: Vec<Posted> = outcome
        .iter()
        .filter(|(_, reported)| !reported)
        .map(|(p, _)| p.clone())
        .collect();
    let reported = outcome.len() - visible.len();
    assert_eq!((outcome.len(), reported), (50, 17));

    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!(
        (found, total),
        (vec![], 0),
        "meta differs from the raw tables"
    );
    let meta = app.get_ok("/reviews/meta?product_id=50").await;
    assert_eq!(meta, expected_meta(&product, &visible).await);
    let counted: u64 = serde_json::from_str::<Value>(&meta).unwrap()["ratings"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 33);
    let mut listed = listed_ids(&app.get_ok("/reviews?product_id=50&count=1000").await);
    listed.sort();
    let mut want: Vec<i64> = visible.iter().map(|p| i64::from(p.review_id)).collect();
    want.sort();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn a_failing_characteristic_insert_leaves_nothing_behind() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 60, &["Fit", "Width"]).await;
    let app = app_without_cache(&db).await;
    post_review(&app, &product, 4, true, &[2, 3]).await;
    let topology = reviews_api::db::Topology::of(&client).await.unwrap();
    let stmt = &topology.writes().post_review;
    let prepared = client.prepare_typed(stmt.sql, stmt.params).await.unwrap();
    let ids: Vec<i32> = product.chars.iter().map(|c| c.0).collect();
    let photos = vec!["https://p.example/1.jpg".to_string()];
    let run = |values: Vec<i32>| {
        let (client, prepared, ids, photos) = (&client, &prepared, &ids, &photos);
        async move {
            client
                .query_opt(
                    prepared,
                    &[
                        &60i32,
                        &5i32,
                        &"summary",
                        &"body",
                        &true,
                        &"name",
                        &"e@example.com",
                        photos,
                        ids,
                        &values,
                    ],
                )
                .await
        }
    };
    let before = snapshot(&client, false).await;
    // 9 passes the statement's own check (it only matches ids) and fails in the insert.
    let error = run(vec![3, 9]).await.expect_err("a value of 9 must fail");
    let db_error = error.as_db_error().expect("the database's own error");
    match topology {
        reviews_api::db::Topology::Plain => assert_eq!(
            db_error.code(),
            &tokio_postgres::error::SqlState::CHECK_VIOLATION,
            "{error}"
        ),
        // Citus reports a node's error in a COPY to a shard as an internal error (XX000).
        reviews_api::db::Topology::Citus => assert!(
            db_error.message().contains("violates check constraint"),
            "{error}"
        ),
    }
    assert_eq!(
        snapshot(&client, false).await,
        before,
        "no review, photo, value or meta change"
    );
    // The same call with valid values does write: the snapshot would have seen it.
    let row = run(vec![3, 4]).await.unwrap().expect("a review id");
    assert!(row.get::<_, Option<i32>>(0).is_some());
    assert_ne!(snapshot(&client, false).await, before);
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!((found, total), (vec![], 0));
}

#[tokio::test]
async fn verify_finds_meta_altered_by_hand() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let product = seed_product(&client, 70, &["Fit"]).await;
    let untouched = seed_product(&client, 71, &["Fit"]).await;
    let app = app_without_cache(&db).await;
    post_review(&app, &product, 4, true, &[4]).await;
    post_review(&app, &product, 2, false, &[1]).await;
    post_review(&app, &untouched, 3, true, &[3]).await;

    assert_eq!(
        reviews_api::verify::differences(&db.url, 10).await.unwrap(),
        (vec![], 0)
    );
    let clean = run_verify(&db.url).await;
    assert!(
        clean.status.success(),
        "verify on an exact database: {clean:?}"
    );

    let meta_before = app.get_ok("/reviews/meta?product_id=70").await;
    client
        .execute(
            "UPDATE product_meta SET ratings[3] = ratings[3] + 1 WHERE product_id = 70",
            &[],
        )
        .await
        .unwrap();
    let meta_altered = app.get_ok("/reviews/meta?product_id=70").await;
    assert_ne!(meta_altered, meta_before);
    let (found, total) = reviews_api::verify::differences(&db.url, 10).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(
        found,
        vec![reviews_api::verify::Difference {
            product_id: 70,
            expected: meta_before,
            actual: meta_altered,
        }]
    );
    let dirty = run_verify(&db.url).await;
    assert!(
        !dirty.status.success(),
        "verify on an altered database: {dirty:?}"
    );
    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert!(stdout.contains("product 70"), "{stdout}");
    assert!(!stdout.contains("product 71"), "{stdout}");
}
