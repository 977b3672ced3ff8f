//! Request parameters, checked exactly as docs/api.md says, and the extractors that hand them to
//! the handlers already checked. The first occurrence of a query parameter wins; unknown
//! parameters are ignored. Both route forms share an extractor: the older form's product id is in
//! the path (`/reviews/{product_id}/...`), the Atelier form's in the query.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use std::borrow::Cow;
use std::future::{ready, Ready};

/// The query string's parameters, decoded once.
pub struct Query<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Query<'a> {
    pub fn parse(query: &'a str) -> Query<'a> {
        Query(form_urlencoded::parse(query.as_bytes()).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// An integer: an optional sign and at least one digit, nothing else. Values beyond i64
/// saturate, so `count=99999999999999999999` is "above 10000" rather than "not an integer".
pub fn integer(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match digits.parse::<i64>() {
        Ok(n) if negative => -n,
        Ok(n) => n,
        Err(_) if negative => i64::MIN,
        Err(_) => i64::MAX,
    })
}

/// A positive integer that fits in 32 bits (product and review ids).
pub fn id(value: Option<&str>, field: &'static str) -> Result<i32, ApiError> {
    value
        .and_then(integer)
        .filter(|n| *n >= 1)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or(ApiError::Invalid(field))
}

/// The product of a read: `{product_id}` of the path, else `product_id` of the query.
pub struct ProductId(pub i32);

impl FromRequest for ProductId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = Query::parse(req.query_string());
        ready(id(product_id(req, &query), "product_id").map(ProductId))
    }
}

fn product_id<'a>(req: &'a HttpRequest, query: &'a Query) -> Option<&'a str> {
    req.match_info()
        .get("product_id")
        .or(query.get("product_id"))
}

/// The review of a vote or a report: `{review_id}` of the path.
pub struct ReviewId(pub i32);

impl FromRequest for ReviewId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(id(req.match_info().get("review_id"), "review_id").map(ReviewId))
    }
}

impl FromRequest for Page {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = Query::parse(req.query_string());
        ready(Page::parse(product_id(req, &query), &query))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sort {
    Relevant,
    Newest,
    Helpful,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevant => "relevant",
            Sort::Newest => "newest",
            Sort::Helpful => "helpful",
        }
    }
}

/// A checked GET /reviews request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub product_id: i32,
    /// Zero-based, as echoed in the response.
    pub page: i64,
    pub count: i32,
    pub sort: Sort,
}

impl Page {
    pub const MAX_COUNT: i64 = 10_000;

    pub fn parse(product_id: Option<&str>, query: &Query) -> Result<Page, ApiError> {
        let product_id = id(product_id, "product_id")?;
        let page = match query.get("page") {
            None => 1,
            Some(s) => integer(s).ok_or(ApiError::Invalid("page"))?.max(1),
        };
        let count = match query.get("count") {
            None => 5,
            Some(s) => match integer(s).ok_or(ApiError::Invalid("count"))? {
                n if n <= 0 => 5,
                n => n.min(Self::MAX_COUNT),
            },
        };
        let sort = match query.get("sort") {
            None | Some("relevant") => Sort::Relevant,
            Some("newest") => Sort::Newest,
            Some("helpful") => Sort::Helpful,
            Some(_) => return Err(ApiError::Invalid("sort")),
        };
        Ok(Page {
            product_id,
            page: page - 1,
            count: count as i32,
            sort,
        })
    }

    /// Reviews skipped before this page; saturates (a page far past the end is simply empty).
    pub fn offset(&self) -> i64 {
        self.page.saturating_mul(i64::from(self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<Page, ApiError> {
        let query = Query::parse(q);
        Page::parse(query.get("product_id"), &query)
    }

    #[test]
    fn defaults_and_clamps() {
        let p = page("product_id=2").unwrap();
        assert_eq!((p.page, p.count, p.sort), (0, 5, Sort::Relevant));
        let p = page("product_id=2&page=0&count=-3&sort=newest").unwrap();
        assert_eq!((p.page, p.count, p.sort), (0, 5, Sort::Newest));
        let p = page("product_id=2&page=3&count=99999999999999999999999").unwrap();
        assert_eq!((p.page, p.count, p.offset()), (2, 10_000, 20_000));
        let p = page("product_id=2&page=9223372036854775807&count=10000").unwrap();
        assert_eq!(p.offset(), i64::MAX);
        let p = page("product_id=2&page=1&page=x").unwrap();
        assert_eq!(p.page, 0, "the first occurrence wins");
    }

    #[test]
    fn rejects_with_the_field_named() {
        for (q, field) in [
            ("", "product_id"),
            ("product_id=0", "product_id"),
            ("product_id=-1", "product_id"),
            ("product_id=2147483648", "product_id"),
            ("product_id=1.5", "product_id"),
            ("product_id=abc", "product_id"),
            ("product_id=", "product_id"),
            ("product_id=2&page=1.0", "page"),
            ("product_id=2&page=", "page"),
            ("product_id=2&count=five", "count"),
            ("product_id=2&sort=oldest", "sort"),
            ("product_id=2&sort=", "sort"),
        ] {
            match page(q) {
                Err(ApiError::Invalid(f)) => assert_eq!(f, field, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        assert_eq!(page("product_id=2147483647").unwrap().product_id, i32::MAX);
    }
}
