//! Checking rows: every rule of docs/dataset.md, in Rust, against compact maps of what the
//! earlier files held, so no bad row reaches PostgreSQL.

use super::copy::CopyEncoder;
use crate::etl::csv::Record;
use crate::etl::dataset::CsvFile;
use std::collections::{HashMap, HashSet};

/// Everything later files and product_meta need from earlier files. Ids are dense in real
/// exports (max id = row count), so the maps are arrays indexed by id (see [`IdMap`]): at full
/// size about 4 bytes per review, 28 per characteristic, 32 per product, 24 per photo.
#[derive(Default)]
pub(super) struct State {
    /// characteristic id -> its index in `chars` + 1
    char_slots: IdMap,
    pub(super) chars: Vec<Char>,
    pub(super) names: Names,
    /// review id -> product id
    reviews: IdMap,
    reported: IdSet,
    /// product id -> its index in `products` + 1
    product_slots: IdMap,
    pub(super) products: Vec<ProductCounts>,
    photos: IdSet,
    values: IdSet,
    /// Where each good photo's URL is in reviews_photos.csv, for the reviews' photos JSON.
    pub(super) photos_by_review: Vec<PhotoRef>,
    /// Photos and values carry their review's product id last (Citus: sql/citus/distribute.sql).
    pub(super) with_product_ids: bool,
}

/// A characteristic and the sum and count of the values of visible reviews for it.
pub(super) struct Char {
    pub(super) id: u32,
    pub(super) product: u32,
    pub(super) name: u32,
    pub(super) count: u32,
    pub(super) sum: u64,
}

/// A product's visible reviews per rating 1..5 and per recommend {false, true}.
pub(super) struct ProductCounts {
    pub(super) id: u32,
    pub(super) ratings: [u32; 5],
    pub(super) recommended: [u32; 2],
}

pub(super) struct PhotoRef {
    pub(super) review: u32,
    pub(super) id: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
    /// The URL holds doubled quotes in the file.
    pub(super) doubled: bool,
}

impl State {
    pub(super) fn new(with_product_ids: bool) -> State {
        State {
            with_product_ids,
            ..State::default()
        }
    }

    fn product(&mut self, product_id: i32) -> &mut ProductCounts {
        let slot = match self.product_slots.get(product_id) {
            Some(slot) => slot as usize - 1,
            None => {
                self.products.push(ProductCounts {
                    id: product_id as u32,
                    ratings: [0; 5],
                    recommended: [0; 2],
                });
                self.product_slots
                    .insert(product_id, self.products.len() as i32);
                self.products.len() - 1
            }
        };
        &mut self.products[slot]
    }
}

/// Characteristic names, stored once each (the real data has six).
#[derive(Default)]
pub(super) struct Names {
    index: HashMap<Box<[u8]>, u32>,
    names: Vec<Box<[u8]>>,
}

impl Names {
    fn intern(&mut self, name: &[u8]) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        i
    }

    pub(super) fn get(&self, i: u32) -> &[u8] {
        &self.names[i as usize]
    }
}

/// Rejects a record that is not a row of `expected` fields of clean UTF-8 text.
pub(super) fn check_shape(record: &Record<'_>, expected: usize) -> Result<(), String> {
    if let Some(e) = record.error() {
        return Err(e.reason().to_string());
    }
    if record.len() != expected {
        return Err(format!(
            "wrong number of fields: {} instead of {expected}",
            record.len()
        ));
    }
    let raw = record.raw();
    // PostgreSQL text can hold neither; one bad row must not abort the whole COPY.
    if raw.contains(&0) {
        return Err("contains a NUL byte, which PostgreSQL text cannot hold".to_string());
    }
    if std::str::from_utf8(raw).is_err() {
        return Err("not valid UTF-8".to_string());
    }
    Ok(())
}

/// The typed fields of a review row.
pub(super) struct ParsedReview {
    pub(super) id: i32,
    pub(super) product_id: i32,
    pub(super) rating: i16,
    pub(super) date_ms: i64,
    pub(super) recommend: bool,
    pub(super) reported: bool,
    pub(super) helpfulness: i32,
}

pub(super) fn parse_review(r: &Record<'_>) -> Result<ParsedReview, String> {
    Ok(ParsedReview {
        id: id_field(r, 0, "id")?,
        product_id: id_field(r, 1, "product_id")?,
        rating: score_field(r, 2, "rating")?,
        date_ms: date_field(r, 3)?,
        recommend: bool_field(r, 6, "recommend")?,
        reported: bool_field(r, 7, "reported")?,
        helpfulness: parse_int(r.field(11))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| bad(r, 11, "helpfulness", "not a 32-bit integer"))?,
    })
}

/// Checks one row of `kind` against the files before it and, when it is good, records it in
/// `state` and (but for reviews, sent later) encodes it in `out`.
pub(super) fn check_row(
    kind: CsvFile,
    r: &Record<'_>,
    state: &mut State,
    out: &mut CopyEncoder,
) -> Result<(), String> {
    match kind {
        CsvFile::Characteristics => {
            let id = id_field(r, 0, "id")?;
            let product_id = id_field(r, 1, "product_id")?;
            if state.char_slots.get(id).is_some() {
                return Err(duplicate(id));
            }
            let name = state.names.intern(r.field(2));
            state.chars.push(Char {
                id: id as u32,
                product: product_id as u32,
                name,
                count: 0,
                sum: 0,
            });
            state.char_slots.insert(id, state.chars.len() as i32);
            // A product with characteristics has a meta row even without reviews.
            state.product(product_id);
            out.tuple(3);
            out.int4(id);
            out.int4(product_id);
            out.text(r.field(2));
        }
        CsvFile::Reviews => {
            let review = parse_review(r)?;
            if state.reviews.get(review.id).is_some() {
                return Err(duplicate(review.id));
            }
            state.reviews.insert(review.id, review.product_id);
            let product = state.product(review.product_id);
            if review.reported {
                state.reported.insert(review.id);
            } else {
                product.ratings[review.rating as usize - 1] += 1;
                product.recommended[usize::from(review.recommend)] += 1;
            }
        }
        CsvFile::Photos => {
            let id = id_field(r, 0, "id")?;
            let review_id = id_field(r, 1, "review_id")?;
            if state.photos.contains(id) {
                return Err(duplicate(id));
            }
            if state.reviews.get(review_id).is_none() {
                return Err(missing_review(review_id));
            }
            state.photos.insert(id);
            let (offset, len, doubled) = r.span(2);
            state.photos_by_review.push(PhotoRef {
                review: review_id as u32,
                id: id as u32,
                offset,
                len,
                doubled,
            });
            let review_product = state.reviews.get(review_id).unwrap_or_default();
            out.tuple(3 + i16::from(state.with_product_ids));
            out.int4(id);
            out.int4(review_id);
            out.text(r.field(2));
            if state.with_product_ids {
                out.int4(review_product);
            }
        }
        CsvFile::CharacteristicReviews => {
            let id = id_field(r, 0, "id")?;
            let characteristic_id = id_field(r, 1, "characteristic_id")?;
            let review_id = id_field(r, 2, "review_id")?;
            let value = score_field(r, 3, "value")?;
            if state.values.contains(id) {
                return Err(duplicate(id));
            }
            let Some(slot) = state.char_slots.get(characteristic_id) else {
                return Err(format!(
                    "characteristic {characteristic_id} does not exist \
                     (not in {}, or rejected there)",
                    CsvFile::Characteristics.name()
                ));
            };
            let Some(review_product) = state.reviews.get(review_id) else {
                return Err(missing_review(review_id));
            };
            let characteristic = &mut state.chars[slot as usize - 1];
            if characteristic.product != review_product as u32 {
                return Err(format!(
                    "characteristic {characteristic_id} is of product {} \
                     but review {review_id} is of product {review_product}",
                    characteristic.product
                ));
            }
            if !state.reported.contains(review_id) {
                characteristic.sum += value as u64;
                characteristic.count += 1;
            }
            state.values.insert(id);
            out.tuple(4 + i16::from(state.with_product_ids));
            out.int4(id);
            out.int4(characteristic_id);
            out.int4(review_id);
            out.int2(value);
            if state.with_product_ids {
                out.int4(review_product);
            }
        }
    }
    Ok(())
}

fn duplicate(id: i32) -> String {
    format!("duplicate id {id}: an earlier row with this id was loaded")
}

fn missing_review(review_id: i32) -> String {
    format!(
        "review {review_id} does not exist (not in {}, or rejected there)",
        CsvFile::Reviews.name()
    )
}

/// A reason naming the field and quoting (a bounded prefix of) its value.
fn bad(r: &Record<'_>, i: usize, name: &str, why: &str) -> String {
    let value = String::from_utf8_lossy(r.field(i));
    let shown: String = value.chars().take(40).collect();
    format!("{name}: {why}: \"{shown}\"")
}

/// Ids are positive integers that fit in PostgreSQL's integer (and the API's 32-bit ids).
fn id_field(r: &Record<'_>, i: usize, name: &str) -> Result<i32, String> {
    match parse_int(r.field(i)) {
        Some(v) if (1..=i64::from(i32::MAX)).contains(&v) => Ok(v as i32),
        _ => Err(bad(r, i, name, "not a positive 32-bit integer")),
    }
}

fn score_field(r: &Record<'_>, i: usize, name: &str) -> Result<i16, String> {
    match parse_int(r.field(i)) {
        Some(v) if (1..=5).contains(&v) => Ok(v as i16),
        _ => Err(bad(r, i, name, "not an integer from 1 to 5")),
    }
}

/// The first millisecond of 10000-01-01: dates must fall in the years 1970 to 9999.
const DATE_LIMIT_MS: i64 = 253_402_300_800_000;

fn date_field(r: &Record<'_>, i: usize) -> Result<i64, String> {
    match parse_int(r.field(i)) {
        Some(v) if (0..DATE_LIMIT_MS).contains(&v) => Ok(v),
        _ => Err(bad(
            r,
            i,
            "date",
            "not epoch milliseconds in the years 1970 to 9999",
        )),
    }
}

fn bool_field(r: &Record<'_>, i: usize, name: &str) -> Result<bool, String> {
    match r.field(i) {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(bad(r, i, name, "not true or false")),
    }
}

/// An optionally negative decimal integer, digits only (no spaces, no plus sign, no fraction).
/// `None` also when it does not fit in an i64.
fn parse_int(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}

/// Ids are kept in a dense array while they stay within a few times the number of entries (the
/// real data: max id = row count); an id far beyond that goes to a hash map instead, so a single
/// absurd id (2,000,000,000) costs one map entry rather than gigabytes.
fn dense_ok(id: usize, len: usize, count: usize) -> bool {
    id < len || id <= 2 * count + (1 << 20)
}

/// id -> a positive value (0 in the dense array means absent).
#[derive(Default)]
struct IdMap {
    dense: Vec<u32>,
    sparse: HashMap<u32, u32>,
    count: usize,
}

impl IdMap {
    fn get(&self, id: i32) -> Option<i32> {
        let id = id as usize;
        match self.dense.get(id) {
            Some(&v) if v != 0 => Some(v as i32),
            _ => self.sparse.get(&(id as u32)).map(|&v| v as i32),
        }
    }

    /// `id` must be absent and `value` positive.
    fn insert(&mut self, id: i32, value: i32) {
        let id = id as usize;
        if dense_ok(id, self.dense.len(), self.count) {
            if id >= self.dense.len() {
                self.dense.resize(id + 1, 0);
            }
            self.dense[id] = value as u32;
        } else {
            self.sparse.insert(id as u32, value as u32);
        }
        self.count += 1;
    }
}

#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    sparse: HashSet<u32>,
    count: usize,
}

impl IdSet {
    fn contains(&self, id: i32) -> bool {
        let id = id as usize;
        match self.bits.get(id / 64) {
            Some(w) if w & (1 << (id % 64)) != 0 => true,
            _ => self.sparse.contains(&(id as u32)),
        }
    }

    fn insert(&mut self, id: i32) {
        let id = id as usize;
        if dense_ok(id, self.bits.len() * 64, self.count) {
            if id / 64 >= self.bits.len() {
                self.bits.resize(id / 64 + 1, 0);
            }
            self.bits[id / 64] |= 1 << (id % 64);
        } else {
            self.sparse.insert(id as u32);
        }
        self.count += 1;
    }
}

/// One bit per record number.
#[derive(Default)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    pub(super) fn set(&mut self, i: usize) {
        if i / 64 >= self.0.len() {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_int(b"1596080481467"), Some(1_596_080_481_467));
        assert_eq!(parse_int(b"-3"), Some(-3));
        for bad in [
            &b""[..],
            b"-",
            b"1.5",
            b" 1",
            b"+1",
            b"1e3",
            b"9999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_huge_id_does_not_grow_the_dense_array() {
        let mut map = IdMap::default();
        map.insert(2_000_000_000, 7);
        map.insert(3, 9);
        assert!(map.dense.len() < 1 << 21);
        assert_eq!(map.get(2_000_000_000), Some(7));
        assert_eq!(map.get(3), Some(9));
        assert_eq!(map.get(4), None);
        let mut set = IdSet::default();
        set.insert(i32::MAX);
        set.insert(64);
        assert!(set.bits.len() < 1 << 16);
        assert!(set.contains(i32::MAX) && set.contains(64) && !set.contains(63));
    }
}
