//! HTTP requests and their answers as plain values, metrics, polling.

use super::app::TestApp;
use super::contract;
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};

/// Longer than any answer docs/api.md allows: a request still unanswered by then is a hang.
pub const HANG: Duration = Duration::from_secs(15);

/// One HTTP answer, read completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
    /// The body's size as it came (compressed, when it was).
    pub wire_bytes: usize,
}

impl TestApp {
    /// A request to a route of openapi.yaml; the answer must be one the description documents
    /// for it (helpers/contract.rs), and a route it lacks fails the test.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        self.checked(contract::check, method, path, body, &[]).await
    }

    /// [`TestApp::call`] without a body, with these request headers.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.checked(contract::check, method, path, None, headers)
            .await
    }

    /// A request that deliberately misses the description's routes: a path it does not list (the
    /// answer must be its `NotFound`) or a listed path with another method (`MethodNotAllowed`).
    /// Only for tests of unknown routes and wrong methods.
    pub async fn call_unlisted(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.checked(contract::check_unlisted, method, path, body, &[])
            .await
    }

    async fn checked(
        &self,
        check: fn(&str, &str, u16, &reqwest::header::HeaderMap, &[u8]),
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let reply = self.send(method.clone(), path, body, headers).await;
        check(
            method.as_str(),
            path,
            reply.status,
            &reply.headers,
            reply.body.as_bytes(),
        );
        reply
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let answer = async {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let content_type = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let wire = response.bytes().await.expect("response body");
            // The body as text, decoded when it came compressed; its size as it came.
            let body = match headers.get("content-encoding").map(|v| v.as_bytes()) {
                Some(b"gzip") => contract::gunzip(&wire),
                _ => wire.to_vec(),
            };
            Reply {
                status,
                content_type,
                body: String::from_utf8_lossy(&body).into_owned(),
                headers,
                wire_bytes: wire.len(),
            }
        };
        tokio::time::timeout(HANG, answer)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {HANG:?}"))
    }

    pub async fn get_reply(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// The body of a GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> String {
        let reply = self.get_reply(path).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.body
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_bytes(path, body.to_string().into_bytes()).await
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Reply {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str) -> Reply {
        self.call(reqwest::Method::PUT, path, None).await
    }

    /// A sample of `/metrics` without labels (`name value`).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get_ok("/metrics").await;
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
    }

    /// Waits until the cache listener reports `listening`; false when it did not within `limit`.
    pub async fn wait_listening(&self, listening: bool, limit: Duration) -> bool {
        let wanted = if listening { 1.0 } else { 0.0 };
        poll(limit, Duration::from_millis(50), || async {
            self.metric("reviews_cache_listening").await == wanted
        })
        .await
    }
}

/// Calls `check` every `every` until it is true (true) or `limit` has passed (false).
pub async fn poll<F, Fut>(limit: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// The new review id of a 201 answer, which must be exactly `{"review_id":N}`.
pub fn created_id(reply: &Reply) -> i32 {
    assert_eq!(reply.status, 201, "POST: {}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let id = reply
        .body
        .strip_prefix("{\"review_id\":")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or_else(|| panic!("not {{\"review_id\":N}}: {}", reply.body));
    assert!(id >= 1, "review id {id}");
    id
}

/// The review ids of a list document, in order.
pub fn listed_ids(list: &str) -> Vec<i64> {
    let v: Value = serde_json::from_str(list).expect("list is JSON");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["review_id"].as_i64().expect("review_id"))
        .collect()
}
