//! The four CSV files of the dataset (docs/dataset.md), described once: their names, headers and
//! column order. `load` checks against this, `generate` writes it, and the tests and the
//! benchmark read it, so none of them can drift from another.

/// One of the dataset's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CsvFile {
    Characteristics,
    Reviews,
    Photos,
    CharacteristicReviews,
}

impl CsvFile {
    /// In the order `load` checks them: each refers only to the ones before it.
    pub const ALL: [CsvFile; 4] = [
        CsvFile::Characteristics,
        CsvFile::Reviews,
        CsvFile::Photos,
        CsvFile::CharacteristicReviews,
    ];

    /// The file's name in the dataset's folder.
    pub fn name(self) -> &'static str {
        match self {
            CsvFile::Characteristics => "characteristics.csv",
            CsvFile::Reviews => "reviews.csv",
            CsvFile::Photos => "reviews_photos.csv",
            CsvFile::CharacteristicReviews => "characteristic_reviews.csv",
        }
    }

    /// The columns, in file order; the header line is these joined by commas.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            CsvFile::Characteristics => &["id", "product_id", "name"],
            CsvFile::Reviews => &[
                "id",
                "product_id",
                "rating",
                "date",
                "summary",
                "body",
                "recommend",
                "reported",
                "reviewer_name",
                "reviewer_email",
                "response",
                "helpfulness",
            ],
            CsvFile::Photos => &["id", "review_id", "url"],
            CsvFile::CharacteristicReviews => &["id", "characteristic_id", "review_id", "value"],
        }
    }

    /// The header line, without its line ending.
    pub fn header(self) -> String {
        self.columns().join(",")
    }

    /// Where `column` stands in a row of this file. Panics on a name the file does not have: the
    /// names are this module's own constants, so that is a bug, found by the first test.
    pub fn column(self, column: &str) -> usize {
        self.columns()
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("{} has no column {column}", self.name()))
    }
}

/// Characteristic names seen in the real dataset, in the order it lists them for a product.
pub const CHARACTERISTIC_NAMES: [&str; 6] =
    ["Fit", "Length", "Comfort", "Quality", "Size", "Width"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_those_of_the_real_files() {
        assert_eq!(
            CsvFile::Reviews.header(),
            "id,product_id,rating,date,summary,body,recommend,reported,reviewer_name,reviewer_email,response,helpfulness"
        );
        assert_eq!(CsvFile::Photos.header(), "id,review_id,url");
        assert_eq!(CsvFile::Characteristics.header(), "id,product_id,name");
        assert_eq!(
            CsvFile::CharacteristicReviews.header(),
            "id,characteristic_id,review_id,value"
        );
        assert_eq!(CsvFile::Reviews.column("reviewer_email"), 9);
    }
}
