//! How a read's document goes out: gzip for clients that accept it, a strong entity tag with 304
//! for a client that has it already, and cache headers that keep the service's promise ("every
//! write visible within 1 s") through any shared cache in front.
//!
//! - **Compression.** A body that enters the cache is compressed once, then (gzip's default
//!   level), so a hit never compresses. One read from the database for a client that accepts
//!   gzip is compressed at the fastest level, and only from [`GZIP_UNCACHED_MIN`] bytes: below
//!   about one TCP segment it saves no packet, only CPU (bench/README.md, "Compression", has the
//!   figures). Decompressed, every body is the bytes the database returned.
//! - **Entity tags, from the bytes.** The tag is a hash of the document's bytes (FNV-1a, 64 bits:
//!   stable across builds and machines), `"HASH"` for the plain bytes and `"HASH-gzip"` for the
//!   compressed ones (a strong validator names one representation). From the bytes rather than
//!   from a version of the product: versions are per instance (coherence's generations), while a
//!   browser revalidates against whichever instance NGINX picks, and equal bytes must get equal
//!   tags everywhere. A matching If-None-Match gets 304 with no body; a cached body answers it
//!   without the database.
//! - **Cache-Control.** `public, max-age=0, s-maxage=N` (`server.shared_max_age_secs`, 1): shared
//!   caches (NGINX's microcache, a CDN) keep an answer N seconds, which is what "visible within 1
//!   s" allows; browsers revalidate every time (a 304 costs little), so a shopper's own write is
//!   never hidden by their browser's cache. A read carrying the writer's consistency token, and
//!   every write's answer, are `private, no-store`. An unknown product is not an error (200 with
//!   empty lists), cached like any; error answers are `no-store` (middleware).

use crate::cache::Body;
use actix_web::dev::Payload;
use actix_web::http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::cell::RefCell;
use std::future::{ready, Ready};

/// The smallest body compressed for one request (see the module comment).
pub const GZIP_UNCACHED_MIN: usize = 1400;
/// The smallest body compressed as it enters the cache: below it gzip's own header and trailer
/// (18 bytes) eat what it saves.
pub const GZIP_CACHED_MIN: usize = 256;

pub const PRIVATE: &str = "private, no-store";

/// What a read's client accepts and already has.
#[derive(Debug, Default, Clone)]
pub struct Accepts {
    pub gzip: bool,
    if_none_match: Option<String>,
}

impl FromRequest for Accepts {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let gzip = headers
            .get_all(ACCEPT_ENCODING)
            .filter_map(|v| v.to_str().ok())
            .any(accepts_gzip);
        let if_none_match = headers
            .get_all(IF_NONE_MATCH)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        ready(Ok(Accepts {
            gzip,
            if_none_match: (!if_none_match.is_empty()).then_some(if_none_match),
        }))
    }
}

/// Whether an Accept-Encoding value admits gzip: `gzip` (or `x-gzip`, or `*`) with a q-value
/// above 0.
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
    })
}

/// The document `plain` ready to serve: its tag, and its gzip form when `compress` (at
/// `level`) and it is at least `min` bytes.
pub fn body(plain: Bytes, compress: Option<(Compression, usize)>) -> Body {
    let tag = fnv1a(&plain);
    let gzip = compress
        .filter(|(_, min)| plain.len() >= *min)
        .map(|(level, _)| gzip(&plain, level));
    Body { plain, gzip, tag }
}

/// `plain` in the gzip format (RFC 1952): a fixed header, the raw deflate stream, the CRC-32 and
/// the length. The deflate state (hundreds of kilobytes, which a new encoder allocates and zeroes
/// each time: that cost more than compressing a page) is kept per thread and level, and reset.
fn gzip(plain: &[u8], level: Compression) -> Bytes {
    thread_local! {
        static DEFLATE: RefCell<Vec<(u32, Compress)>> = const { RefCell::new(Vec::new()) };
    }
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    out.extend_from_slice(&HEADER);
    DEFLATE.with_borrow_mut(|states| {
        let index = match states.iter().position(|(l, _)| *l == level.level()) {
            Some(index) => index,
            None => {
                states.push((level.level(), Compress::new(level, false)));
                states.len() - 1
            }
        };
        let deflate = &mut states[index].1;
        deflate.reset();
        loop {
            out.reserve(256);
            let read = deflate.total_in() as usize;
            // Finish: all input is here. Ok(StreamEnd) once every byte is out.
            match deflate.compress_vec(&plain[read..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(_) => unreachable!("deflate of a whole buffer into a growing Vec"),
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    Bytes::from(out)
}

/// FNV-1a, 64 bits: a well-known hash, the same on every machine and build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How long shared caches may keep an answer.
#[derive(Debug, Clone)]
pub enum Keep {
    /// `s-maxage` seconds (server.shared_max_age_secs).
    Shared(u32),
    /// Nobody: the client's own answer ([`PRIVATE`]).
    Private,
}

/// The answer for `body`: 200 with the representation the client accepts, or 304 when it has it.
pub fn respond(body: &Body, accepts: &Accepts, keep: &Keep) -> HttpResponse {
    let (bytes, etag) = match (&body.gzip, accepts.gzip) {
        (Some(gzip), true) => (gzip, format!("\"{:016x}-gzip\"", body.tag)),
        _ => (&body.plain, format!("\"{:016x}\"", body.tag)),
    };
    let not_modified = accepts
        .if_none_match
        .as_deref()
        .is_some_and(|tags| matches_any(tags, &etag));
    let mut response = HttpResponse::build(if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    response
        .insert_header((ETAG, etag))
        .insert_header((VARY, HeaderValue::from_static("Accept-Encoding")));
    match keep {
        Keep::Private => response.insert_header((CACHE_CONTROL, PRIVATE)),
        Keep::Shared(seconds) => response
            .insert_header((
                CACHE_CONTROL,
                format!("public, max-age=0, s-maxage={seconds}"),
            ))
            // NGINX counts a cached answer's life in whole seconds: from s-maxage=1 it keeps an
            // answer made early in a second until the end of the next one, nearly 2 s. This
            // absolute expiry (the end of the current second, for N = 1), which NGINX takes
            // over Cache-Control and never passes on to clients, keeps its copies within N s.
            .insert_header((
                "x-accel-expires",
                format!("@{}", unix_seconds() + u64::from(*seconds) - 1),
            )),
    };
    if not_modified {
        return response.finish();
    }
    if bytes.as_ptr() != body.plain.as_ptr() {
        response.insert_header((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
    }
    response
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(bytes.clone())
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// If-None-Match's weak comparison (RFC 9110, 13.1.2): `*`, or any listed tag, W/ or not.
fn matches_any(tags: &str, etag: &str) -> bool {
    tags.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_is_accepted_by_name_or_star_unless_q_is_zero() {
        for (value, want) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("*", true),
            ("identity", false),
            ("gzip;q=0", false),
            ("br", false),
            ("", false),
            ("GZIP", true),
        ] {
            assert_eq!(accepts_gzip(value), want, "{value:?}");
        }
    }

    #[test]
    fn the_gzip_form_decompresses_to_the_same_bytes() {
        let plain = Bytes::from("{\"product\":\"1\",\"results\":[]}".repeat(100));
        let b = body(plain.clone(), Some((Compression::fast(), 100)));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&b.gzip.unwrap()[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        assert!(body(Bytes::from("{}"), Some((Compression::fast(), 100)))
            .gzip
            .is_none());
    }

    #[test]
    fn tags_follow_the_bytes_and_match_weakly() {
        let a = body(Bytes::from("a"), None);
        assert_eq!(a.tag, body(Bytes::from("a"), None).tag);
        assert_ne!(a.tag, body(Bytes::from("b"), None).tag);
        let etag = format!("\"{:016x}\"", a.tag);
        assert!(matches_any(&format!("\"x\", W/{etag}"), &etag));
        assert!(matches_any("*", &etag));
        assert!(!matches_any("\"x\"", &etag));
    }
}
