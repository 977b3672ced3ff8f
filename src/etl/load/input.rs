//! Reading the input: the four files opened and their headers checked before the database is
//! touched, and pieces of a file read back by offset.

use crate::etl::csv::Reader;
use crate::etl::dataset::CsvFile;
use anyhow::Context;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(super) struct Input {
    pub(super) kind: CsvFile,
    pub(super) size: u64,
    /// A second handle on the same open file: reviews.csv is read again from the start, and
    /// photo URLs are read back by offset. Never reopened by name, so a file swapped in the
    /// directory meanwhile cannot mix into one load.
    pub(super) file: File,
    pub(super) reader: Reader<File>,
}

pub(super) type Inputs = Vec<Input>;

/// Opens the four files and reads their headers; any problem is an error before any change.
pub(super) fn open_inputs(dir: &Path) -> anyhow::Result<Inputs> {
    CsvFile::ALL
        .iter()
        .map(|&kind| {
            let path = dir.join(kind.name());
            let file =
                File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let again = file
                .try_clone()
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut reader = Reader::new(file);
            let header = reader
                .next_record()
                .with_context(|| format!("cannot read {}", path.display()))?;
            let expected = kind.columns();
            let ok = match &header {
                Some(h) => {
                    h.error().is_none()
                        && h.len() == expected.len()
                        && (0..h.len()).all(|i| h.field(i) == expected[i].as_bytes())
                }
                None => false,
            };
            if !ok {
                let found = header
                    .map(|h| String::from_utf8_lossy(h.raw()).into_owned())
                    .unwrap_or_else(|| "an empty file".to_string());
                anyhow::bail!(
                    "{}: wrong header: expected `{}`, found `{found}`",
                    path.display(),
                    kind.header()
                );
            }
            Ok(Input {
                kind,
                size,
                file: again,
                reader,
            })
        })
        .collect()
}

/// `--rejects` pointed at one of the dataset's files would truncate it while it is being read.
pub(super) fn refuse_to_overwrite_an_input(inputs: &Inputs, rejects: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(rejects) else {
        return Ok(());
    };
    for input in inputs {
        let meta = input.file.metadata()?;
        anyhow::ensure!(
            !(meta.dev() == target.dev() && meta.ino() == target.ino()),
            "the rejects file {} is {}, an input of the load",
            rejects.display(),
            input.kind.name()
        );
    }
    Ok(())
}

/// Reads pieces of a file by offset through one large buffer: photos are read in the order of
/// their reviews, which in real exports is close to their order in the file, so most reads are
/// served from the buffer and a few hundred reads replace millions of small ones.
pub(super) struct Window {
    file: File,
    buf: Vec<u8>,
    /// The file offset of buf[0].
    start: u64,
}

const WINDOW: usize = 1 << 20;

impl Window {
    pub(super) fn new(file: File) -> Window {
        Window {
            file,
            buf: Vec::new(),
            start: 0,
        }
    }

    pub(super) fn read(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        let inside =
            offset >= self.start && offset + len as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            self.buf.resize(WINDOW.max(len), 0);
            let mut filled = 0;
            while filled < len {
                let n = self
                    .file
                    .read_at(&mut self.buf[filled..], offset + filled as u64)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                filled += n;
            }
            self.buf.truncate(filled);
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}
