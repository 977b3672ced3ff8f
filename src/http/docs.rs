//! The API's description, embedded in the binary: GET /openapi.yaml (the file at the top of the
//! repository, as it is) and GET /openapi.json (the same description converted to JSON once, on
//! first request).

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use std::sync::OnceLock;

/// The description, exactly as written.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The description changes with the binary and is small: revalidated on every load.
const NO_CACHE: &str = "no-cache";

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

pub async fn openapi_json_route() -> HttpResponse {
    match openapi_json() {
        Ok(json) => embedded("application/json", NO_CACHE, json.as_bytes()),
        Err(e) => {
            // Never expected: a unit test converts the embedded file. Logged on each request,
            // since the conversion ran once and so would be logged only once otherwise.
            log::error!("500 GET /openapi.json: {e}");
            HttpResponse::build(StatusCode::INTERNAL_SERVER_ERROR)
                .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("Error: internal server error")
        }
    }
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
}
