//! The API's description and its page: GET /openapi.yaml, /openapi.json, /docs and Swagger UI's
//! files over plain HTTP; then the page itself in headless Chromium driven through chromedriver
//! (WebDriver): every route of docs/api.md is listed, and one "try it out" call answers from
//! seeded data.

use crate::helpers::app::{spawn_app, temp_dir, TestApp, TestDb};
use crate::helpers::seed::{post_review, seed_product};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");
const API_MD: &str = include_str!("../../docs/api.md");

/// Every route of docs/api.md (both forms of its table, the operations routes, and the
/// description's own), written out here so that the description cannot silently drop one.
const API_MD_ROUTES: &[(&str, &str)] = &[
    ("GET", "/reviews"),
    ("GET", "/reviews/{product_id}/list"),
    ("GET", "/reviews/meta"),
    ("GET", "/reviews/{product_id}/meta"),
    ("POST", "/reviews"),
    ("POST", "/reviews/{product_id}"),
    ("PUT", "/reviews/{review_id}/helpful"),
    ("PUT", "/reviews/helpful/{review_id}"),
    ("PUT", "/reviews/{review_id}/report"),
    ("PUT", "/reviews/report/{review_id}"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/openapi.yaml"),
    ("GET", "/docs"),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The operations of openapi.yaml as (METHOD, path), in the file's order.
fn described_operations() -> Vec<(String, String)> {
    let doc: serde_norway::Value = serde_norway::from_str(OPENAPI_YAML).expect("openapi.yaml");
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_mapping())
        .expect("openapi.yaml has paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        let item = item.as_mapping().expect("a path item is a mapping");
        for (key, _) in item {
            let key = key.as_str().unwrap_or("");
            if HTTP_METHODS.contains(&key) {
                operations.push((key.to_uppercase(), path.to_string()));
            }
        }
    }
    operations
}

fn api_md_routes() -> BTreeSet<(String, String)> {
    API_MD_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

#[test]
fn the_hard_coded_routes_are_docs_api_md_s() {
    // docs/api.md writes `:name` where OpenAPI writes `{name}`.
    for (method, path) in API_MD_ROUTES {
        let written = path.replace('{', ":").replace('}', "");
        let route = format!("`{method} {written}");
        assert!(API_MD.contains(&route), "docs/api.md has no {route}`");
    }
}

#[test]
fn the_description_has_every_route_of_docs_api_md() {
    let described: BTreeSet<_> = described_operations().into_iter().collect();
    let missing: Vec<_> = api_md_routes().difference(&described).cloned().collect();
    assert!(
        missing.is_empty(),
        "openapi.yaml does not describe {missing:?}"
    );
}

async fn app() -> (TestDb, TestApp) {
    let db = TestDb::new().await;
    let app = spawn_app(db.settings()).await;
    (db, app)
}

/// Status, Content-Type, Cache-Control and body of a GET.
async fn fetch(app: &TestApp, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = app.get(path).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body").to_vec();
    (status, content_type, cache, body)
}

#[tokio::test]
async fn the_description_and_the_page_are_served() {
    let (_db, app) = app().await;

    // The YAML, byte for byte; with or without a trailing slash.
    for path in ["/openapi.yaml", "/openapi.yaml/"] {
        let (status, content_type, _, body) = fetch(&app, path).await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/yaml"),
            "{path}"
        );
        assert_eq!(body, OPENAPI_YAML.as_bytes(), "{path}");
    }

    // The JSON: the YAML parsed, nothing more or less; an OpenAPI 3.1 document.
    let yaml: Value = serde_norway::from_str(OPENAPI_YAML).expect("openapi.yaml parses");
    for path in ["/openapi.json", "/openapi.json/"] {
        let (status, content_type, _, body) = fetch(&app, path).await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "{path}"
        );
        let json: Value = serde_json::from_slice(&body).expect("/openapi.json is JSON");
        assert_eq!(json, yaml, "{path} is openapi.yaml");
        let version = json["openapi"].as_str().expect("openapi: a string");
        let minor = version.strip_prefix("3.1.").expect("openapi: 3.1.x");
        assert!(
            !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()),
            "openapi: {version}"
        );
        // Paths in the YAML's order (Swagger UI lists them in the document's order).
        let reread: serde_norway::Value = serde_norway::from_slice(&body).expect("JSON is YAML");
        let order = |doc: &serde_norway::Value| -> Vec<String> {
            doc["paths"]
                .as_mapping()
                .expect("paths")
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        };
        let original: serde_norway::Value = serde_norway::from_str(OPENAPI_YAML).unwrap();
        assert_eq!(order(&reread), order(&original), "{path}: paths reordered");
    }

    // The page: HTML loading only this server's files.
    for path in ["/docs", "/docs/"] {
        let (status, content_type, cache, body) = fetch(&app, path).await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(cache, "no-cache", "{path}");
        let html = String::from_utf8(body).expect("UTF-8 page");
        assert!(html.contains("id=\"swagger-ui\""), "{html}");
        for attr in ["src=\"", "href=\""] {
            for url in html.split(attr).skip(1) {
                let url = &url[..url.find('"').expect("closing quote")];
                assert!(url.starts_with('/'), "{path} loads {url} from another host");
                let (status, _, _, _) = fetch(&app, url).await;
                assert_eq!(status, 200, "{path} loads {url}");
            }
        }
    }

    // Swagger UI's files, cached for long; the page's own script, revalidated.
    let assets = [
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            true,
        ),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8", true),
        ("/docs/init.js", "text/javascript; charset=utf-8", false),
    ];
    for (path, wanted, long) in assets {
        let (status, content_type, cache, body) = fetch(&app, path).await;
        assert_eq!((status, content_type.as_str()), (200, wanted), "{path}");
        assert!(!body.is_empty(), "{path}");
        if long {
            assert!(cache.contains("max-age=31536000"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
    }
    let (_, _, _, bundle) = fetch(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        bundle,
        std::fs::read("docs/swagger-ui/swagger-ui-bundle.js").unwrap()
    );

    // Wrong methods: 405 as on every resource.
    for path in [
        "/openapi.json",
        "/openapi.yaml",
        "/docs",
        "/docs/swagger-ui.css",
    ] {
        for method in [reqwest::Method::POST, reqwest::Method::PUT] {
            let reply = app.call_unlisted(method.clone(), path, None).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (405, "Error: method not allowed"),
                "{method} {path}"
            );
        }
    }
    let reply = app
        .call_unlisted(reqwest::Method::GET, "/docs/nothing.js", None)
        .await;
    assert_eq!(reply.status, 404);
}

// ---------------------------------------------------------------------------------------------
// The page in a browser.

/// `name` on PATH, or a failure that says how to install it: never a silent skip.
fn executable(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|file| file.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: the /docs browser test needs Chromium and its WebDriver. \
             Install them with `apt-get install chromium chromium-driver`."
        )
    })
}

/// A chromedriver listening on a free port; killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let binary = executable("chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let up = eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(address).await.ok()
        })
        .await;
        assert!(up.is_some(), "chromedriver did not listen on {port}");
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `probe` every 100 ms until it gives Some, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Opens the page in a new headless Chromium session, runs `check`, and always closes the
/// session (and so the browser) before the result, or the failure, is handed on.
async fn with_browser<F, Fut>(check: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let chromium = executable("chromium");
    let driver = ChromeDriver::start().await;
    let profile = temp_dir("chromium-profile");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1500",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver");
    let outcome = std::panic::AssertUnwindSafe(check(client.clone()))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The text of the first element matching `css`, once it satisfies `ready`.
async fn text_when(client: &Client, css: &str, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if ready(&last) {
                return last;
            }
        }
        assert!(
            start.elapsed() < PAGE_WAIT,
            "{css}: never ready; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operations the page lists, as (METHOD, path), read from its operation blocks.
async fn listed_operations(client: &Client) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for block in client
        .find_all(Locator::Css(".opblock"))
        .await
        .expect("blocks")
    {
        let method = block
            .find(Locator::Css(".opblock-summary-method"))
            .await
            .expect("an operation's method")
            .text()
            .await
            .expect("method text");
        let path = block
            .find(Locator::Css(".opblock-summary-path"))
            .await
            .expect("an operation's path");
        let path = match path.attr("data-path").await.expect("data-path") {
            Some(path) => path,
            None => path.text().await.expect("path text"),
        };
        operations.push((method.trim().to_uppercase(), path.trim().to_string()));
    }
    operations
}

#[tokio::test]
async fn the_docs_page_lists_every_route_and_tries_one_out() {
    let (db, app) = app().await;
    // Demo data: a product with two characteristics and two reviews.
    let product = seed_product(&db.client().await, 4242, &["Fit", "Length"]).await;
    post_review(&app, &product, 4, true, &[3, 4]).await;
    post_review(&app, &product, 5, false, &[2, 4]).await;
    let origin = app.address.clone();

    with_browser(|client| async move {
        client
            .goto(&format!("{origin}/docs"))
            .await
            .expect("open /docs");

        // Every operation of the description is rendered, and no other.
        let described = described_operations();
        let expected: BTreeSet<_> = described.iter().cloned().collect();
        assert_eq!(expected.len(), described.len(), "an operation twice");
        let listed = eventually(PAGE_WAIT, || async {
            let listed = listed_operations(&client).await;
            (listed.len() >= described.len()).then_some(listed)
        })
        .await
        .unwrap_or_else(|| panic!("/docs never listed {} operations", described.len()));
        let listed_set: BTreeSet<_> = listed.iter().cloned().collect();
        assert_eq!(
            listed_set.len(),
            listed.len(),
            "an operation listed twice: {listed:?}"
        );
        assert_eq!(
            listed_set, expected,
            "/docs lists other operations than openapi.yaml"
        );
        // Every route of docs/api.md among them.
        let missing: Vec<_> = api_md_routes().difference(&listed_set).cloned().collect();
        assert!(missing.is_empty(), "/docs does not list {missing:?}");

        // Try GET /reviews/meta out: expand it, enter the seeded product, execute.
        let block = client
            .find(Locator::Css("#operations-meta-getReviewsMeta"))
            .await
            .expect("the GET /reviews/meta block (tag meta, operationId getReviewsMeta)");
        block
            .find(Locator::Css(".opblock-summary-control"))
            .await
            .expect("its summary")
            .click()
            .await
            .expect("expand it");
        let find_in_block = |css: &'static str| {
            let block = block.clone();
            async move {
                eventually(PAGE_WAIT, || async {
                    block.find(Locator::Css(css)).await.ok()
                })
                .await
                .unwrap_or_else(|| panic!("no {css} in the GET /reviews/meta block"))
            }
        };
        // tryItOutEnabled: the form may already be open ("Cancel"); otherwise open it.
        let toggle = find_in_block(".try-out__btn").await;
        if toggle
            .text()
            .await
            .expect("toggle text")
            .contains("Try it out")
        {
            toggle.click().await.expect("Try it out");
        }
        let input = find_in_block(".parameters input[type=text]").await;
        // Replace what is there (the description's example) key by key, as a user would.
        let current = input
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default();
        let erase: String = std::iter::repeat_n('\u{e003}', current.chars().count()).collect();
        input.send_keys(&erase).await.expect("erase");
        input
            .send_keys(&product.id.to_string())
            .await
            .expect("type");
        find_in_block("button.execute")
            .await
            .click()
            .await
            .expect("Execute");

        let block_css = "#operations-meta-getReviewsMeta";
        let status = text_when(
            &client,
            &format!("{block_css} .live-responses-table tr.response .response-col_status"),
            |t| !t.trim().is_empty(),
        )
        .await;
        assert_eq!(status.trim(), "200", "the try-it-out call's status");
        let wanted = format!("\"product_id\": \"{}\"", product.id);
        let body = text_when(
            &client,
            &format!("{block_css} .live-responses-table tr.response .response-col_description pre"),
            |t| t.contains("product_id"),
        )
        .await;
        assert!(
            body.contains(&wanted),
            "response body {body:?} lacks {wanted}"
        );
        for part in [
            "\"4\": \"1\"",
            "\"5\": \"1\"",
            "\"Fit\"",
            "\"2.5000000000000000\"",
        ] {
            assert!(body.contains(part), "response body {body:?} lacks {part}");
        }
        // It went to the server of the page, not to a `servers` entry elsewhere.
        let request_url = text_when(&client, &format!("{block_css} .request-url pre"), |t| {
            !t.is_empty()
        })
        .await;
        assert_eq!(
            request_url.trim(),
            format!("{origin}/reviews/meta?product_id={}", product.id)
        );

        // Nothing the page loaded or sent left for another host.
        let urls = client
            .execute(
                "return performance.getEntriesByType('resource').map(e => e.name)",
                vec![],
            )
            .await
            .expect("the page's resources");
        let urls: Vec<String> = serde_json::from_value(urls).expect("a list of URLs");
        assert!(
            urls.iter().any(|u| u.contains("/openapi.json")),
            "resources: {urls:?}"
        );
        for url in &urls {
            assert!(
                url.starts_with(&format!("{origin}/")),
                "the page loaded {url}"
            );
        }

        // Nor did the page break its Content-Security-Policy (Chromium keeps the reports).
        let violations = client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const seen = [];
                 const observer = new ReportingObserver(
                     (reports) => seen.push(...reports), {types: ['csp-violation'], buffered: true});
                 observer.observe();
                 setTimeout(() => {
                     seen.push(...observer.takeRecords());
                     done(seen.map((r) => r.body.effectiveDirective + ' ' + r.body.blockedURL));
                 }, 200);",
                vec![],
            )
            .await
            .expect("the page's CSP reports");
        assert_eq!(violations, json!([]), "Content-Security-Policy violations");

        // A picture of the page with the call's result (DOCS_SCREENSHOT=docs/docs-page.png).
        if let Some(path) = std::env::var_os("DOCS_SCREENSHOT") {
            client
                .execute(
                    "arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -8);",
                    vec![serde_json::to_value(&block).expect("element ref")],
                )
                .await
                .expect("scroll");
            let png = client.screenshot().await.expect("screenshot");
            std::fs::write(Path::new(&path), png).expect("write the screenshot");
        }
    })
    .await;
}
