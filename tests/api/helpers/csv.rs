//! Dataset rows written as the real export writes them, and the rejects file of a load read.

/// `text` as one quoted CSV field.
pub fn csv_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
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
