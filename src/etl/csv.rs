//! A streaming RFC 4180 reader, built for the dataset rather than borrowed from a crate, because
//! the loader needs three things general readers hide or make costly:
//!
//! * whether each field was quoted (`response` is the bare token `null` when absent, while the
//!   quoted `"null"` is the four-letter text);
//! * the physical line where each record starts (quoted fields may hold newlines), so a rejected
//!   row can be found in the file;
//! * the record's original text, so a rejected row can be written out as it was.
//!
//! It works on bytes in one fixed buffer: a record is parsed in place and its fields are ranges of
//! that buffer; only a field holding doubled quotes is copied (unescaped) into a scratch buffer
//! reused for every record. Nothing is allocated per record once the buffers have grown.
//!
//! A record never spans a refill: when the buffer ends inside a record the unread tail is moved to
//! the front, more is read, and the record is parsed again from its start. Records are capped at
//! [`MAX_RECORD`] bytes so a stray quote cannot turn the rest of a multi-gigabyte file into one
//! record held in memory; such a record, or a quoted field still open at the end of the file, is
//! reported as its first physical line with [`RecordError`] and reading resumes on the next line.

//!
//! (Past 600 lines because its unit tests, a third of the file, stay beside the quoting rules
//! they pin down.)

use std::io::{self, Read};

/// The longest record the reader holds; the dataset's longest rows are a few kilobytes.
pub const MAX_RECORD: usize = 1 << 20;
/// Twice the longest record: after moving an unfinished record to the front there is always at
/// least [`MAX_RECORD`] bytes of room to read into, so the buffer never grows.
const BUFFER: usize = 2 * MAX_RECORD;

/// Why a record could not be split into fields as RFC 4180 says. Its fields are then meaningless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// A closing quote followed by something other than a comma or the end of the line.
    TextAfterQuote,
    /// A quoted field still open at the end of the file, or a record over [`MAX_RECORD`] bytes
    /// (almost always a quote that was never closed); the record is its first physical line.
    Unterminated,
}

impl RecordError {
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::TextAfterQuote => "malformed quoting: text after a closing quote",
            RecordError::Unterminated => {
                "malformed quoting: a quoted field is never closed (or the row is over 1 MiB)"
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    end: u32,
    quoted: bool,
    /// The unescaped bytes are in the scratch buffer rather than the record text.
    in_scratch: bool,
    /// Where the value's bytes start in the record text (after an opening quote), so a caller
    /// can read it again from the file later instead of keeping it.
    raw_start: u32,
}

/// One record, borrowed from the reader until the next call.
pub struct Record<'a> {
    /// The byte offset in the input where the record starts (for [`Record::span`]).
    offset: u64,
    raw: &'a [u8],
    fields: &'a [Field],
    scratch: &'a [u8],
    line: u64,
    error: Option<RecordError>,
}

impl<'a> Record<'a> {
    /// The physical line (1-based, the header is line 1) where the record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record as it stands in the file, without its line terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn error(&self) -> Option<RecordError> {
        self.error
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field's value: without its quotes, doubled quotes made single.
    pub fn field(&self, i: usize) -> &'a [u8] {
        let f = self.fields[i];
        let src = if f.in_scratch { self.scratch } else { self.raw };
        &src[f.start as usize..f.end as usize]
    }

    pub fn quoted(&self, i: usize) -> bool {
        self.fields[i].quoted
    }

    /// Where field `i` stands in the input: its byte offset, its length there, and whether it
    /// holds doubled quotes (then the bytes there need [`unescape`]). Quotes around it excluded.
    pub fn span(&self, i: usize) -> (u64, u32, bool) {
        let f = self.fields[i];
        let len = if f.in_scratch {
            // Each doubled quote stands for one: the text is longer than the value.
            let value = f.end - f.start;
            value + self.field(i).iter().filter(|&&b| b == b'"').count() as u32
        } else {
            f.end - f.start
        };
        (self.offset + u64::from(f.raw_start), len, f.in_scratch)
    }
}

enum Parsed {
    /// A whole record: its text length, the bytes it used including the terminator, and the
    /// number of line breaks it used (its own and those inside quoted fields).
    Record {
        raw_len: usize,
        consumed: usize,
        lines: u64,
        error: Option<RecordError>,
    },
    NeedMore,
    Unterminated,
}

pub struct Reader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    consumed: u64,
    fields: Vec<Field>,
    scratch: Vec<u8>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            line: 1,
            consumed: 0,
            fields: Vec::with_capacity(16),
            scratch: Vec::new(),
        }
    }

    /// Bytes of the input used so far (for progress).
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// The next record, or `None` at the end of the input. A UTF-8 byte order mark at the very
    /// start of the input is skipped, as spreadsheet exports add one.
    pub fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        if self.consumed == 0 && self.start == 0 {
            while self.end < 3 && !self.eof {
                self.fill()?;
            }
            if self.buf[..self.end].starts_with(b"\xEF\xBB\xBF") {
                self.start = 3;
                self.consumed = 3;
            }
        }
        loop {
            let data = &self.buf[self.start..self.end];
            if data.is_empty() && self.eof {
                return Ok(None);
            }
            let parsed = if data.is_empty() {
                Parsed::NeedMore
            } else {
                parse(data, self.eof, &mut self.fields, &mut self.scratch)
            };
            match parsed {
                Parsed::Record {
                    raw_len,
                    consumed,
                    lines,
                    error,
                } => return Ok(Some(self.take(raw_len, consumed, lines, error))),
                Parsed::NeedMore if self.end - self.start < MAX_RECORD && !self.eof => {
                    self.fill()?
                }
                Parsed::NeedMore | Parsed::Unterminated => {
                    // Give up on the record: report its first physical line, resume after it.
                    let data = &self.buf[self.start..self.end];
                    let (raw_len, consumed) = match data.iter().position(|&b| b == b'\n') {
                        Some(nl) => (strip_cr(data, nl), nl + 1),
                        None => (data.len(), data.len()),
                    };
                    self.fields.clear();
                    return Ok(Some(self.take(
                        raw_len,
                        consumed,
                        1,
                        Some(RecordError::Unterminated),
                    )));
                }
            }
        }
    }

    fn take(
        &mut self,
        raw_len: usize,
        consumed: usize,
        lines: u64,
        error: Option<RecordError>,
    ) -> Record<'_> {
        let start = self.start;
        let line = self.line;
        self.start += consumed;
        self.consumed += consumed as u64;
        self.line += lines;
        Record {
            offset: self.consumed - consumed as u64,
            raw: &self.buf[start..start + raw_len],
            fields: &self.fields,
            scratch: &self.scratch,
            line,
            error,
        }
    }

    /// Moves the unread bytes to the front and reads more after them.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The length of a line ending at `nl` (a `\n`) without its `\r`, if it has one.
fn strip_cr(data: &[u8], nl: usize) -> usize {
    if nl > 0 && data[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    }
}

/// Splits the record at the start of `data` into `fields`. `eof` says whether `data` runs to the
/// end of the input (otherwise a record reaching the end of `data` may continue past it).
fn parse(data: &[u8], eof: bool, fields: &mut Vec<Field>, scratch: &mut Vec<u8>) -> Parsed {
    fields.clear();
    scratch.clear();
    let len = data.len();
    let mut i = 0;
    let mut lines = 0u64;
    let mut error = None;
    loop {
        if i < len && data[i] == b'"' {
            let content = i + 1;
            let mut j = content;
            let mut doubled = false;
            let close = loop {
                match data[j..].iter().position(|&b| b == b'"') {
                    None if eof => return Parsed::Unterminated,
                    None => return Parsed::NeedMore,
                    Some(q) => {
                        let q = j + q;
                        if q + 1 < len && data[q + 1] == b'"' {
                            doubled = true;
                            j = q + 2;
                        } else if q + 1 == len && !eof {
                            // The next byte decides between a doubled quote and the close.
                            return Parsed::NeedMore;
                        } else {
                            break q;
                        }
                    }
                }
            };
            lines += data[content..close].iter().filter(|&&b| b == b'\n').count() as u64;
            if doubled {
                let from = scratch.len();
                let mut k = content;
                while k < close {
                    scratch.push(data[k]);
                    k += if data[k] == b'"' { 2 } else { 1 };
                }
                fields.push(Field {
                    start: from as u32,
                    end: scratch.len() as u32,
                    quoted: true,
                    in_scratch: true,
                    raw_start: content as u32,
                });
            } else {
                fields.push(Field {
                    start: content as u32,
                    end: close as u32,
                    quoted: true,
                    in_scratch: false,
                    raw_start: content as u32,
                });
            }
            i = close + 1;
            // After a closing quote: a comma, the end of the line, or the end of the input.
            if i == len {
                if eof {
                    return Parsed::Record {
                        raw_len: len,
                        consumed: len,
                        lines,
                        error,
                    };
                }
                return Parsed::NeedMore;
            }
            match data[i] {
                b',' => {
                    i += 1;
                    continue;
                }
                b'\n' => {
                    return Parsed::Record {
                        raw_len: i,
                        consumed: i + 1,
                        lines: lines + 1,
                        error,
                    }
                }
                b'\r' if i + 1 < len && data[i + 1] == b'\n' => {
                    return Parsed::Record {
                        raw_len: i,
                        consumed: i + 2,
                        lines: lines + 1,
                        error,
                    }
                }
                b'\r' if i + 1 == len && !eof => return Parsed::NeedMore,
                _ => {
                    // Keep splitting so the record ends where the line does, but flag it.
                    error = Some(RecordError::TextAfterQuote);
                    match scan_unquoted(data, i) {
                        Some(stop) if data[stop] == b',' => {
                            i = stop + 1;
                            continue;
                        }
                        Some(stop) => {
                            return Parsed::Record {
                                raw_len: strip_cr(data, stop),
                                consumed: stop + 1,
                                lines: lines + 1,
                                error,
                            }
                        }
                        None if eof => {
                            return Parsed::Record {
                                raw_len: len,
                                consumed: len,
                                lines,
                                error,
                            }
                        }
                        None => return Parsed::NeedMore,
                    }
                }
            }
        } else {
            // An unquoted field runs to the next comma or line end; a quote inside it is data.
            match scan_unquoted(data, i) {
                Some(stop) if data[stop] == b',' => {
                    fields.push(Field {
                        start: i as u32,
                        end: stop as u32,
                        quoted: false,
                        in_scratch: false,
                        raw_start: i as u32,
                    });
                    i = stop + 1;
                }
                Some(stop) => {
                    let end = strip_cr(data, stop).max(i);
                    fields.push(Field {
                        start: i as u32,
                        end: end as u32,
                        quoted: false,
                        in_scratch: false,
                        raw_start: i as u32,
                    });
                    return Parsed::Record {
                        raw_len: end,
                        consumed: stop + 1,
                        lines: lines + 1,
                        error,
                    };
                }
                None if eof => {
                    fields.push(Field {
                        start: i as u32,
                        end: len as u32,
                        quoted: false,
                        in_scratch: false,
                        raw_start: i as u32,
                    });
                    return Parsed::Record {
                        raw_len: len,
                        consumed: len,
                        lines,
                        error,
                    };
                }
                None => return Parsed::NeedMore,
            }
        }
    }
}

/// `text` as one CSV field (RFC 4180), appended to `out`: always quoted, quotes inside doubled;
/// commas and line breaks need nothing more. What the reader reads back is `text`.
pub fn quote(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for part in text.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// The value of a quoted field whose doubled quotes are still doubled (see [`Record::span`]).
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut k = 0;
    while k < raw.len() {
        out.push(raw[k]);
        k += if raw[k] == b'"' { 2 } else { 1 };
    }
}

/// The position of the first comma or line feed at or after `from`.
#[inline]
fn scan_unquoted(data: &[u8], from: usize) -> Option<usize> {
    data[from..]
        .iter()
        .position(|&b| b == b',' || b == b'\n')
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        for (text, quoted) in [
            (&b"a \"b\"\nc"[..], &b"\"a \"\"b\"\"\nc\""[..]),
            (br#"a "b", c"#, br#""a ""b"", c""#),
            (b"", b"\"\""),
        ] {
            let mut out = Vec::new();
            quote(text, &mut out);
            assert_eq!(out, quoted);
            let recs = read_all(&[&out[..], b"\n"].concat(), 3);
            assert_eq!(recs[0].1, vec![f(std::str::from_utf8(text).unwrap(), true)]);
        }
    }

    /// Reads everything through a reader that hands out `chunk` bytes per read, so records cross
    /// buffer refills at every possible place.
    /// A record as the tests see it: line, (value, quoted) per field, raw text, malformed.
    type Seen = (u64, Vec<(String, bool)>, String, bool);

    fn read_all(input: &[u8], chunk: usize) -> Vec<Seen> {
        struct Chunky<'a>(&'a [u8], usize);
        impl Read for Chunky<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = Reader::new(Chunky(input, chunk));
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            let fields = (0..r.len())
                .map(|i| (String::from_utf8(r.field(i).to_vec()).unwrap(), r.quoted(i)))
                .collect();
            out.push((
                r.line(),
                fields,
                String::from_utf8(r.raw().to_vec()).unwrap(),
                r.error().is_some(),
            ));
        }
        assert_eq!(reader.bytes_consumed(), input.len() as u64);
        out
    }

    fn f(s: &str, q: bool) -> (String, bool) {
        (s.to_string(), q)
    }

    #[test]
    fn quoting_newlines_and_line_numbers() {
        let input = "id,text\n1,\"a, \"\"b\"\"\nc\"\r\n2,null\n3,\"null\"\n4,\"\"\n5,\n\"é😀\",x";
        for chunk in [1, 2, 3, 7, 1000] {
            let recs = read_all(input.as_bytes(), chunk);
            assert_eq!(recs.len(), 7, "chunk {chunk}");
            assert_eq!(recs[0].0, 1);
            assert_eq!(recs[1].0, 2);
            assert_eq!(recs[1].1, vec![f("1", false), f("a, \"b\"\nc", true)]);
            assert_eq!(recs[1].2, "1,\"a, \"\"b\"\"\nc\"");
            assert_eq!(recs[2].0, 4);
            assert_eq!(recs[2].1, vec![f("2", false), f("null", false)]);
            assert_eq!(recs[3].1, vec![f("3", false), f("null", true)]);
            assert_eq!(recs[4].1, vec![f("4", false), f("", true)]);
            assert_eq!(recs[5].1, vec![f("5", false), f("", false)]);
            assert_eq!(recs[6].0, 8);
            assert_eq!(recs[6].1, vec![f("é😀", true), f("x", false)]);
            assert!(recs.iter().all(|r| !r.3));
        }
    }

    #[test]
    fn spans_point_back_into_the_input() {
        let input = b"\xEF\xBB\xBFid,url\n1,\"a\"\"b\"\n2,plain\r\n";
        let mut reader = Reader::new(&input[..]);
        reader.next_record().unwrap();
        let mut values = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            let (at, len, doubled) = r.span(1);
            let raw = &input[at as usize..at as usize + len as usize];
            let mut value = Vec::new();
            if doubled {
                unescape(raw, &mut value);
            } else {
                value.extend_from_slice(raw);
            }
            assert_eq!(value, r.field(1));
            values.push(value);
        }
        assert_eq!(values, vec![b"a\"b".to_vec(), b"plain".to_vec()]);
    }

    #[test]
    fn crlf_is_not_part_of_the_last_field() {
        let recs = read_all(b"a,b\r\nc,d\r\n", 1);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].1, vec![f("c", false), f("d", false)]);
        assert_eq!(recs[1].2, "c,d");
    }

    #[test]
    fn text_after_a_closing_quote_is_flagged_and_reading_goes_on() {
        let recs = read_all(b"1,\"a\"b,c\n2,d\n", 2);
        assert_eq!(recs.len(), 2);
        assert!(recs[0].3);
        assert_eq!(recs[0].2, "1,\"a\"b,c");
        assert_eq!(recs[1].1, vec![f("2", false), f("d", false)]);
        assert_eq!(recs[1].0, 2);
    }

    #[test]
    fn an_unclosed_quote_costs_one_line() {
        let recs = read_all(b"1,ok\n2,\"never closed\n3,x\n", 4);
        assert_eq!(recs.len(), 3);
        assert!(recs[1].3);
        assert_eq!(recs[1].2, "2,\"never closed");
        assert_eq!(recs[2].1, vec![f("3", false), f("x", false)]);
        assert_eq!(recs[2].0, 3);
    }

    #[test]
    fn an_oversized_record_is_cut_at_its_first_line() {
        let mut input = b"1,\"".to_vec();
        for _ in 0..(MAX_RECORD / 10 + 10) {
            input.extend_from_slice(b"long line\n");
        }
        input.extend_from_slice(b"\"\n");
        let recs = read_all(&input, 65536);
        assert!(recs[0].3);
        assert_eq!(recs[0].2, "1,\"long line");
        assert_eq!(recs[1].0, 2);
    }

    #[test]
    fn byte_order_mark_and_missing_final_newline() {
        let recs = read_all(b"\xEF\xBB\xBFid,x\n1,\"y\"", 1);
        assert_eq!(recs[0].1, vec![f("id", false), f("x", false)]);
        assert_eq!(recs[1].1, vec![f("1", false), f("y", true)]);
    }
}
