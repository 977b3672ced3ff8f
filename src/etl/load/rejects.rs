//! The rejects file.

use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The rejects file: CSV `file,line,reason,row`, where row is the record exactly as it stood in
/// its file (quoted as one field), so a user can find, read and fix it.
pub(super) struct Rejects {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Rejects {
    pub(super) fn create(path: &Path) -> anyhow::Result<Rejects> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the rejects file {}", path.display()))?;
        let mut rejects = Rejects {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
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
        let write = |out: &mut BufWriter<File>| -> std::io::Result<()> {
            write!(out, "{file},{line},")?;
            write_quoted(out, reason.as_bytes())?;
            out.write_all(b",")?;
            write_quoted(out, raw)?;
            out.write_all(b"\n")
        };
        write(&mut self.out)
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }

    pub(super) fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write the rejects file {}", self.path.display()))
    }
}

fn write_quoted(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    for part in text.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.last() == Some(&b'"') {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_in_the_rejects_file() {
        let mut out = Vec::new();
        write_quoted(&mut out, b"a \"b\"\nc").unwrap();
        assert_eq!(out, b"\"a \"\"b\"\"\nc\"");
    }
}
