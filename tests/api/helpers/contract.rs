//! Every answer the tests receive, checked against openapi.yaml: the request's method and path
//! must be an operation of the description (a trailing slash is the same path), the status one of
//! its documented responses (or `NXX`, or `default`), the Content-Type one of that response's
//! content types (none, and an empty body, when it documents no content), and the body valid
//! against the schema of that content type, with the JSON Schema validator `jsonschema` (parsed
//! for `application/json` and `application/yaml`; the body as one string for any other type, so
//! `text/plain` errors meet their `const`/`enum`). Headers the response marks `required` must be present and valid.
//!
//! The helpers that talk HTTP to the app ([`TestApp::call`](super::app::TestApp),
//! `TestApp::get`) call [`check`] on every answer, so no test can forget it. A test that sends a
//! request to a route the description lacks on purpose (an unknown path, a wrong method) says so
//! with `TestApp::call_unlisted`, whose answer [`check_unlisted`] holds to the description's own
//! responses for those cases: `components/responses/NotFound` and `MethodNotAllowed` (with an
//! `Allow` listing exactly the methods the description gives the path). Any other request to an
//! undescribed route panics, naming the method and path: either the description is missing a
//! route the app serves, or the test meant `call_unlisted`.
//!
//! The description is parsed and its schemas compiled once per test binary.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

/// Routes the app serves that the description deliberately leaves out; answers to them are not
/// checked. Keep this list short and say why for each.
const UNDESCRIBED: &[(&str, &str)] = &[
    // Benchmark-only (bench/run): unless `server.bench_routes` is on (it is off by default) it
    // answers 404 `Error: not found` exactly like an unknown route, and it is no part of the API
    // of docs/api.md; describing it would advertise a benchmark knob to every client and on /docs.
    ("GET", "/bench/constant/{bytes}"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

struct Contract {
    /// openapi.yaml as JSON.
    doc: Value,
    /// (template, its segments) of every path of the description.
    paths: Vec<(String, Vec<String>)>,
    /// A validator for every schema of a response's content or header, by its JSON pointer.
    validators: HashMap<String, jsonschema::Validator>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc: Value = serde_norway::from_str(OPENAPI_YAML).expect("openapi.yaml parses");
        let paths = doc["paths"]
            .as_object()
            .expect("openapi.yaml has paths")
            .keys()
            .map(|t| (t.clone(), segments(t)))
            .collect();
        let mut contract = Contract {
            doc,
            paths,
            validators: HashMap::new(),
        };
        let mut responses = Vec::new();
        for (template, item) in contract.doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if let Some(map) = item[*method]["responses"].as_object() {
                    for status in map.keys() {
                        responses.push(format!(
                            "/paths/{}/{method}/responses/{status}",
                            escape(template)
                        ));
                    }
                }
            }
        }
        if let Some(map) = contract.doc["components"]["responses"].as_object() {
            for name in map.keys() {
                responses.push(format!("/components/responses/{name}"));
            }
        }
        let mut schemas = Vec::new();
        for pointer in responses {
            let (pointer, response) = contract.resolve(&pointer);
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                if content.get("schema").is_some() {
                    schemas.push(format!("{pointer}/content/{}/schema", escape(media)));
                }
            }
            for name in response["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, _)| n)
            {
                let (header_pointer, header) =
                    contract.resolve(&format!("{pointer}/headers/{}", escape(name)));
                if header.get("schema").is_some() {
                    schemas.push(format!("{header_pointer}/schema"));
                }
            }
        }
        for pointer in schemas {
            if contract.validators.contains_key(&pointer) {
                continue;
            }
            // The whole description is the root document, so every `#/components/schemas/...`
            // inside the schema resolves; its other keys are no JSON Schema keywords.
            let mut root = contract.doc.clone();
            root["$ref"] = Value::String(format!("#{}", fragment(&pointer)));
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("openapi.yaml: the schema at {pointer}: {e}"));
            contract.validators.insert(pointer, validator);
        }
        contract
    })
}

impl Contract {
    /// The object at `pointer`, following `$ref`s (Reference Objects) to their target, with the
    /// pointer where it was found.
    fn resolve(&self, pointer: &str) -> (String, &Value) {
        let mut pointer = pointer.to_string();
        for _ in 0..16 {
            let value = self
                .doc
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("openapi.yaml has nothing at {pointer}"));
            match value.get("$ref").and_then(Value::as_str) {
                Some(target) => {
                    pointer = target
                        .strip_prefix('#')
                        .unwrap_or_else(|| panic!("openapi.yaml: external $ref {target}"))
                        .to_string();
                }
                None => return (pointer, value),
            }
        }
        panic!("openapi.yaml: a $ref cycle through {pointer}")
    }

    /// The description's path template for a request path: concrete segments win over templated
    /// ones, the leftmost first (`/reviews/meta` is not `/reviews/{product_id}`).
    fn template(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        self.paths
            .iter()
            .filter(|(_, segs)| {
                segs.len() == wanted.len()
                    && segs.iter().zip(&wanted).all(|(t, s)| {
                        if is_param(t) {
                            !s.is_empty()
                        } else {
                            t == s
                        }
                    })
            })
            .min_by_key(|(_, segs)| segs.iter().map(|s| is_param(s)).collect::<Vec<_>>())
            .map(|(template, _)| template.as_str())
    }

    fn methods(&self, template: &str) -> BTreeSet<String> {
        METHODS
            .iter()
            .filter(|m| self.doc["paths"][template].get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect()
    }
}

/// Panics unless the answer to `method target` (path with its query) is one the description
/// documents for that operation.
pub fn check(method: &str, target: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    let contract = contract();
    let path = path_of(target);
    let described = contract.template(path).filter(|t| {
        contract.doc["paths"][*t]
            .get(method.to_lowercase())
            .is_some()
    });
    let Some(template) = described else {
        if undescribed(method, path) {
            return;
        }
        panic!(
            "{method} {path}: openapi.yaml describes no such route (status {status}, body {}); \
             describe it, or use TestApp::call_unlisted if the test means an unknown route or \
             a wrong method",
            excerpt(body)
        );
    };
    let responses = format!(
        "/paths/{}/{}/responses",
        escape(template),
        method.to_lowercase()
    );
    let documented = contract.doc.pointer(&responses).expect("responses");
    let key = [
        status.to_string(),
        format!("{}XX", status / 100),
        "default".to_string(),
    ]
    .into_iter()
    .find(|k| documented.get(k).is_some())
    .unwrap_or_else(|| {
        let keys: Vec<_> = documented.as_object().unwrap().keys().collect();
        panic!(
            "{method} {target}: status {status} is not documented for {method} {template} \
             (documented: {keys:?}); body {}",
            excerpt(body)
        )
    });
    let what = format!("{method} {target} ({method} {template}, {status})");
    check_response(
        &what,
        &format!("{responses}/{}", escape(&key)),
        headers,
        body,
    );
}

/// A whole answer read, [`check`]ed as the answer to `method target`, and handed back unchanged
/// (status, headers, body): for the few tests that talk to a server of their own through reqwest.
pub async fn checked(method: &str, target: &str, response: reqwest::Response) -> reqwest::Response {
    let (status, version) = (response.status(), response.version());
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("response body");
    check(method, target, status.as_u16(), &headers, &body);
    let mut again = http::Response::builder().status(status).version(version);
    *again.headers_mut().expect("a valid answer") = headers;
    reqwest::Response::from(again.body(body).expect("a valid answer"))
}

/// An answer read off a raw socket (`HTTP/1.1 STATUS ...`, headers, body of `Content-Length`
/// bytes), [`check`]ed as the answer to `method target`.
pub fn check_raw(method: &str, target: &str, answer: &[u8]) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {target}: no complete answer: {}", excerpt(answer)));
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: no status line: {head}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{method} {target}: a bad header line {line:?}"));
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            value.trim().parse().expect("header value"),
        );
    }
    let mut body = &answer[split + 4..];
    if let Some(length) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        body = &body[..length.min(body.len())];
    }
    check(method, target, status, &headers, body);
}

/// Panics unless `method target` is a route the description lacks and the answer is the one the
/// description documents for that case: 404 `NotFound` for a path it does not list, 405
/// `MethodNotAllowed` for a listed path with a method it does not list, with `Allow` naming
/// exactly the path's methods.
pub fn check_unlisted(method: &str, target: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    let contract = contract();
    let path = path_of(target);
    let what = format!("{method} {target} (deliberately unlisted, {status})");
    match contract.template(path) {
        Some(template) => {
            let methods = contract.methods(template);
            assert!(
                !methods.contains(&method.to_uppercase()),
                "{method} {path} is {method} {template} of openapi.yaml: use TestApp::call"
            );
            assert_eq!(status, 405, "{what}: a described path with another method");
            check_response(
                &what,
                "/components/responses/MethodNotAllowed",
                headers,
                body,
            );
            let allow: BTreeSet<String> = headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            assert_eq!(
                allow, methods,
                "{what}: Allow must list the methods openapi.yaml gives {template}"
            );
        }
        None => {
            assert_eq!(status, 404, "{what}: a path openapi.yaml does not list");
            check_response(&what, "/components/responses/NotFound", headers, body);
        }
    }
}

/// The answer against the Response Object at `pointer` (a `$ref` is followed).
fn check_response(what: &str, pointer: &str, headers: &HeaderMap, body: &[u8]) {
    let contract = contract();
    let (pointer, response) = contract.resolve(pointer);
    for name in response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
    {
        // A Header Object, or a reference to one of the components.
        let (header_pointer, header) =
            contract.resolve(&format!("{pointer}/headers/{}", escape(name)));
        let value = headers.get(name.as_str()).map(|v| v.to_str().unwrap_or(""));
        match value {
            None => assert!(
                header["required"] != Value::Bool(true),
                "{what}: the required header {name} is missing"
            ),
            Some(value) => {
                let schema = format!("{header_pointer}/schema");
                if let Some(validator) = contract.validators.get(&schema) {
                    validate(
                        what,
                        validator,
                        &Value::String(value.to_string()),
                        value.as_bytes(),
                    );
                }
            }
        }
    }
    let content_type = headers.get("content-type").map(|v| {
        v.to_str()
            .unwrap_or_else(|_| panic!("{what}: Content-Type is not text"))
    });
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            content_type.is_none() && body.is_empty(),
            "{what}: the description documents no content, but got Content-Type {content_type:?} \
             and body {}",
            excerpt(body)
        );
        return;
    };
    let content_type = content_type
        .unwrap_or_else(|| panic!("{what}: no Content-Type; documented: {:?}", content.keys()));
    let media = content
        .keys()
        .find(|key| media_type(key) == media_type(content_type))
        .unwrap_or_else(|| {
            panic!(
                "{what}: Content-Type {content_type:?} is not documented (documented: {:?})",
                content.keys().collect::<Vec<_>>()
            )
        });
    let schema = format!("{pointer}/content/{}/schema", escape(media));
    let Some(validator) = contract.validators.get(&schema) else {
        return;
    };
    // A gzip body (Content-Encoding: gzip) is checked as what it decodes to; the helpers that
    // hand bodies over as text decode it before.
    let decoded;
    let body = match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") if body.starts_with(&[0x1f, 0x8b]) => {
            decoded = gunzip(body);
            &decoded[..]
        }
        _ => body,
    };
    let essence = media_type(media).0;
    let instance = if essence == "application/json" || essence.ends_with("+json") {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", excerpt(body)))
    } else if essence == "application/yaml" || essence.ends_with("+yaml") {
        serde_norway::from_slice(body)
            .unwrap_or_else(|e| panic!("{what}: not YAML ({e}): {}", excerpt(body)))
    } else {
        Value::String(
            String::from_utf8(body.to_vec())
                .unwrap_or_else(|_| panic!("{what}: a {media} body that is not UTF-8")),
        )
    };
    validate(what, validator, &instance, body);
}

/// The bytes a gzip body decodes to.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
        .expect("a valid gzip body");
    out
}

fn validate(what: &str, validator: &jsonschema::Validator, instance: &Value, body: &[u8]) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the answer breaks openapi.yaml:\n  {}\nbody: {}",
        errors.join("\n  "),
        excerpt(body)
    );
}

fn undescribed(method: &str, path: &str) -> bool {
    let wanted = segments(path);
    UNDESCRIBED.iter().any(|(m, template)| {
        let segs = segments(template);
        m.eq_ignore_ascii_case(method)
            && segs.len() == wanted.len()
            && segs
                .iter()
                .zip(&wanted)
                .all(|(t, s)| if is_param(t) { !s.is_empty() } else { t == s })
    })
}

/// The path of a request target: no query or fragment, no trailing slash (`/reviews/` is
/// `/reviews`; `/` stays `/`).
fn path_of(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or("");
    match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => path,
    }
}

fn segments(path: &str) -> Vec<String> {
    path_of(path).split('/').map(str::to_string).collect()
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// A media type compared as HTTP does: type and parameter names case-insensitive, the charset's
/// value too, spaces around `;` and `=` insignificant; parameters in order.
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let name = name.trim().to_ascii_lowercase();
            let mut value = value.trim().trim_matches('"').to_string();
            if name == "charset" {
                value = value.to_ascii_lowercase();
            }
            (name, value)
        })
        .collect();
    (essence, params)
}

/// A JSON pointer as a URI fragment: what a fragment may not hold (` `, `{`, `}`, ...)
/// percent-encoded.
fn fragment(pointer: &str) -> String {
    pointer
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            b'-' | b'.' | b'_' | b'~' | b'/' | b';' | b'=' | b',' | b':' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], body.len()),
        None => text.into_owned(),
    }
}

#[test]
fn request_paths_find_their_templates() {
    let contract = contract();
    for (path, template) in [
        ("/reviews", Some("/reviews")),
        ("/reviews/", Some("/reviews")),
        ("/reviews?product_id=2", Some("/reviews")),
        ("/reviews/meta", Some("/reviews/meta")),
        ("/reviews/meta/", Some("/reviews/meta")),
        ("/reviews/7", Some("/reviews/{product_id}")),
        ("/reviews/7/list/", Some("/reviews/{product_id}/list")),
        ("/reviews/helpful/9", Some("/reviews/helpful/{review_id}")),
        ("/reviews/9/helpful", Some("/reviews/{review_id}/helpful")),
        ("/reviews/2/other", None),
        ("/reviews/2/list/extra", None),
        ("/", None),
    ] {
        assert_eq!(contract.template(path_of(path)), template, "{path}");
    }
    assert!(undescribed("GET", "/bench/constant/100"));
    assert_eq!(
        media_type("text/plain;charset=UTF-8"),
        media_type("text/plain; charset=utf-8")
    );
}

#[test]
fn answers_that_break_the_description_fail() {
    let headers = |content_type: &str| {
        let mut h = HeaderMap::new();
        h.insert("content-type", content_type.parse().unwrap());
        h
    };
    let (mut json, text) = (
        headers("application/json"),
        headers("text/plain; charset=utf-8"),
    );
    let bare_json = json.clone();
    for (name, value) in [
        ("etag", "\"0123456789abcdef\""),
        ("cache-control", "public, max-age=0, s-maxage=1"),
        ("vary", "Accept-Encoding"),
    ] {
        json.insert(name, value.parse().unwrap());
    }
    let mut voted = HeaderMap::new();
    voted.insert("x-consistency-token", "5:1A".parse().unwrap());
    voted.insert(
        "set-cookie",
        "reviews_token=5:1A; Path=/reviews; Max-Age=30; HttpOnly; SameSite=Lax"
            .parse()
            .unwrap(),
    );
    let list = br#"{"product":"2","page":0,"count":5,"results":[]}"#;
    check("GET", "/reviews?product_id=2", 200, &json, list);
    check("GET", "/reviews/2/list/", 200, &json, list);
    check("GET", "/health", 200, &text, b"OK");
    check("PUT", "/reviews/5/helpful", 204, &voted, b"");
    check_unlisted("GET", "/no/such/route", 404, &text, b"Error: not found");
    let mut allow = text.clone();
    allow.insert("allow", "GET, POST".parse().unwrap());
    check_unlisted(
        "DELETE",
        "/reviews/",
        405,
        &allow,
        b"Error: method not allowed",
    );

    let fails = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    // A read without its validator and cache headers; a write without its token.
    assert!(fails(&|| check(
        "GET",
        "/reviews?product_id=2",
        200,
        &bare_json,
        list
    )));
    assert!(fails(&|| check(
        "PUT",
        "/reviews/5/helpful",
        204,
        &HeaderMap::new(),
        b""
    )));
    // A body that breaks its schema, a text outside the documented enum, an undocumented status
    // or Content-Type, a body on a 204, an undescribed route, a 405 without its Allow.
    assert!(fails(&|| check(
        "GET",
        "/reviews?product_id=2",
        200,
        &json,
        b"{}"
    )));
    assert!(fails(&|| check(
        "GET",
        "/reviews",
        422,
        &text,
        b"Error: nope"
    )));
    assert!(fails(&|| check("GET", "/health", 201, &text, b"OK")));
    assert!(fails(&|| check(
        "GET",
        "/reviews?product_id=2",
        200,
        &text,
        list
    )));
    let mut text_voted = voted.clone();
    text_voted.insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
    assert!(fails(&|| check(
        "PUT",
        "/reviews/5/report",
        204,
        &text_voted,
        b"x"
    )));
    assert!(fails(&|| check(
        "GET",
        "/no/such/route",
        404,
        &text,
        b"Error: not found"
    )));
    assert!(fails(&|| check(
        "DELETE",
        "/reviews",
        405,
        &allow,
        b"Error: method not allowed"
    )));
    assert!(fails(&|| check_unlisted(
        "DELETE",
        "/reviews",
        405,
        &text,
        b"Error: method not allowed"
    )));
    assert!(fails(&|| check_unlisted(
        "GET",
        "/reviews",
        405,
        &allow,
        b"Error: method not allowed"
    )));
}
