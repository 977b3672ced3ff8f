//! The generator's output files, written as `NAME.partial` and renamed once all four are whole.

use super::rng::Rng;
use super::STREAM_SWAP;
use crate::etl::dataset::CsvFile;
use anyhow::Context;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes buffered per file between writes.
const FLUSH_AT: usize = 1 << 20;
/// One row in this many is held back and written after its successor: the real files are
/// mostly but not strictly in id order, and the loader must not rely on order.
const SWAP_ONE_IN: u64 = 1000;

/// One output file: rows are appended to `buf`, then `end_row` decides whether the row goes
/// out now or is held back to be written after the next one.
pub(super) struct OutFile {
    file: CsvFile,
    partial: PathBuf,
    out: File,
    pub(super) buf: Vec<u8>,
    row_start: usize,
    held: Vec<u8>,
    swap: Rng,
    rows: u64,
}

impl OutFile {
    fn create(dir: &Path, file: CsvFile, swap: Rng) -> anyhow::Result<Self> {
        let partial = dir.join(format!("{}.partial", file.name()));
        let out =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut buf = Vec::with_capacity(FLUSH_AT + 64 * 1024);
        buf.extend_from_slice(file.header().as_bytes());
        buf.push(b'\n');
        Ok(OutFile {
            file,
            partial,
            out,
            row_start: buf.len(),
            buf,
            held: Vec::new(),
            swap,
            rows: 0,
        })
    }

    pub(super) fn end_row(&mut self) -> anyhow::Result<()> {
        self.rows += 1;
        if !self.held.is_empty() {
            self.buf.extend_from_slice(&self.held);
            self.held.clear();
        } else if self.swap.below(SWAP_ONE_IN) == 0 {
            self.held.extend_from_slice(&self.buf[self.row_start..]);
            self.buf.truncate(self.row_start);
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        self.row_start = self.buf.len();
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out
            .write_all(&self.buf)
            .with_context(|| format!("writing {}", self.partial.display()))?;
        self.buf.clear();
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let held = std::mem::take(&mut self.held);
        self.buf.extend_from_slice(&held);
        self.flush()
    }

    fn final_path(&self) -> PathBuf {
        self.partial.with_file_name(self.file.name())
    }
}

/// The four files, written side by side.
pub(super) struct Files {
    pub(super) reviews: OutFile,
    pub(super) photos: OutFile,
    pub(super) characteristics: OutFile,
    pub(super) values: OutFile,
}

impl Files {
    pub(super) fn create(dir: &Path, seed: u64) -> anyhow::Result<Self> {
        let swap = |n| Rng::keyed(seed, STREAM_SWAP, n);
        Ok(Files {
            reviews: OutFile::create(dir, CsvFile::Reviews, swap(0))?,
            photos: OutFile::create(dir, CsvFile::Photos, swap(1))?,
            characteristics: OutFile::create(dir, CsvFile::Characteristics, swap(2))?,
            values: OutFile::create(dir, CsvFile::CharacteristicReviews, swap(3))?,
        })
    }

    fn all(&mut self) -> [&mut OutFile; 4] {
        [
            &mut self.reviews,
            &mut self.photos,
            &mut self.characteristics,
            &mut self.values,
        ]
    }

    /// Rows written so far, in all four files.
    pub(super) fn rows(&self) -> u64 {
        self.reviews.rows + self.photos.rows + self.characteristics.rows + self.values.rows
    }

    /// Flushes all four, then renames all four: the final names appear only once every file is
    /// complete. Returns each file with its row count.
    pub(super) fn finish(&mut self) -> anyhow::Result<[(CsvFile, u64); 4]> {
        for f in self.all() {
            f.finish()?;
        }
        for f in self.all() {
            let target = f.final_path();
            std::fs::rename(&f.partial, &target).with_context(|| {
                format!("renaming {} to {}", f.partial.display(), target.display())
            })?;
        }
        Ok(self.all().map(|f| (f.file, f.rows)))
    }

    pub(super) fn remove_partials(&mut self) {
        for f in self.all() {
            let _ = std::fs::remove_file(&f.partial);
        }
    }
}
