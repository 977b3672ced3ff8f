//! The API's description and its page: GET /openapi.yaml, /openapi.json, /docs and Swagger UI's
//! files over plain HTTP.

use crate::helpers::{spawn_app, TestApp, TestDb};
use serde_json::Value;
use std::collections::BTreeSet;

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
            let reply = app.call(method.clone(), path, None).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (405, "Error: method not allowed"),
                "{method} {path}"
            );
        }
    }
    let reply = app.get_reply("/docs/nothing.js").await;
    assert_eq!(reply.status, 404);
}
