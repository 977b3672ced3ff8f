//! `reviews-api load`: a small dataset with every kind of bad row docs/dataset.md names, loaded into a
//! real database. The expected rejects, rows and meta counters are computed here from the rows
//! the test wrote, not copied from a run.

use crate::dataset::Review;
use crate::helpers::app::{spawn_app, temp_dir, TestDb};
use crate::helpers::csv::{quote, read_rejects, review_row};
use reviews_api::etl::dataset::CsvFile;
use reviews_api::etl::load::{self, LoadArgs, LoadReport, Tuning};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio_postgres::types::FromSqlOwned;

/// A good review of `product_id` rated `rating`: summary "s", body "b", recommended, visible,
/// no response, no votes; the tests set what differs with struct update syntax.
fn review(id: i32, product_id: i32, rating: i32) -> Review {
    Review {
        id,
        product_id,
        rating,
        date_ms: 1_596_080_481_467 + i64::from(id) * 86_400_123,
        summary: "s".into(),
        body: "b".into(),
        recommend: true,
        reported: false,
        name: format!("reviewer {id}"),
        email: format!("r{id}@example.com"),
        response: None,
        helpfulness: 0,
    }
}

/// One CSV file being written: good rows are kept for the expectations, bad rows remember the
/// line they start on and a piece of the reason the loader must give.
struct File<T> {
    name: &'static str,
    text: String,
    line: u64,
    good: Vec<T>,
    bad: Vec<(u64, &'static str, String)>,
    crlf: bool,
}

impl<T> File<T> {
    fn new(csv: CsvFile, crlf: bool) -> File<T> {
        let mut file = File {
            name: csv.name(),
            text: String::new(),
            line: 1,
            good: Vec::new(),
            bad: Vec::new(),
            crlf,
        };
        file.push_line(&csv.header());
        file
    }

    fn push_line(&mut self, line: &str) -> u64 {
        let start = self.line;
        self.text.push_str(line);
        self.text.push_str(if self.crlf { "\r\n" } else { "\n" });
        self.line += 1 + line.matches('\n').count() as u64;
        start
    }

    fn good(&mut self, row: T, line: &str) {
        self.push_line(line);
        self.good.push(row);
    }

    fn bad(&mut self, line: &str, reason: &'static str) {
        let at = self.push_line(line);
        self.bad.push((at, reason, line.to_string()));
    }

    fn write(&self, dir: &Path) {
        std::fs::write(dir.join(self.name), &self.text).unwrap();
    }

    /// (file, good rows, bad rows).
    fn count(&self) -> (&'static str, u64, u64) {
        (self.name, self.good.len() as u64, self.bad.len() as u64)
    }
}

struct Dataset {
    characteristics: File<(i32, i32, String)>,
    reviews: File<Review>,
    photos: File<(i32, i32, String)>,
    values: File<(i32, i32, i32, i16)>,
}

/// Every bad-row kind of docs/dataset.md, and the awkward text of real exports.
fn dirty_dataset() -> Dataset {
    let mut c = File::new(CsvFile::Characteristics, false);
    for (id, product, name) in [(2, 1, "Length"), (1, 1, "Fit"), (3, 2, "Quality")] {
        c.good(
            (id, product, name.to_string()),
            &format!("{id},{product},\"{name}\""),
        );
    }
    c.bad("3,9,\"Quality again\"", "duplicate id 3");
    c.bad("x1,1,\"Size\"", "id: not a positive 32-bit integer");
    c.bad(
        "5,abc,\"Size\"",
        "product_id: not a positive 32-bit integer",
    );
    c.bad("6,3", "wrong number of fields: 2 instead of 3");
    c.bad("0,3,\"Zero\"", "id: not a positive 32-bit integer");
    c.bad(
        "2147483648,3,\"Too big\"",
        "id: not a positive 32-bit integer",
    );
    // Unquoted text is text too, and a characteristic nobody rated still counts.
    c.good((7, 2, "Comfort".into()), "7,2,Comfort");
    c.good((4, 3, "Width".into()), "4,3,\"Width\"");

    let mut r = File::new(CsvFile::Reviews, false);
    let good = [
        // Out of id order; quotes, doubled quotes, commas, newlines, Unicode.
        Review {
            summary: "Summary, with a comma".into(),
            body: "Body with \"doubled\" quotes,\nand a newline\r\nand CRLF".into(),
            helpfulness: 3,
            ..review(2, 1, 4)
        },
        Review {
            summary: "Ünïcödé 😀 日本語".into(),
            body: "It's great, isn't it? \"Yes\".".into(),
            recommend: false,
            response: Some("null".into()),
            helpfulness: 8,
            ..review(1, 1, 5)
        },
        Review {
            summary: "Reported one".into(),
            body: "Hidden".into(),
            reported: true,
            response: Some("Thanks, \"friend\"".into()),
            ..review(3, 1, 2)
        },
        Review {
            summary: "Other product".into(),
            helpfulness: 1,
            ..review(4, 2, 3)
        },
        Review {
            summary: "".into(),
            body: "".into(),
            recommend: false,
            response: Some("".into()),
            ..review(11, 4, 1)
        },
        Review {
            recommend: false,
            helpfulness: 2,
            ..review(14, 2, 5)
        },
        Review {
            helpfulness: 2_000_000_000,
            ..review(15, 1, 1)
        },
        Review {
            summary: "reported too".into(),
            recommend: false,
            reported: true,
            ..review(16, 2, 2)
        },
        // A product whose only review is reported still has a (zero) meta row.
        Review {
            summary: "only reported".into(),
            reported: true,
            ..review(21, 5, 4)
        },
    ];
    for g in &good[..4] {
        r.good(g.clone(), &review_row(g));
    }
    let base = "1596080481470,\"s\",\"b\",true,false,\"n\",\"e\",null,0";
    r.bad(
        &format!("5,1,7,{base}"),
        "rating: not an integer from 1 to 5",
    );
    r.bad(
        &format!("17,1,0,{base}"),
        "rating: not an integer from 1 to 5",
    );
    r.bad(
        "6,1,3,notadate,\"s\",\"b\",true,false,\"n\",\"e\",null,0",
        "date: not epoch milliseconds",
    );
    r.bad(
        "7,1,3,1596080481470,\"s\",\"b\",yes,false,\"n\",\"e\",null,0",
        "recommend: not true or false",
    );
    r.bad(
        "18,1,3,1596080481470,\"s\",\"b\",true,1,\"n\",\"e\",null,0",
        "reported: not true or false",
    );
    r.bad(&format!("2,1,1,{base}"), "duplicate id 2");
    r.bad(
        "8,1,3,1596080481470,\"s\",\"b\",true,false,\"n\",\"e\",null",
        "wrong number of fields: 11 instead of 12",
    );
    r.bad(
        &format!("abc,1,3,{base}"),
        "id: not a positive 32-bit integer",
    );
    r.bad(
        &format!("19,p1,3,{base}"),
        "product_id: not a positive 32-bit integer",
    );
    r.bad(
        "9,1,3,253402300800000,\"s\",\"b\",true,false,\"n\",\"e\",null,0",
        "date: not epoch milliseconds",
    );
    r.bad(
        "13,1,3,-5,\"s\",\"b\",true,false,\"n\",\"e\",null,0",
        "date: not epoch milliseconds",
    );
    r.bad(
        "10,1,3,1596080481470,\"s\",\"nul \0 byte\",true,false,\"n\",\"e\",null,0",
        "NUL byte",
    );
    r.bad(
        "12,1,3,1596080481470,\"s\"x,\"b\",true,false,\"n\",\"e\",null,0",
        "malformed quoting",
    );
    r.bad(
        "20,1,3,1596080481470,\"s\",\"b\",true,false,\"n\",\"e\",null,1.5",
        "helpfulness: not a 32-bit integer",
    );
    r.bad("", "wrong number of fields: 1 instead of 12");
    for g in &good[4..] {
        r.good(g.clone(), &review_row(g));
    }

    // CRLF line endings, photos out of id order.
    let mut p = File::new(CsvFile::Photos, true);
    for (id, review, url) in [
        (8, 1, "https://example.com/b.jpg?x=1&y=2,3"),
        (7, 1, "https://example.com/a \"quoted\".jpg"),
        (11, 2, "https://example.com/c.jpg"),
        (14, 2, "https://example.com/back\\slash\ttab/é😀.jpg"),
    ] {
        p.good(
            (id, review, url.to_string()),
            &format!("{id},{review},{}", quote(url)),
        );
    }
    p.bad(
        "9,5,\"https://example.com/of-a-rejected-review.jpg\"",
        "review 5 does not exist",
    );
    p.bad(
        "10,999,\"https://example.com/missing.jpg\"",
        "review 999 does not exist",
    );
    p.bad("7,2,\"https://example.com/dup.jpg\"", "duplicate id 7");
    p.bad("12,x,\"u\"", "review_id: not a positive 32-bit integer");
    p.good((13, 16, "u".into()), "13,16,u");

    let mut v = File::new(CsvFile::CharacteristicReviews, false);
    for (id, ch, rv, val) in [
        (1, 1, 1, 5),
        (2, 2, 1, 4),
        (4, 2, 2, 2),
        (3, 1, 2, 3),
        (5, 1, 3, 1),
        (6, 2, 3, 1),
        (7, 3, 4, 4),
        (9, 3, 14, 2),
        (15, 7, 16, 1),
        (16, 1, 15, 5),
    ] {
        v.good((id, ch, rv, val), &format!("{id},{ch},{rv},{val}"));
    }
    v.bad(
        "8,1,4,3",
        "characteristic 1 is of product 1 but review 4 is of product 2",
    );
    v.bad("10,6,4,3", "characteristic 6 does not exist");
    v.bad("11,1,5,3", "review 5 does not exist");
    v.bad("12,1,1,0", "value: not an integer from 1 to 5");
    v.bad("1,2,2,5", "duplicate id 1");
    v.bad(
        "13,x,1,3",
        "characteristic_id: not a positive 32-bit integer",
    );
    v.bad("14,3,4", "wrong number of fields: 3 instead of 4");

    Dataset {
        characteristics: c,
        reviews: r,
        photos: p,
        values: v,
    }
}

impl Dataset {
    fn write(&self, dir: &Path) {
        self.characteristics.write(dir);
        self.reviews.write(dir);
        self.photos.write(dir);
        self.values.write(dir);
    }

    /// (file, rows loaded, rows rejected) per file, in the order `load` reports them.
    fn counts(&self) -> Vec<(&'static str, u64, u64)> {
        vec![
            self.characteristics.count(),
            self.reviews.count(),
            self.photos.count(),
            self.values.count(),
        ]
    }

    fn bad_rows(&self) -> Vec<(&'static str, u64, &'static str, String)> {
        let mut all = Vec::new();
        let mut add = |name: &'static str, bad: &[(u64, &'static str, String)]| {
            all.extend(bad.iter().map(|(l, r, t)| (name, *l, *r, t.clone())));
        };
        add(self.characteristics.name, &self.characteristics.bad);
        add(self.reviews.name, &self.reviews.bad);
        add(self.photos.name, &self.photos.bad);
        add(self.values.name, &self.values.bad);
        all
    }

    /// The photos JSON of a review as docs/api.md shows it: by photo id, no spaces.
    fn photos_json(&self, review_id: i32) -> String {
        let mut photos: Vec<_> = self
            .photos
            .good
            .iter()
            .filter(|p| p.1 == review_id)
            .collect();
        photos.sort_by_key(|p| p.0);
        let items: Vec<String> = photos
            .iter()
            .map(|p| {
                format!(
                    "{{\"id\":{},\"url\":{}}}",
                    p.0,
                    serde_json::to_string(&p.2).unwrap()
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// product_meta as the test understands docs/dataset.md: reported reviews count nowhere.
    fn meta(&self) -> BTreeMap<i32, Meta> {
        let mut metas: BTreeMap<i32, Meta> = BTreeMap::new();
        let mut chars = self.characteristics.good.clone();
        chars.sort();
        for (id, product, name) in &chars {
            let m = metas.entry(*product).or_default();
            m.char_ids.push(*id);
            m.char_names.push(name.clone());
            m.char_sums.push(0);
            m.char_counts.push(0);
        }
        for r in &self.reviews.good {
            let m = metas.entry(r.product_id).or_default();
            if r.reported {
                continue;
            }
            m.ratings[r.rating as usize - 1] += 1;
            m.recommended[usize::from(r.recommend)] += 1;
        }
        for (_, ch, rv, val) in &self.values.good {
            let review = self.reviews.good.iter().find(|r| r.id == *rv).unwrap();
            if review.reported {
                continue;
            }
            let m = metas.get_mut(&review.product_id).unwrap();
            let at = m.char_ids.iter().position(|c| c == ch).unwrap();
            m.char_sums[at] += i64::from(*val);
            m.char_counts[at] += 1;
        }
        metas
    }
}

#[derive(Debug, Default, PartialEq)]
struct Meta {
    ratings: [i32; 5],
    recommended: [i32; 2],
    char_ids: Vec<i32>,
    char_names: Vec<String>,
    char_sums: Vec<i64>,
    char_counts: Vec<i32>,
}

async fn load_from(db: &TestDb, dir: &Path) -> anyhow::Result<LoadReport> {
    load_tuned(db, dir, Tuning::default()).await
}

async fn load_tuned(db: &TestDb, dir: &Path, tuning: Tuning) -> anyhow::Result<LoadReport> {
    let args = LoadArgs {
        dir: dir.to_path_buf(),
        rejects: Some(dir.join("rejects.csv")),
    };
    load::run_tuned(&db.settings(), &args, tuning).await
}

fn dataset_dir(name: &str, data: &Dataset) -> tempfile::TempDir {
    let dir = temp_dir(name);
    data.write(dir.path());
    dir
}

async fn reviews_in(client: &tokio_postgres::Client) -> Vec<Review> {
    client
        .query(
            "SELECT id, product_id, rating, date_ms, summary, body, recommend, reported, \
             reviewer_name, reviewer_email, response, helpfulness FROM reviews ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Review {
            id: row.get(0),
            product_id: row.get(1),
            rating: row.get::<_, i16>(2).into(),
            date_ms: row.get(3),
            summary: row.get(4),
            body: row.get(5),
            recommend: row.get(6),
            reported: row.get(7),
            name: row.get(8),
            email: row.get(9),
            response: row.get(10),
            helpfulness: row.get(11),
        })
        .collect()
}

#[tokio::test]
async fn load_keeps_exactly_the_good_rows_and_reports_every_bad_one() {
    dirty_load(Tuning::default()).await;
}

/// The same load with the reviews copied by both connections without FREEZE, as the tail of a
/// full-size load is: the same rows, documents and meta.
#[tokio::test]
async fn load_with_the_reviews_shared_between_connections_gives_the_same_result() {
    let (_db, report) = dirty_load(Tuning {
        share_reviews_at_once: true,
    })
    .await;
    assert!(
        report
            .phases
            .iter()
            .any(|p| p.name == "copy reviews (shared)"),
        "{:?}",
        report.phases
    );
    // Not asserted: that VACUUM then marks those pages all-visible. It skips a page someone has
    // pinned at that moment (a checkpoint caused by the other tests' databases, say), so here
    // it would be flaky; at full size every page of the loaded tables was all-visible.
}

/// Loads the dirty dataset and checks everything about the result; returns the database.
async fn dirty_load(tuning: Tuning) -> (TestDb, LoadReport) {
    // Arrange
    let db = TestDb::new().await;
    let data = dirty_dataset();
    let folder = dataset_dir("dirty", &data);
    let dir = folder.path();
    // A product.csv belongs to another service and must be ignored, even when it is garbage.
    std::fs::write(dir.join("product.csv"), "not,a\n\"valid file").unwrap();

    let client = db.client().await;
    let shape_before = schema_shape(&client).await;

    // Act
    let report = load_tuned(&db, dir, tuning)
        .await
        .expect("load succeeds despite bad rows");

    // The served tables are exactly what migrate makes: columns, keys, constraints, indexes.
    assert_eq!(schema_shape(&client).await, shape_before);

    // Assert: counts per file
    let counts: Vec<_> = report
        .files
        .iter()
        .map(|f| (f.file, f.loaded, f.rejected))
        .collect();
    assert_eq!(counts, data.counts());
    assert_eq!(report.rejects_path, dir.join("rejects.csv"));

    // Every bad row is in the rejects file with its line, a reason and its original text.
    let rejects = read_rejects(&report.rejects_path);
    let expected = data.bad_rows();
    assert_eq!(rejects.len(), expected.len(), "rejects: {rejects:#?}");
    for (file, line, reason, text) in &expected {
        let found = rejects
            .iter()
            .find(|r| r.0 == *file && r.1 == *line)
            .unwrap_or_else(|| panic!("{file} line {line} is not in the rejects: {rejects:#?}"));
        assert!(
            found.2.contains(reason),
            "{file}:{line}: reason {:?} lacks {reason:?}",
            found.2
        );
        assert_eq!(found.3, text.as_bytes(), "{file}:{line}: row text");
    }

    // The database holds exactly the good rows, text byte for byte, NULL apart from 'null'.
    let mut want = data.reviews.good.clone();
    want.sort_by_key(|r| r.id);
    assert_eq!(reviews_in(&client).await, want);
    let response = "SELECT response FROM reviews WHERE id =";
    assert_eq!(
        one::<Option<String>>(&client, &format!("{response} 2")).await,
        None
    );
    let text_null: Option<String> = one(&client, &format!("{response} 1")).await;
    assert_eq!(text_null.as_deref(), Some("null"));

    let sql = "SELECT id, product_id, name FROM characteristics ORDER BY id";
    assert_rows(&client, sql, &data.characteristics.good).await;
    let sql = "SELECT id, review_id, url FROM reviews_photos ORDER BY id";
    assert_rows(&client, sql, &data.photos.good).await;
    let sql =
        "SELECT id, characteristic_id, review_id, value FROM characteristic_reviews ORDER BY id";
    assert_rows(&client, sql, &data.values.good).await;

    // Each review's photos column, and the document built from it.
    for r in &data.reviews.good {
        let row = client
            .query_one("SELECT photos, doc FROM reviews WHERE id = $1", &[&r.id])
            .await
            .unwrap();
        let photos: String = row.get(0);
        assert_eq!(photos, data.photos_json(r.id), "photos of review {}", r.id);
        let doc: serde_json::Value = serde_json::from_str(row.get(1)).unwrap();
        assert_eq!(doc["body"], r.body.as_str());
        assert_eq!(
            doc["photos"],
            serde_json::from_str::<serde_json::Value>(&photos).unwrap()
        );
    }
    assert!(
        data.photos_json(1).starts_with("[{\"id\":7,"),
        "the test covers photo order"
    );

    // product_meta, computed above from the good rows only.
    let rows = client
        .query(
            "SELECT product_id, ratings, recommended, char_ids, char_names, char_sums, char_counts \
             FROM product_meta ORDER BY product_id",
            &[],
        )
        .await
        .unwrap();
    let got: BTreeMap<i32, Meta> = rows
        .iter()
        .map(|row| {
            let ratings: Vec<i32> = row.get(1);
            let recommended: Vec<i32> = row.get(2);
            (
                row.get(0),
                Meta {
                    ratings: ratings.try_into().unwrap(),
                    recommended: recommended.try_into().unwrap(),
                    char_ids: row.get(3),
                    char_names: row.get(4),
                    char_sums: row.get(5),
                    char_counts: row.get(6),
                },
            )
        })
        .collect();
    assert_eq!(got, data.meta());

    // The served meta shows the same counters (reported reviews excluded).
    let app = spawn_app(db.settings()).await;
    let meta: serde_json::Value = app
        .get("/reviews/meta?product_id=1")
        .await
        .json()
        .await
        .unwrap();
    let want = &data.meta()[&1];
    for (i, n) in want.ratings.iter().enumerate().filter(|(_, n)| **n > 0) {
        assert_eq!(meta["ratings"][(i + 1).to_string()], n.to_string());
    }
    assert_eq!(meta["recommended"]["true"], want.recommended[1].to_string());

    // New rows get ids above the loaded ones: each table's id sequence is next past its maximum.
    let max = max_id(&client, "reviews").await;
    assert_eq!(max, data.reviews.good.iter().map(|r| r.id).max().unwrap());
    for table in [
        "reviews",
        "reviews_photos",
        "characteristics",
        "characteristic_reviews",
    ] {
        let max = max_id(&client, table).await;
        assert_eq!(next_id(&client, table).await, max + 1, "{table}");
    }

    // No staging is left behind.
    assert_eq!(one::<i64>(&client, STAGING_SCHEMAS).await, 0);
    (db, report)
}

/// A clean dataset of `n` reviews over a few products, distinct from the dirty one.
fn clean_dataset(n: i32, tag: &str) -> Dataset {
    let mut c = File::new(CsvFile::Characteristics, false);
    for p in 1..=3 {
        c.good((p, p, "Fit".into()), &format!("{p},{p},\"Fit\""));
    }
    let mut r = File::new(CsvFile::Reviews, false);
    let mut v = File::new(CsvFile::CharacteristicReviews, false);
    for id in 1..=n {
        let product = id % 3 + 1;
        let g = Review {
            summary: tag.into(),
            body: tag.into(),
            recommend: id % 2 == 0,
            reported: id % 7 == 0,
            helpfulness: id,
            ..review(id, product, id % 5 + 1)
        };
        r.good(g.clone(), &review_row(&g));
        v.good(
            (id, product, id, (id % 5 + 1) as i16),
            &format!("{id},{product},{id},{}", id % 5 + 1),
        );
    }
    let mut p = File::new(CsvFile::Photos, false);
    p.good((1, 1, tag.into()), &format!("1,1,{}", quote(tag)));
    Dataset {
        characteristics: c,
        reviews: r,
        photos: p,
        values: v,
    }
}

#[tokio::test]
async fn a_failed_load_changes_nothing_and_a_second_load_replaces_the_first() {
    // Arrange: a first load.
    let db = TestDb::new().await;
    let client = db.client().await;
    let first = clean_dataset(40, "first");
    let first_dir = dataset_dir("first", &first);
    load_from(&db, first_dir.path()).await.expect("first load");
    let snapshot = || async {
        let row = client
            .query_one(
                "SELECT (SELECT md5(string_agg(doc, '|' ORDER BY id)) FROM reviews), \
                        (SELECT md5(string_agg(doc, '|' ORDER BY product_id)) FROM product_meta), \
                        (SELECT count(*) FROM characteristic_reviews)",
                &[],
            )
            .await
            .unwrap();
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2),
        )
    };
    let before = snapshot().await;
    assert_eq!(before.2, 40);

    // Act + Assert: a missing file fails before anything changes.
    let broken_dir = dataset_dir("missing", &clean_dataset(10, "broken"));
    let broken = broken_dir.path();
    std::fs::remove_file(broken.join(CsvFile::Photos.name())).unwrap();
    let err = load_from(&db, broken)
        .await
        .expect_err("a missing file is an error");
    assert!(
        format!("{err:#}").contains(CsvFile::Photos.name()),
        "{err:#}"
    );
    assert_eq!(snapshot().await, before);

    // Rejects aimed at an input file would destroy it: refused, and the file is intact.
    let args = LoadArgs {
        dir: broken.to_path_buf(),
        rejects: Some(broken.join(CsvFile::Reviews.name())),
    };
    std::fs::write(
        broken.join(CsvFile::Photos.name()),
        CsvFile::Photos.header() + "\n",
    )
    .unwrap();
    let reviews_before = std::fs::read(broken.join(CsvFile::Reviews.name())).unwrap();
    let err = load::run(&db.settings(), &args)
        .await
        .expect_err("rejects over an input is an error");
    assert!(
        format!("{err:#}").contains("an input of the load"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read(broken.join(CsvFile::Reviews.name())).unwrap(),
        reviews_before
    );
    assert_eq!(snapshot().await, before);

    // A wrong header too.
    let bad_header_dir = dataset_dir("header", &clean_dataset(10, "header"));
    let bad_header = bad_header_dir.path();
    std::fs::write(
        bad_header.join(CsvFile::Characteristics.name()),
        "id,product,name\n1,1,\"Fit\"\n",
    )
    .unwrap();
    let err = load_from(&db, bad_header)
        .await
        .expect_err("a wrong header is an error");
    assert!(format!("{err:#}").contains("wrong header"), "{err:#}");
    assert_eq!(snapshot().await, before);

    // A failure at the very last step (the swap cannot drop a table a view depends on) rolls
    // everything back: still the first load, and no staging left behind.
    client
        .batch_execute("CREATE VIEW pinned AS SELECT id FROM reviews")
        .await
        .unwrap();
    let err = load_from(&db, &bad_header_fixed(bad_header))
        .await
        .expect_err("swap fails");
    assert!(format!("{err:#}").contains("swap"), "{err:#}");
    assert_eq!(snapshot().await, before);
    assert_eq!(one::<i64>(&client, STAGING_SCHEMAS).await, 0);
    client.batch_execute("DROP VIEW pinned").await.unwrap();

    // A second successful load replaces the first entirely.
    let second = clean_dataset(25, "second");
    let second_dir = dataset_dir("second", &second);
    let report = load_from(&db, second_dir.path())
        .await
        .expect("second load");
    assert_eq!(report.file(CsvFile::Reviews.name()).unwrap().loaded, 25);
    assert_eq!(reviews_in(&client).await, second.reviews.good);
    let photos: Vec<String> = client
        .query("SELECT url FROM reviews_photos", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(photos, vec!["second".to_string()]);
    let values: i64 = one(&client, "SELECT count(*) FROM characteristic_reviews").await;
    assert_eq!(values, 25);
    assert_eq!(next_id(&client, "reviews").await, 26);
}

/// The directory again with a correct characteristics.csv.
fn bad_header_fixed(dir: &Path) -> PathBuf {
    clean_dataset(10, "header").characteristics.write(dir);
    dir.to_path_buf()
}

/// A row of a loaded table as the test's tuple, read column by column.
trait FromRow {
    fn from_row(row: &tokio_postgres::Row) -> Self;
}

impl FromRow for (i32, i32, String) {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        (row.get(0), row.get(1), row.get(2))
    }
}

impl FromRow for (i32, i32, i32, i16) {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        (row.get(0), row.get(1), row.get(2), row.get(3))
    }
}

/// Asserts that `sql` returns exactly the `good` rows, in sorted order.
async fn assert_rows<T: FromRow + Ord + Clone + std::fmt::Debug>(
    client: &tokio_postgres::Client,
    sql: &str,
    good: &[T],
) {
    let rows = client.query(sql, &[]).await.unwrap();
    let got: Vec<T> = rows.iter().map(T::from_row).collect();
    let mut want = good.to_vec();
    want.sort();
    assert_eq!(got, want, "{sql}");
}

/// The one value the one row of `sql` holds.
async fn one<T: FromSqlOwned>(client: &tokio_postgres::Client, sql: &str) -> T {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// How many staging schemas a load left behind.
const STAGING_SCHEMAS: &str = "SELECT count(*) FROM pg_namespace WHERE nspname = 'reviews_load'";

/// The id the next row of `table` gets from its sequence (as POST /reviews draws them).
async fn next_id(client: &tokio_postgres::Client, table: &str) -> i32 {
    let id: i64 = one(
        client,
        &format!("SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"),
    )
    .await;
    i32::try_from(id).expect("an integer id")
}

async fn max_id(client: &tokio_postgres::Client, table: &str) -> i32 {
    one(client, &format!("SELECT max(id) FROM {table}")).await
}

/// Everything about the public tables' definitions, as text, for comparison.
async fn schema_shape(client: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' \
         || coalesce(column_default, '') || ' ' || is_identity || ' ' || coalesce(generation_expression, '') \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1",
    ];
    let mut shape = Vec::new();
    for query in queries {
        for row in client.query(query, &[]).await.unwrap() {
            shape.push(row.get(0));
        }
    }
    // The key of the topology: by review id, or (Citus) by product first.
    let key = match crate::helpers::topology::get().is_citus() {
        false => "reviews_pkey PRIMARY KEY (id)",
        true => "reviews_pkey PRIMARY KEY (product_id, id)",
    };
    assert!(shape.iter().any(|s: &String| s.contains(key)), "{shape:#?}");
    shape
}
