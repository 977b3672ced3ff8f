//! Products seeded as the loader leaves them, reviews posted through the API, and the meta
//! document docs/api.md prescribes for them, rebuilt independently.

use super::app::TestApp;
use super::reply::created_id;
use serde_json::{json, Value};

/// A product as the loader leaves it: its characteristics, and a product_meta row listing them
/// (ordered by id, sums and counts zero). A product without characteristics gets no row.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i32,
    /// (characteristic id, name), ordered by id.
    pub chars: Vec<(i32, String)>,
}

impl Product {
    /// The `characteristics` object of a POST body: `values` in the order of `chars`.
    pub fn ratings(&self, values: &[i32]) -> Value {
        assert_eq!(
            values.len(),
            self.chars.len(),
            "one value per characteristic"
        );
        let map: serde_json::Map<String, Value> = self
            .chars
            .iter()
            .zip(values)
            .map(|((id, _), v)| (id.to_string(), json!(v)))
            .collect();
        Value::Object(map)
    }
}

pub async fn seed_product(
    client: &tokio_postgres::Client,
    product_id: i32,
    names: &[&str],
) -> Product {
    let mut chars = Vec::new();
    for name in names {
        let row = client
            .query_one(
                "INSERT INTO characteristics (product_id, name) VALUES ($1, $2) RETURNING id",
                &[&product_id, name],
            )
            .await
            .expect("insert characteristic");
        chars.push((row.get::<_, i32>(0), name.to_string()));
    }
    chars.sort();
    if !chars.is_empty() {
        let ids: Vec<i32> = chars.iter().map(|c| c.0).collect();
        let names: Vec<String> = chars.iter().map(|c| c.1.clone()).collect();
        let sums = vec![0i64; ids.len()];
        let counts = vec![0i32; ids.len()];
        client
            .execute(
                "INSERT INTO product_meta (product_id, char_ids, char_names, char_sums, char_counts)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&product_id, &ids, &names, &sums, &counts],
            )
            .await
            .expect("insert product_meta");
    }
    Product {
        id: product_id,
        chars,
    }
}

/// What a test knows about a review it posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub review_id: i32,
    pub rating: i32,
    pub recommend: bool,
    /// One value per characteristic of the product, in the order of `Product::chars`.
    pub values: Vec<i32>,
}

/// A valid POST body for `product` (product_id in the body).
pub fn review_body(product: &Product, rating: i32, recommend: bool, values: &[i32]) -> Value {
    json!({
        "product_id": product.id,
        "rating": rating,
        "summary": format!("Rated {rating}"),
        "body": "A review written by a test.",
        "recommend": recommend,
        "name": "tester",
        "email": "tester@example.com",
        "photos": [],
        "characteristics": product.ratings(values),
    })
}

/// POSTs a valid review through `app` and returns what was posted.
pub async fn post_review(
    app: &TestApp,
    product: &Product,
    rating: i32,
    recommend: bool,
    values: &[i32],
) -> Posted {
    let reply = app
        .post_json("/reviews", &review_body(product, rating, recommend, values))
        .await;
    Posted {
        review_id: created_id(&reply),
        rating,
        recommend,
        values: values.to_vec(),
    }
}

/// The meta document docs/api.md prescribes for `product` when exactly `visible` are its visible
/// reviews, rebuilt here from the contract (averages from the model in dataset.rs).
pub async fn expected_meta(product: &Product, visible: &[Posted]) -> String {
    let mut ratings = [0u32; 5];
    let mut recommended = [0u32; 2];
    for review in visible {
        ratings[review.rating as usize - 1] += 1;
        recommended[usize::from(review.recommend)] += 1;
    }
    let ratings: Vec<String> = (1..=5)
        .filter(|r| ratings[r - 1] > 0)
        .map(|r| format!("\"{r}\":\"{}\"", ratings[r - 1]))
        .collect();
    let recommended: Vec<String> = [("false", recommended[0]), ("true", recommended[1])]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("\"{k}\":\"{n}\""))
        .collect();
    let mut chars = Vec::new();
    for (i, (id, name)) in product.chars.iter().enumerate() {
        let values: Vec<i32> = visible.iter().map(|r| r.values[i]).collect();
        let value = average(&values);
        chars.push(format!(
            "{}:{{\"id\":{id},\"value\":{}}}",
            serde_json::to_string(name).unwrap(),
            value.map_or("null".to_string(), |v| format!("\"{v}\""))
        ));
    }
    format!(
        "{{\"product_id\":\"{}\",\"ratings\":{{{}}},\"recommended\":{{{}}},\"characteristics\":{{{}}}}}",
        product.id,
        ratings.join(","),
        recommended.join(","),
        chars.join(",")
    )
}

/// `avg(integer)::text` of `values` as PostgreSQL prints it, from the independent model in
/// dataset.rs; None for no values.
pub fn average(values: &[i32]) -> Option<String> {
    let sum: i64 = values.iter().map(|v| i64::from(*v)).sum();
    (!values.is_empty()).then(|| crate::dataset::pg_average(sum, values.len() as i64))
}
