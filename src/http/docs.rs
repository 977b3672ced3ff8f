//! The API's description and the page rendered from it, all embedded in the binary: GET
//! /openapi.yaml (the file at the top of the repository, as it is), GET /openapi.json (the same
//! description converted to JSON once, on first request), GET /docs (Swagger UI, whose files are
//! in docs/swagger-ui/ and are served from here: no request of the page leaves for a CDN).

use crate::error::ApiError;
use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::HttpResponse;
use std::sync::OnceLock;

/// The description, exactly as written.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

const PAGE: &str = include_str!("docs.html");
const INIT_JS: &str = include_str!("docs-init.js");
const BUNDLE_JS: &[u8] = include_bytes!("../../docs/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../docs/swagger-ui/swagger-ui.css");

/// The page and its script change with the binary and are small: revalidated on every load.
const NO_CACHE: &str = "no-cache";
/// Swagger UI's files: the page asks for them with the Swagger UI version in the query string
/// (`?v=5.35.0`), so a new version is a new URL and the old one may be kept for a year.
const LONG_CACHE: &str = "public, max-age=31536000, immutable";

/// The only origin the page may load from or send to (Swagger UI styles elements inline, and
/// shows images given as data: URLs).
const PAGE_CSP: &str = concat!(
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; ",
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
);

/// The description as JSON, mapping keys in the YAML's order; an error text if it is not YAML.
pub fn openapi_json() -> Result<&'static str, &'static str> {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_norway::from_str::<serde_norway::Value>(OPENAPI_YAML)
            .map_err(|e| e.to_string())
            .and_then(|value| serde_json::to_string(&value).map_err(|e| e.to_string()))
            .map_err(|e| format!("openapi.yaml cannot be converted to JSON: {e}"))
    })
    .as_deref()
    .map_err(String::as_str)
}

fn embedded(content_type: &'static str, cache: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static(cache)))
        .body(body)
}

pub async fn openapi_yaml() -> HttpResponse {
    embedded("application/yaml", NO_CACHE, OPENAPI_YAML.as_bytes())
}

/// Never a 500 in practice: a unit test converts the embedded file.
pub async fn openapi_json_route() -> Result<HttpResponse, ApiError> {
    let json = openapi_json().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(embedded("application/json", NO_CACHE, json.as_bytes()))
}

pub async fn page() -> HttpResponse {
    let mut response = embedded("text/html; charset=utf-8", NO_CACHE, PAGE.as_bytes());
    response.headers_mut().insert(
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}

pub async fn init_js() -> HttpResponse {
    embedded(
        "text/javascript; charset=utf-8",
        NO_CACHE,
        INIT_JS.as_bytes(),
    )
}

pub async fn bundle_js() -> HttpResponse {
    embedded("text/javascript; charset=utf-8", LONG_CACHE, BUNDLE_JS)
}

pub async fn css() -> HttpResponse {
    embedded("text/css; charset=utf-8", LONG_CACHE, CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_description_converts_to_json() {
        let json = openapi_json().expect("openapi.yaml converts");
        let value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        let version = value["openapi"].as_str().expect("an openapi version");
        assert!(version.starts_with("3.1."), "openapi: {version}");
    }

    #[test]
    fn the_page_asks_for_the_embedded_swagger_ui_version() {
        let package = include_str!("../../docs/swagger-ui/README.md");
        let version = package
            .split("swagger-ui-dist@")
            .nth(1)
            .and_then(|rest| {
                rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .next()
            })
            .expect("docs/swagger-ui/README.md names swagger-ui-dist@VERSION");
        let version = version.trim_end_matches('.');
        for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
            let url = format!("/docs/{asset}?v={version}");
            assert!(PAGE.contains(&url), "docs.html should load {url}");
        }
    }
}
