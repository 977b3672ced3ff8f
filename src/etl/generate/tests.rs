use super::*;
use crate::etl::dataset::CsvFile;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tempfile::TempDir;

/// A directory of its own under the system temp dir, removed when dropped.
fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("reviews-api-generate-{tag}-"))
        .tempdir()
        .expect("temp dir")
}

fn generate_into(tag: &str, products: u32, seed: u64) -> TempDir {
    let dir = temp_dir(tag);
    run(&GenerateArgs {
        products,
        seed,
        out: Some(dir.path().to_path_buf()),
        list_files: false,
    })
    .expect("generate");
    dir
}

fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    CsvFile::ALL
        .iter()
        .map(|f| {
            let path = dir.join(f.name());
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    text: String,
    quoted: bool,
}

/// A strict RFC 4180 reader: quoted fields must close, a quote inside must be doubled, and
/// nothing may follow a closing quote but a comma or the end of the line.
fn parse_csv(data: &str) -> Vec<Vec<Field>> {
    let mut rows = Vec::new();
    let mut chars = data.chars().peekable();
    while chars.peek().is_some() {
        let mut row = Vec::new();
        loop {
            let mut field = Field {
                text: String::new(),
                quoted: false,
            };
            if chars.peek() == Some(&'"') {
                chars.next();
                field.quoted = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.text.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.text.push(c),
                        None => panic!("unterminated quoted field"),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\n' {
                        break;
                    }
                    assert_ne!(c, '"', "quote in an unquoted field");
                    field.text.push(c);
                    chars.next();
                }
            }
            row.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\n') => break,
                None => panic!("last line has no newline"),
                Some(c) => panic!("{c:?} after a closing quote"),
            }
        }
        rows.push(row);
    }
    rows
}

/// Header line checked, then the rows.
fn read_csv(dir: &Path, file: CsvFile) -> Vec<Vec<Field>> {
    let (file, header) = (file.name(), file.header());
    let data = std::fs::read_to_string(dir.join(file)).expect(file);
    let (first, rest) = data.split_once('\n').expect("header line");
    assert_eq!(first, header, "{file} header");
    parse_csv(rest)
}

fn num(f: &Field) -> u64 {
    assert!(!f.quoted, "number {f:?} must not be quoted");
    f.text
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {f:?}"))
}

/// Ids are 1..=rows.len() with none repeated; some rows come before a smaller id.
fn check_dense_ids(rows: &[Vec<Field>], file: &str) {
    let mut seen = vec![false; rows.len() + 1];
    let mut out_of_order = 0;
    let mut previous = 0;
    for row in rows {
        let id = num(&row[0]) as usize;
        assert!(
            (1..=rows.len()).contains(&id),
            "{file}: id {id} out of range"
        );
        assert!(!seen[id], "{file}: id {id} twice");
        seen[id] = true;
        if id < previous {
            out_of_order += 1;
        }
        previous = id;
    }
    if rows.len() > 20_000 {
        assert!(out_of_order > 0, "{file}: strictly in id order");
    }
}

/// Everything a loader relies on, checked on the parsed output. Returns the per-product
/// review counts, the per-review photo counts and the per-product characteristic counts.
struct Shape {
    reviews_per_product: Vec<u64>,
    photos: u64,
    reviews: u64,
    characteristics: u64,
}

fn check_structure(dir: &Path, products: u32) -> Shape {
    let products = products as usize;

    let reviews = read_csv(dir, CsvFile::Reviews);
    check_dense_ids(&reviews, CsvFile::Reviews.name());
    let mut product_of_review = vec![0usize; reviews.len() + 1];
    let mut reviews_per_product = vec![0u64; products + 1];
    for row in &reviews {
        assert_eq!(row.len(), 12, "{} row {row:?}", CsvFile::Reviews.name());
        let id = num(&row[0]) as usize;
        let product = num(&row[1]) as usize;
        assert!((1..=products).contains(&product));
        product_of_review[id] = product;
        reviews_per_product[product] += 1;
        assert!((1..=5).contains(&num(&row[2])));
        let date = num(&row[3]);
        assert!((DATE_FROM_MS..DATE_TO_MS).contains(&date), "date {date}");
        for (i, max) in [
            (4, MAX_SUMMARY_CHARS),
            (5, MAX_BODY_CHARS),
            (8, MAX_NAME_CHARS),
        ] {
            assert!(row[i].quoted, "{row:?}");
            let chars = row[i].text.chars().count();
            assert!(
                (1..=max).contains(&chars),
                "field {i} has {chars} chars: {row:?}"
            );
        }
        for i in [6, 7] {
            assert!(!row[i].quoted && (row[i].text == "true" || row[i].text == "false"));
        }
        assert!(row[9].quoted && row[9].text.contains('@'));
        assert!(row[10].quoted || row[10].text == "null", "{row:?}");
        num(&row[11]);
    }

    let photos = read_csv(dir, CsvFile::Photos);
    check_dense_ids(&photos, CsvFile::Photos.name());
    for row in &photos {
        assert_eq!(row.len(), 3, "{} row {row:?}", CsvFile::Photos.name());
        let review = num(&row[1]) as usize;
        assert!(
            (1..=reviews.len()).contains(&review),
            "photo of missing review {row:?}"
        );
        assert!(row[2].quoted && row[2].text.starts_with("https://images.unsplash.com/"));
        assert!((80..=100).contains(&row[2].text.len()), "{row:?}");
    }

    let characteristics = read_csv(dir, CsvFile::Characteristics);
    check_dense_ids(&characteristics, CsvFile::Characteristics.name());
    let mut product_of_characteristic = vec![0usize; characteristics.len() + 1];
    let mut names_of_product: Vec<HashSet<String>> = vec![HashSet::new(); products + 1];
    for row in &characteristics {
        assert_eq!(
            row.len(),
            3,
            "{} row {row:?}",
            CsvFile::Characteristics.name()
        );
        let product = num(&row[1]) as usize;
        assert!((1..=products).contains(&product));
        product_of_characteristic[num(&row[0]) as usize] = product;
        assert!(row[2].quoted && CHARACTERISTIC_NAMES.contains(&row[2].text.as_str()));
        assert!(
            names_of_product[product].insert(row[2].text.clone()),
            "name twice for product {product}: {row:?}"
        );
    }
    for (product, names) in names_of_product.iter().enumerate().skip(1) {
        assert!((1..=6).contains(&names.len()), "product {product}");
    }

    let values = read_csv(dir, CsvFile::CharacteristicReviews);
    check_dense_ids(&values, CsvFile::CharacteristicReviews.name());
    let mut pairs = HashSet::new();
    let mut values_per_review = vec![0usize; reviews.len() + 1];
    for row in &values {
        assert_eq!(
            row.len(),
            4,
            "{} row {row:?}",
            CsvFile::CharacteristicReviews.name()
        );
        let characteristic = num(&row[1]) as usize;
        let review = num(&row[2]) as usize;
        assert!((1..=characteristics.len()).contains(&characteristic));
        assert!((1..=reviews.len()).contains(&review));
        assert_eq!(
            product_of_characteristic[characteristic], product_of_review[review],
            "value for a characteristic of another product: {row:?}"
        );
        assert!((1..=5).contains(&num(&row[3])));
        assert!(
            pairs.insert((characteristic, review)),
            "two values: {row:?}"
        );
        values_per_review[review] += 1;
    }
    for (review, &n) in values_per_review.iter().enumerate().skip(1) {
        let product = product_of_review[review];
        assert_eq!(
            n,
            names_of_product[product].len(),
            "values of review {review}"
        );
    }

    Shape {
        reviews_per_product,
        photos: photos.len() as u64,
        reviews: reviews.len() as u64,
        characteristics: characteristics.len() as u64,
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = generate_into("det-a", 1200, 7);
    let b = generate_into("det-b", 1200, 7);
    let c = generate_into("det-c", 1200, 8);
    let (a, b, c) = (read_all(a.path()), read_all(b.path()), read_all(c.path()));
    for (i, file) in CsvFile::ALL.iter().enumerate() {
        assert!(a[i] == b[i], "{} differs for the same seed", file.name());
        assert!(a[i] != c[i], "{} is the same for another seed", file.name());
    }
}

#[test]
fn structure_is_what_the_loader_expects() {
    let dir = generate_into("structure", 1500, 3);
    let shape = check_structure(dir.path(), 1500);
    assert!(shape.reviews_per_product.iter().any(|&n| n >= 500));
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<_> = CsvFile::ALL.iter().map(|f| f.name().to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "only the four files, no partial ones");
}

#[test]
fn creates_missing_directories_and_handles_tiny_sizes() {
    let dir = temp_dir("tiny");
    for products in [0, 1, 5] {
        let out = dir.path().join("a").join("b");
        run(&GenerateArgs {
            products,
            seed: 1,
            out: Some(out.clone()),
            list_files: false,
        })
        .unwrap();
        let shape = check_structure(&out, products);
        assert_eq!(shape.reviews_per_product.len(), products as usize + 1);
    }
}

#[test]
fn distribution_matches_the_real_dataset() {
    let products = 20_000;
    let dir = generate_into("distribution", products, 11);
    let shape = check_structure(dir.path(), products);
    let n = f64::from(products);
    let reviews_per_product = shape.reviews as f64 / n;
    let photos_per_review = shape.photos as f64 / shape.reviews as f64;
    let characteristics_per_product = shape.characteristics as f64 / n;
    assert!(
        (5.3..6.3).contains(&reviews_per_product),
        "{reviews_per_product} reviews per product"
    );
    assert!(
        (0.40..0.55).contains(&photos_per_review),
        "{photos_per_review} photos per review"
    );
    assert!(
        (3.2..3.5).contains(&characteristics_per_product),
        "{characteristics_per_product} characteristics per product"
    );
    let heavy = shape
        .reviews_per_product
        .iter()
        .filter(|&&r| r >= 500)
        .count();
    assert!(heavy >= 1, "no product with 500 or more reviews");
    let ordinary = shape.reviews_per_product[1..]
        .iter()
        .filter(|&&r| r <= 10)
        .count();
    assert!(
        ordinary as f64 > 0.9 * n,
        "most products have 0 to 10 reviews"
    );

    // The quirks the loader must survive all occur.
    let reviews = read_csv(dir.path(), CsvFile::Reviews);
    let bodies = || reviews.iter().map(|r| &r[5].text);
    assert!(bodies().any(|b| b.contains('\n')), "no newline");
    assert!(bodies().any(|b| b.contains('"')), "no quote");
    assert!(bodies().any(|b| b.contains(',')), "no comma");
    assert!(bodies().any(|b| b.contains('\'')), "no apostrophe");
    assert!(bodies().any(|b| b.contains('ü')), "no accented letter");
    assert!(bodies().any(|b| b.contains('日')), "no CJK");
    assert!(
        bodies().any(|b| b.chars().any(|c| c as u32 >= 0x1F300)),
        "no emoji"
    );
    assert!(bodies().any(|b| b.chars().count() > 900), "no long body");
    let mut responses: HashMap<(bool, bool), usize> = HashMap::new();
    for r in &reviews {
        let f = &r[10];
        *responses.entry((f.quoted, f.text == "null")).or_default() += 1;
    }
    let total = reviews.len() as f64;
    let absent = responses[&(false, true)] as f64 / total;
    assert!((0.75..0.85).contains(&absent), "{absent} responses absent");
    assert!(responses[&(true, true)] > 0, "no quoted \"null\" response");
    assert!(responses[&(true, false)] > 0, "no response text");
    let recommended = reviews.iter().filter(|r| r[6].text == "true").count() as f64 / total;
    assert!(
        (0.70..0.80).contains(&recommended),
        "{recommended} recommended"
    );
}

#[test]
fn body_respects_its_target_length() {
    let pools = Pools::new();
    let mut rng = Rng::keyed(1, 99, 0);
    let mut out = String::new();
    for target in (1..=MAX_BODY_CHARS).chain(1..=MAX_BODY_CHARS) {
        body(&mut rng, &pools, target, &mut out);
        let chars = out.chars().count();
        assert!((1..=target).contains(&chars), "{chars} chars for {target}");
    }
}

#[test]
fn pools_fit_their_fields() {
    for s in SUMMARIES {
        assert!(s.chars().count() <= MAX_SUMMARY_CHARS, "{s}");
    }
    for s in NAMES {
        assert!(s.chars().count() <= MAX_NAME_CHARS, "{s}");
    }
}

#[test]
fn formatting_helpers() {
    let mut buf = Vec::new();
    for n in [0, 7, 10, 1_596_080_481_467, u64::MAX] {
        buf.clear();
        put_u64(&mut buf, n);
        assert_eq!(buf, n.to_string().as_bytes());
    }
    buf.clear();
    put_quoted(&mut buf, r#"a "b", c"#);
    assert_eq!(buf, br#""a ""b"", c""#);
}

#[test]
fn rng_is_pinned() {
    // The files of a seed must never change: pin the generator's first outputs.
    let mut rng = Rng(0);
    assert_eq!(rng.next(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(rng.next(), 0x6e78_9e6a_a1b9_65f4);
    let mut r = Rng::keyed(1, 2, 3);
    for _ in 0..1000 {
        assert!(r.below(7) < 7);
        assert!((500..=2000).contains(&r.range(500, 2000)));
    }
}
