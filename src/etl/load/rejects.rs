//! The rejects file.

use crate::etl::csv;
use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The rejects file: CSV `file,line,reason,row`, where row is the record exactly as it stood in
/// its file (quoted as one field), so a user can find, read and fix it.
pub(super) struct Rejects {
    out: BufWriter<File>,
    path: PathBuf,
    /// The row being written, reused.
    row: Vec<u8>,
}

impl Rejects {
    pub(super) fn create(path: &Path) -> anyhow::Result<Rejects> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the rejects file {}", path.display()))?;
        let mut rejects = Rejects {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            row: Vec::new(),
        };
        rejects.out.write_all(b"file,line,reason,row\n")?;
        Ok(rejects)
    }

    pub(super) fn write(
        &mut self,
        file: &str,
        line: u64,
        reason: &str,
        raw: &[u8],
    ) -> anyhow::Result<()> {
        let row = &mut self.row;
        row.clear();
        row.extend_from_slice(file.as_bytes());
        row.push(b',');
        row.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
        row.push(b',');
        csv::quote(reason.as_bytes(), row);
        row.push(b',');
        csv::quote(raw, row);
        row.push(b'\n');
        self.out
            .write_all(row)
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }

    pub(super) fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etl::dataset::CsvFile;

    #[test]
    fn a_rejected_row_is_written_as_it_stood() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects.csv");
        let mut rejects = Rejects::create(&path).unwrap();
        let file = CsvFile::Reviews.name();
        rejects
            .write(file, 7, r#"rating: "x""#, br#"1,"a""b",x"#)
            .unwrap();
        rejects.finish().unwrap();
        let expected = format!(
            "file,line,reason,row\n{file},7,{},{}\n",
            r#""rating: ""x""""#, r#""1,""a""""b"",x""#
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }
}
