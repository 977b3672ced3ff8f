//! The consistency token: how a client reads its own writes at once, through any instance.
//!
//! Every successful write answers with a token naming its product and where the primary's WAL
//! stood after its commit (0 when no instance reads replicas: then only caches can be behind).
//! Browsers get it as a cookie they send back by themselves; API clients get the same value in
//! the `X-Consistency-Token` header and send it back in that request header. A read carrying a
//! token for its product skips the cached body and reads from a replica that has replayed that
//! position, else from the primary (`AppState::document`). The token keeps the client's latest
//! writes, one per product, most recent first, at most [`MAX_ENTRIES`].
//!
//! It is a hint, never an authority: a forged or stale token can only send a read to the primary
//! and past the cache; a malformed one is ignored, as if absent (never a 4xx).

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderValue, COOKIE};
use actix_web::{FromRequest, HttpRequest, HttpResponseBuilder};
use std::future::{ready, Ready};

/// The request and response header of API clients.
pub const HEADER: &str = "x-consistency-token";
/// The cookie of browsers.
pub const COOKIE_NAME: &str = "reviews_token";
/// How long a browser keeps the cookie: far longer than replicas and caches take to catch up
/// (the service's promise to everyone is 1 s), short enough not to send reads to the primary for
/// long.
pub const MAX_AGE_SECS: u32 = 30;
pub const MAX_ENTRIES: usize = 8;

/// (product id, primary WAL position) of a client's recent writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token(Vec<(i32, u64)>);

impl Token {
    /// `PRODUCT:LSN` entries (the position in hexadecimal) joined by `.`; None when malformed.
    pub fn parse(text: &str) -> Option<Token> {
        let mut entries = Vec::new();
        for entry in text.split('.') {
            let (product, lsn) = entry.split_once(':')?;
            let product: i32 = product.parse().ok().filter(|p| *p > 0)?;
            let lsn = u64::from_str_radix(lsn, 16).ok()?;
            if entries.len() == MAX_ENTRIES || entries.iter().any(|(p, _)| *p == product) {
                return None;
            }
            entries.push((product, lsn));
        }
        Some(Token(entries))
    }

    /// The position a read of `product_id` must see, if this client wrote to it.
    pub fn position(&self, product_id: i32) -> Option<u64> {
        self.0
            .iter()
            .find(|(p, _)| *p == product_id)
            .map(|(_, l)| *l)
    }

    /// This token with a write to `product_id` at `lsn` first.
    pub fn with(mut self, product_id: i32, lsn: u64) -> Token {
        self.0.retain(|(p, _)| *p != product_id);
        self.0.insert(0, (product_id, lsn));
        self.0.truncate(MAX_ENTRIES);
        self
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(p, l)| format!("{p}:{l:X}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The token on a write's answer: the header, and the cookie (HttpOnly: no script needs it;
    /// SameSite=Lax: sent by the shop's own pages; Path=/reviews: every route that reads). The
    /// answer is the client's own: no cache may keep it.
    pub fn set_on(&self, response: &mut HttpResponseBuilder) {
        let text = self.text();
        response.insert_header((
            actix_web::http::header::CACHE_CONTROL,
            super::representation::PRIVATE,
        ));
        response.insert_header((HEADER, text.clone()));
        response.insert_header((
            actix_web::http::header::SET_COOKIE,
            format!("{COOKIE_NAME}={text}; Path=/reviews; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax"),
        ));
    }
}

/// The request's token: its header, else its cookie; none (or a malformed one) is an empty token.
impl FromRequest for Token {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
        let text = header.or_else(|| cookie(req.headers().get_all(COOKIE)));
        ready(Ok(text.and_then(Token::parse).unwrap_or_default()))
    }
}

fn cookie<'a>(headers: impl Iterator<Item = &'a HeaderValue>) -> Option<&'a str> {
    headers
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn a_token_keeps_the_latest_write_per_product_first() {
        let t = Token::default().with(7, 0x10).with(9, 0x20).with(7, 0x30);
        assert_eq!(t.text(), "7:30.9:20");
        assert_eq!(Token::parse(&t.text()), Some(t.clone()));
        assert_eq!(t.position(9), Some(0x20));
        assert_eq!(t.position(8), None);
        let many = (1..=20).fold(Token::default(), |t, p| t.with(p, 1));
        assert_eq!(many.0.len(), MAX_ENTRIES);
        assert_eq!(many.position(20), Some(1));
        assert_eq!(many.position(1), None, "the oldest went");
    }

    #[test]
    fn a_malformed_token_is_none() {
        for text in [
            "", "7", "7:", ":10", "x:10", "7:zz", "0:10", "-1:10", "7:1.7:2", "7:1;8:2",
        ] {
            assert_eq!(Token::parse(text), None, "{text:?}");
        }
    }

    #[actix_web::test]
    async fn the_header_wins_over_the_cookie_and_garbage_is_ignored() {
        let req = TestRequest::get()
            .insert_header((COOKIE, "a=b; reviews_token=5:A; c=d"))
            .to_http_request();
        let t = Token::extract(&req).await.unwrap();
        assert_eq!(t.position(5), Some(10));
        let req = TestRequest::get()
            .insert_header((COOKIE, "reviews_token=5:A"))
            .insert_header((HEADER, "6:B"))
            .to_http_request();
        let t = Token::extract(&req).await.unwrap();
        assert_eq!((t.position(5), t.position(6)), (None, Some(11)));
        let req = TestRequest::get()
            .insert_header((HEADER, "nonsense"))
            .to_http_request();
        assert_eq!(Token::extract(&req).await.unwrap(), Token::default());
    }
}
