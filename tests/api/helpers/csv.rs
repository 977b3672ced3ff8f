//! Dataset rows written as the real export writes them, and the rejects file of a load read.

use crate::dataset::Review;
use reviews_api::etl::dataset::CsvFile;

/// `text` as one quoted CSV field (RFC 4180), as the real export quotes all text.
pub fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A review as one line of reviews.csv, its fields in the file's column order; a response of
/// None is the export's unquoted `null`.
pub fn review_row(r: &Review) -> String {
    let field = |column: &str| match column {
        "id" => r.id.to_string(),
        "product_id" => r.product_id.to_string(),
        "rating" => r.rating.to_string(),
        "date" => r.date_ms.to_string(),
        "summary" => quote(&r.summary),
        "body" => quote(&r.body),
        "recommend" => r.recommend.to_string(),
        "reported" => r.reported.to_string(),
        "reviewer_name" => quote(&r.name),
        "reviewer_email" => quote(&r.email),
        "response" => r.response.as_deref().map_or("null".to_string(), quote),
        "helpfulness" => r.helpfulness.to_string(),
        other => panic!("the tests' Review has no field for the column {other}"),
    };
    let fields: Vec<String> = CsvFile::Reviews
        .columns()
        .iter()
        .map(|c| field(c))
        .collect();
    fields.join(",")
}

/// The rejects file of a load, parsed: (file, line, reason, original row bytes) per row.
pub fn read_rejects(path: &std::path::Path) -> Vec<(String, u64, String, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("the rejects file exists");
    let mut reader = reviews_api::etl::csv::Reader::new(file);
    let header = reader.next_record().unwrap().expect("a header");
    assert_eq!(header.raw(), b"file,line,reason,row");
    let mut rows = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        assert!(
            r.error().is_none() && r.len() == 4,
            "rejects line {}",
            r.line()
        );
        let text = |i| String::from_utf8(r.field(i).to_vec()).unwrap();
        rows.push((
            text(0),
            text(1).parse().unwrap(),
            text(2),
            r.field(3).to_vec(),
        ));
    }
    rows
}
