//! A small dataset made by the tests, written in the original CSV format with every kind of bad
//! row of docs/dataset.md mixed in, and an independent model of what the API must answer for it.
//!
//! The model computes every expected body in Rust from the good rows (ordering, paging, JSON
//! escaping, dates, PostgreSQL's average formatting); it never runs the service's SQL.

use crate::helpers::csv::{quote, review_row};
use reviews_api::etl::dataset::CsvFile;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: i32,
    pub product_id: i32,
    pub rating: i32,
    pub date_ms: i64,
    pub summary: String,
    pub body: String,
    pub recommend: bool,
    pub reported: bool,
    pub name: String,
    pub email: String,
    pub response: Option<String>,
    pub helpfulness: i32,
}

#[derive(Debug, Clone)]
pub struct Photo {
    pub id: i32,
    pub review_id: i32,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Characteristic {
    pub id: i32,
    pub product_id: i32,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Value {
    pub id: i32,
    pub characteristic_id: i32,
    pub review_id: i32,
    pub value: i32,
}

/// The good rows (what must be served) and the bad lines of each file (what must be rejected).
#[derive(Debug, Default, Clone)]
pub struct Dataset {
    pub reviews: Vec<Review>,
    pub photos: Vec<Photo>,
    pub characteristics: Vec<Characteristic>,
    pub values: Vec<Value>,
    pub bad_reviews: Vec<String>,
    pub bad_photos: Vec<String>,
    pub bad_characteristics: Vec<String>,
    pub bad_values: Vec<String>,
    pub max_product: i32,
}

/// A tiny deterministic generator, so a failing case reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const NAMES: [&str; 6] = ["Fit", "Length", "Comfort", "Quality", "Size", "Width"];
const TEXTS: [&str; 8] = [
    "This product was great!",
    "They are very dark.  But that's good because I'm in very sunny spots",
    "Commas, commas, and more commas",
    "She said \"wow\" and left",
    "Line one\nline two\r\nline three",
    "Unicode: café, naïve, 日本語, emoji 🎉, math ∑",
    "Backslash \\ and tab\tinside",
    "null",
];

impl Dataset {
    /// `products` products; product 2 has 60 reviews (for paging and ties), product 1 has
    /// characteristics but no reviews, the last product has neither.
    pub fn build(products: i32, seed: u64) -> Dataset {
        let mut rng = Rng(seed);
        let mut d = Dataset {
            max_product: products,
            ..Dataset::default()
        };
        let base_ms: i64 = 1_596_080_481_467;
        for product_id in 1..products {
            let n_chars = if product_id == 1 {
                2
            } else {
                rng.below(5) as usize
            };
            let first = rng.below(6) as usize;
            for k in 0..n_chars {
                let id = d.characteristics.len() as i32 + 1;
                d.characteristics.push(Characteristic {
                    id,
                    product_id,
                    name: NAMES[(first + k) % 6].to_string(),
                });
            }
            let n_reviews = match product_id {
                1 => 0,
                2 => 60,
                _ => rng.below(9) as usize,
            };
            for k in 0..n_reviews {
                let id = d.reviews.len() as i32 + 1;
                // Product 2 repeats dates and helpfulness so ties are broken by id.
                let (date_ms, helpfulness) = if product_id == 2 {
                    (base_ms + (k as i64 % 7) * 86_400_000, (k % 4) as i32)
                } else {
                    (
                        base_ms + rng.below(40_000_000_000) as i64,
                        rng.below(12) as i32,
                    )
                };
                let response = match rng.below(10) {
                    0 => Some("null".to_string()),
                    1 | 2 => Some(TEXTS[rng.below(8) as usize].to_string()),
                    _ => None,
                };
                d.reviews.push(Review {
                    id,
                    product_id,
                    rating: 1 + rng.below(5) as i32,
                    date_ms,
                    summary: TEXTS[rng.below(8) as usize].chars().take(60).collect(),
                    body: format!("{} #{id}", TEXTS[rng.below(8) as usize]),
                    recommend: rng.chance(70),
                    reported: rng.chance(12),
                    name: format!("reviewer_{id}"),
                    email: format!("secret{id}@example.com"),
                    response,
                    helpfulness,
                });
                for _ in 0..(if rng.chance(35) { 1 + rng.below(3) } else { 0 }) {
                    let photo_id = d.photos.len() as i32 + 1;
                    d.photos.push(Photo {
                        id: photo_id,
                        review_id: id,
                        url: format!("https://images.example/p{photo_id}.jpg?w=975&q=\"80\""),
                    });
                }
                let chars: Vec<i32> = d
                    .characteristics
                    .iter()
                    .filter(|c| c.product_id == product_id)
                    .map(|c| c.id)
                    .collect();
                for characteristic_id in chars {
                    let value_id = d.values.len() as i32 + 1;
                    d.values.push(Value {
                        id: value_id,
                        characteristic_id,
                        review_id: id,
                        value: 1 + rng.below(5) as i32,
                    });
                }
            }
        }
        d.add_bad_rows();
        d
    }

    /// One line (or more, where a field holds a newline) per bad-row kind of docs/dataset.md.
    fn add_bad_rows(&mut self) {
        let r = self.reviews.len() as i32;
        let p = self.photos.len() as i32;
        let c = self.characteristics.len() as i32;
        let v = self.values.len() as i32;
        let first_review = self.reviews[0].clone();
        let review_of = |product: i32| {
            self.reviews
                .iter()
                .find(|x| x.product_id == product)
                .map(|x| x.id)
                .unwrap()
        };
        let char_of = |product: i32| {
            self.characteristics
                .iter()
                .find(|x| x.product_id == product)
                .map(|x| x.id)
                .unwrap()
        };
        let product_with_chars = self
            .reviews
            .iter()
            .map(|x| x.product_id)
            .find(|p| *p != 2 && self.characteristics.iter().any(|c| c.product_id == *p))
            .unwrap();
        let rejected_review = r + 5; // its rating is out of range below
        self.bad_reviews = vec![
            format!("{},3,4,1596080481467,\"too few fields\",\"b\",true,false", r + 1),
            format!("abc,3,4,1596080481467,\"s\",\"non-numeric id\",true,false,\"n\",\"e@x.com\",null,0"),
            // A duplicate of an id seen earlier: the first row is kept.
            format!(
                "{},{},5,1596080481467,\"duplicate\",\"second copy\",true,false,\"n\",\"e@x.com\",null,0",
                first_review.id, first_review.product_id
            ),
            format!("{},3,0,1596080481467,\"s\",\"rating zero\",true,false,\"n\",\"e@x.com\",null,0", r + 2),
            format!("{},3,6,1596080481467,\"s\",\"rating six\",true,false,\"n\",\"e@x.com\",null,0", r + 3),
            format!("{},3,4,yesterday,\"s\",\"bad date\",true,false,\"n\",\"e@x.com\",null,0", r + 4),
            format!("{rejected_review},3,9,1596080481467,\"s\",\"rating nine\",true,false,\"n\",\"e@x.com\",null,0"),
            format!("{},3,4,1596080481467,\"s\",\"bad boolean\",yes,false,\"n\",\"e@x.com\",null,0", r + 6),
            format!("{},3,4,1596080481467,\"s\",\"bad reported\",true,maybe,\"n\",\"e@x.com\",null,0", r + 7),
            format!("{},x3,4,1596080481467,\"s\",\"bad product\",true,false,\"n\",\"e@x.com\",null,0", r + 8),
        ];
        self.bad_photos = vec![
            format!(
                "{},{},\"https://images.example/missing-review.jpg\"",
                p + 1,
                r + 100
            ),
            format!(
                "{},{rejected_review},\"https://images.example/rejected-review.jpg\"",
                p + 2
            ),
            format!("x{},1,\"https://images.example/bad-id.jpg\"", p + 3),
            format!("{},1", p + 4),
            format!(
                "{},{},\"https://images.example/duplicate.jpg\"",
                self.photos[0].id, r
            ),
        ];
        self.bad_characteristics = vec![
            format!("z{},3,\"Fit\"", c + 1),
            format!("{},3,\"Duplicate\"", self.characteristics[0].id),
            format!("{},3", c + 2),
        ];
        let other_product_char = char_of(1);
        self.bad_values = vec![
            format!(
                "{},{},{},0",
                v + 1,
                char_of(product_with_chars),
                review_of(product_with_chars)
            ),
            format!(
                "{},{},{},6",
                v + 2,
                char_of(product_with_chars),
                review_of(product_with_chars)
            ),
            format!("{},{},{},3", v + 3, c + 50, review_of(product_with_chars)),
            format!("{},{},{},3", v + 4, char_of(product_with_chars), r + 100),
            // The characteristic belongs to product 1; the review to another product.
            format!(
                "{},{other_product_char},{},3",
                v + 5,
                review_of(product_with_chars)
            ),
            format!(
                "{},{},{},3",
                self.values[0].id,
                char_of(product_with_chars),
                review_of(product_with_chars)
            ),
            format!(
                "{},{},{}",
                v + 6,
                char_of(product_with_chars),
                review_of(product_with_chars)
            ),
        ];
    }

    /// Writes the four files. Good rows are written slightly out of id order (adjacent pairs
    /// swapped) and the bad lines are spread through each file.
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let reviews: Vec<String> = self.reviews.iter().map(review_row).collect();
        let photos: Vec<String> = self
            .photos
            .iter()
            .map(|p| format!("{},{},{}", p.id, p.review_id, quote(&p.url)))
            .collect();
        let chars: Vec<String> = self
            .characteristics
            .iter()
            .map(|c| format!("{},{},{}", c.id, c.product_id, quote(&c.name)))
            .collect();
        let values: Vec<String> = self
            .values
            .iter()
            .map(|v| {
                format!(
                    "{},{},{},{}",
                    v.id, v.characteristic_id, v.review_id, v.value
                )
            })
            .collect();
        let files = [
            (CsvFile::Reviews, reviews, &self.bad_reviews),
            (CsvFile::Photos, photos, &self.bad_photos),
            (CsvFile::Characteristics, chars, &self.bad_characteristics),
            (CsvFile::CharacteristicReviews, values, &self.bad_values),
        ];
        for (file, mut good, bad) in files {
            for pair in good.chunks_mut(2).step_by(3) {
                pair.reverse();
            }
            let mut out = format!("{}\n", file.header());
            let every = (good.len() / (bad.len() + 1)).max(1);
            let mut bad = bad.iter();
            for (i, line) in good.iter().enumerate() {
                out.push_str(line);
                out.push('\n');
                if i % every == every - 1 {
                    if let Some(b) = bad.next() {
                        out.push_str(b);
                        out.push('\n');
                    }
                }
            }
            for b in bad {
                out.push_str(b);
                out.push('\n');
            }
            std::fs::write(dir.join(file.name()), out).unwrap();
        }
    }

    /// The visible reviews of a product in docs/api.md's order for `sort`.
    pub fn ordered(&self, product_id: i32, sort: &str) -> Vec<&Review> {
        let mut list: Vec<&Review> = self
            .reviews
            .iter()
            .filter(|r| r.product_id == product_id && !r.reported)
            .collect();
        let key = |r: &Review| -> (i64, i64, i32) {
            match sort {
                "newest" => (r.date_ms, 0, r.id),
                "helpful" => (i64::from(r.helpfulness), r.date_ms, r.id),
                _ => (
                    r.date_ms + i64::from(r.helpfulness) * 2_592_000_000,
                    0,
                    r.id,
                ),
            }
        };
        list.sort_by_key(|r| std::cmp::Reverse(key(r)));
        list
    }

    /// The exact body of GET /reviews for these (already normalised) parameters.
    pub fn list_body(&self, product_id: i32, sort: &str, page: i64, count: i64) -> String {
        let skip = ((page - 1) * count) as usize;
        let results: Vec<String> = self
            .ordered(product_id, sort)
            .into_iter()
            .skip(skip)
            .take(count as usize)
            .map(|r| self.review_json(r))
            .collect();
        format!(
            "{{\"product\":\"{product_id}\",\"page\":{},\"count\":{count},\"results\":[{}]}}",
            page - 1,
            results.join(",")
        )
    }

    pub fn review_json(&self, r: &Review) -> String {
        let mut photos: Vec<&Photo> = self.photos.iter().filter(|p| p.review_id == r.id).collect();
        photos.sort_by_key(|p| p.id);
        let photos: Vec<String> = photos
            .iter()
            .map(|p| format!("{{\"id\":{},\"url\":{}}}", p.id, json_string(&p.url)))
            .collect();
        format!(
            "{{\"review_id\":{},\"rating\":{},\"summary\":{},\"recommend\":{},\"response\":{},\"body\":{},\"date\":\"{}\",\"reviewer_name\":{},\"helpfulness\":{},\"photos\":[{}]}}",
            r.id,
            r.rating,
            json_string(&r.summary),
            r.recommend,
            r.response.as_deref().map_or("null".to_string(), json_string),
            json_string(&r.body),
            iso_date(r.date_ms),
            json_string(&r.name),
            r.helpfulness,
            photos.join(",")
        )
    }

    /// The exact body of GET /reviews/meta.
    pub fn meta_body(&self, product_id: i32) -> String {
        let visible: Vec<&Review> = self
            .reviews
            .iter()
            .filter(|r| r.product_id == product_id && !r.reported)
            .collect();
        let mut ratings = BTreeMap::new();
        let mut recommended = BTreeMap::new();
        for r in &visible {
            *ratings.entry(r.rating).or_insert(0) += 1;
            *recommended.entry(r.recommend).or_insert(0) += 1;
        }
        let ratings: Vec<String> = ratings
            .iter()
            .map(|(k, n)| format!("\"{k}\":\"{n}\""))
            .collect();
        let recommended: Vec<String> = recommended
            .iter()
            .map(|(k, n)| format!("\"{k}\":\"{n}\""))
            .collect();
        let mut chars: Vec<&Characteristic> = self
            .characteristics
            .iter()
            .filter(|c| c.product_id == product_id)
            .collect();
        chars.sort_by_key(|c| c.id);
        let chars: Vec<String> = chars
            .iter()
            .map(|c| {
                let values: Vec<i64> = self
                    .values
                    .iter()
                    .filter(|v| {
                        v.characteristic_id == c.id && visible.iter().any(|r| r.id == v.review_id)
                    })
                    .map(|v| i64::from(v.value))
                    .collect();
                let value = if values.is_empty() {
                    "null".to_string()
                } else {
                    format!(
                        "\"{}\"",
                        pg_average(values.iter().sum(), values.len() as i64)
                    )
                };
                format!(
                    "{}:{{\"id\":{},\"value\":{value}}}",
                    json_string(&c.name),
                    c.id
                )
            })
            .collect();
        format!(
            "{{\"product_id\":\"{product_id}\",\"ratings\":{{{}}},\"recommended\":{{{}}},\"characteristics\":{{{}}}}}",
            ratings.join(","),
            recommended.join(","),
            chars.join(",")
        )
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// docs/api.md's date format: UTC ISO-8601 with milliseconds and `Z`.
pub const API_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// Epoch milliseconds as docs/api.md prints a date.
pub fn iso_date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("a date within time's range")
        .format(API_DATE)
        .expect("formats")
}

/// `sum / count` printed as PostgreSQL prints `avg(integer)::text`: numeric division keeps at
/// least 16 significant digits, counting in base-10000 digit groups (select_div_scale), and
/// rounds half away from zero.
pub fn pg_average(sum: i64, count: i64) -> String {
    let groups = |n: i64| -> (i64, i64) {
        // (weight, first base-10000 digit)
        let mut weight = 0;
        let mut first = n;
        while first >= 10_000 {
            first /= 10_000;
            weight += 1;
        }
        (weight, first)
    };
    let (w1, f1) = groups(sum);
    let (w2, f2) = groups(count);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let scale = (16 - qweight * 4).max(0) as u32;
    let scaled = sum as u128 * 10u128.pow(scale);
    let (mut q, r) = (scaled / count as u128, scaled % count as u128);
    if 2 * r >= count as u128 {
        q += 1;
    }
    let digits = q.to_string();
    if scale == 0 {
        return digits;
    }
    let digits = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    format!("{int}.{frac}")
}

#[test]
fn the_model_formats_like_postgresql() {
    // Fixed points from docs/api.md and PostgreSQL's documented behaviour.
    assert_eq!(pg_average(11, 3), "3.6666666666666667");
    assert_eq!(pg_average(16, 4), "4.0000000000000000");
    assert_eq!(pg_average(4, 4), "1.00000000000000000000");
    assert_eq!(iso_date(1_596_080_481_467), "2020-07-30T03:41:21.467Z");
    assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
}
