//! The body of POST /reviews, checked field by field exactly as docs/api.md says. Whether the
//! characteristics are the product's own is decided by the database, inside the insert statement.

use super::params;
use crate::error::ApiError;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct NewReview {
    pub product_id: i32,
    pub rating: i32,
    pub summary: String,
    pub body: String,
    pub recommend: bool,
    pub name: String,
    pub email: String,
    pub photos: Vec<String>,
    /// Characteristic ids, distinct, with their values at the same positions.
    pub characteristic_ids: Vec<i32>,
    pub characteristic_values: Vec<i32>,
}

impl NewReview {
    /// `path_product_id` is the product id of the older route form; it replaces the body's.
    pub fn parse(path_product_id: Option<&str>, body: &[u8]) -> Result<NewReview, ApiError> {
        let fields = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(ApiError::MalformedJson),
        };
        let product_id = match path_product_id {
            Some(id) => params::id(Some(id), "product_id")?,
            None => json_integer(&fields, "product_id")
                .filter(|n| *n >= 1)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or(ApiError::Invalid("product_id"))?,
        };
        let rating = json_integer(&fields, "rating")
            .filter(|n| (1..=5).contains(n))
            .ok_or(ApiError::Invalid("rating"))? as i32;
        let summary = match fields.get("summary") {
            None | Some(Value::Null) => String::new(),
            Some(_) => text(&fields, "summary", 0, 60)?,
        };
        let body = text(&fields, "body", 1, 1000)?;
        let recommend = fields
            .get("recommend")
            .and_then(Value::as_bool)
            .ok_or(ApiError::Invalid("recommend"))?;
        let name = text(&fields, "name", 1, 60)?;
        let email = text(&fields, "email", 1, 60)?;
        if !is_email(&email) {
            return Err(ApiError::Invalid("email"));
        }
        let photos = photos(fields.get("photos"))?;
        let (characteristic_ids, characteristic_values) =
            characteristics(fields.get("characteristics"))?;
        Ok(NewReview {
            product_id,
            rating,
            summary,
            body,
            recommend,
            name,
            email,
            photos,
            characteristic_ids,
            characteristic_values,
        })
    }
}

/// A JSON integer (not a string, not 4.5).
fn json_integer(fields: &Map<String, Value>, name: &str) -> Option<i64> {
    fields.get(name).and_then(Value::as_i64)
}

/// A JSON string of `min..=max` characters. NUL is refused: PostgreSQL text cannot hold it.
fn text(
    fields: &Map<String, Value>,
    name: &'static str,
    min: usize,
    max: usize,
) -> Result<String, ApiError> {
    match fields.get(name) {
        Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) && !s.contains('\0') => {
            Ok(s.clone())
        }
        _ => Err(ApiError::Invalid(name)),
    }
}

/// One `@`, something before it, and a dot inside the domain; no spaces.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain
            .split_once('.')
            .is_some_and(|(head, _)| !head.is_empty())
        && !domain.ends_with('.')
}

fn photos(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let invalid = ApiError::Invalid("photos");
    let urls = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(urls)) if urls.len() <= 5 => urls,
        Some(_) => return Err(invalid),
    };
    urls.iter()
        .map(|url| match url {
            Value::String(url) if is_url(url) => Ok(url.clone()),
            _ => Err(ApiError::Invalid("photos")),
        })
        .collect()
}

fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty())
        // Characters, as docs/api.md counts every length (a URL may hold non-ASCII text).
        && s.chars().count() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `{"<id>": value, ...}` into aligned id and value vectors.
fn characteristics(value: Option<&Value>) -> Result<(Vec<i32>, Vec<i32>), ApiError> {
    let invalid = || ApiError::Invalid("characteristics");
    let Some(Value::Object(ratings)) = value else {
        return Err(invalid());
    };
    let mut ids = Vec::with_capacity(ratings.len());
    let mut values = Vec::with_capacity(ratings.len());
    for (id, value) in ratings {
        let id = params::id(Some(id), "characteristics").map_err(|_| invalid())?;
        let value = value
            .as_i64()
            .filter(|v| (1..=5).contains(v))
            .ok_or_else(invalid)?;
        // "01" and "1" name the same characteristic: rating it twice is not rating it once.
        if ids.contains(&id) {
            return Err(invalid());
        }
        ids.push(id);
        values.push(value as i32);
    }
    Ok((ids, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"product_id": 2, "rating": 5, "summary": "Great", "body": "Fits well.",
               "recommend": true, "name": "ann", "email": "ann@example.com",
               "photos": ["https://images.example/a.jpg"], "characteristics": {"5": 4, "6": 3}})
    }

    fn parse(v: &Value) -> Result<NewReview, ApiError> {
        NewReview::parse(None, v.to_string().as_bytes())
    }

    fn field_of(v: &Value) -> &'static str {
        match parse(v) {
            Err(ApiError::Invalid(f)) => f,
            other => panic!("{v}: expected 422, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_valid_review() {
        let r = parse(&valid()).unwrap();
        assert_eq!((r.product_id, r.rating, r.recommend), (2, 5, true));
        assert_eq!(r.characteristic_ids.len(), 2);
        let mut minimal = valid();
        let m = minimal.as_object_mut().unwrap();
        m.remove("summary");
        m.remove("photos");
        assert_eq!(parse(&minimal).unwrap().summary, "");
    }

    #[test]
    fn rejects_each_rule_naming_the_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("product_id", json!("2"), "product_id"),
            ("product_id", json!(0), "product_id"),
            ("product_id", json!(2147483648u64), "product_id"),
            ("rating", json!("5"), "rating"),
            ("rating", json!(4.5), "rating"),
            ("rating", json!(6), "rating"),
            ("rating", json!(0), "rating"),
            ("summary", json!(5), "summary"),
            ("summary", json!("x".repeat(61)), "summary"),
            ("body", json!(""), "body"),
            ("body", json!("é".repeat(1001)), "body"),
            ("body", json!("a\u{0}b"), "body"),
            ("recommend", json!("true"), "recommend"),
            ("name", json!(""), "name"),
            ("name", json!("n".repeat(61)), "name"),
            ("email", json!("no-at.example.com"), "email"),
            ("email", json!("a@b@c.com"), "email"),
            ("email", json!("a@localhost"), "email"),
            (
                "email",
                json!(format!("{}@example.com", "a".repeat(50))),
                "email",
            ),
            ("photos", json!("https://x.example/a.jpg"), "photos"),
            ("photos", json!(["ftp://x.example/a.jpg"]), "photos"),
            ("photos", json!(["https://"]), "photos"),
            (
                "photos",
                json!([format!("https://x.example/{}", "a".repeat(2040))]),
                "photos",
            ),
            (
                "photos",
                json!([
                    "https://a.b/1",
                    "https://a.b/2",
                    "https://a.b/3",
                    "https://a.b/4",
                    "https://a.b/5",
                    "https://a.b/6"
                ]),
                "photos",
            ),
            ("characteristics", json!([]), "characteristics"),
            ("characteristics", json!({"5": 6}), "characteristics"),
            ("characteristics", json!({"5": "4"}), "characteristics"),
            ("characteristics", json!({"x": 4}), "characteristics"),
            (
                "characteristics",
                json!({"5": 4, "05": 4}),
                "characteristics",
            ),
        ];
        for (field, value, expected) in cases {
            let mut v = valid();
            v[field] = value.clone();
            assert_eq!(field_of(&v), expected, "{field} = {value}");
        }
        for missing in [
            "product_id",
            "rating",
            "body",
            "recommend",
            "name",
            "email",
            "characteristics",
        ] {
            let mut v = valid();
            v.as_object_mut().unwrap().remove(missing);
            assert_eq!(field_of(&v), missing, "missing {missing}");
        }
        let max_photo = format!("https://x.example/{}", "a".repeat(2048 - 18));
        let mut v = valid();
        v["photos"] = json!([max_photo]);
        assert!(
            parse(&v).is_ok(),
            "a URL of exactly 2048 characters is allowed"
        );
        // Counted in characters, not bytes: 2048 characters of which most take two bytes.
        let wide = format!("https://x.example/{}", "é".repeat(2048 - 18));
        v["photos"] = json!([wide.clone()]);
        assert!(parse(&v).is_ok(), "2048 characters in {} bytes", wide.len());
        v["photos"] = json!([format!("{wide}é")]);
        assert_eq!(field_of(&v), "photos", "2049 characters");
    }

    #[test]
    fn malformed_bodies_and_the_path_form() {
        for body in ["", "not json", "[1,2]", "\"text\"", "{\"a\":"] {
            assert!(matches!(
                NewReview::parse(None, body.as_bytes()),
                Err(ApiError::MalformedJson)
            ));
        }
        let mut v = valid();
        v.as_object_mut().unwrap().remove("product_id");
        let r = NewReview::parse(Some("7"), v.to_string().as_bytes()).unwrap();
        assert_eq!(r.product_id, 7);
        assert!(matches!(
            NewReview::parse(Some("x"), v.to_string().as_bytes()),
            Err(ApiError::Invalid("product_id"))
        ));
    }
}
