//! The parsing threads: they read the files in order, check every row (check.rs) and stream the
//! good ones as binary COPY chunks to the two connections, computing the derived data (each
//! review's photos JSON, product_meta) on the way.

use super::check::{check_row, check_shape, parse_review, Bits, Char, PhotoRef, State};
use super::copy::{Chunk, CopyEncoder, CHUNK};
use super::input::{Input, Inputs, Window};
use super::rejects::Rejects;
use super::FileReport;
use crate::etl::csv::{self, Reader};
use crate::etl::dataset::CsvFile;
use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::{Seek, Write};
use std::time::Instant;
use tokio::sync::mpsc;

/// Sends chunks to one connection's COPYs; an error means that side of the load stopped.
struct Sender {
    tx: mpsc::Sender<Chunk>,
}

impl Sender {
    fn send(&self, chunk: Chunk) -> anyhow::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the database side of the load stopped"))
    }

    /// Sends what `out` holds once it is a full chunk.
    fn flush(&self, out: &mut CopyEncoder) -> anyhow::Result<()> {
        if out.len() >= CHUNK {
            self.send(Chunk::Data(out.take()))?;
        }
        Ok(())
    }

    fn finish(&self, out: CopyEncoder) -> anyhow::Result<()> {
        self.send(Chunk::Data(out.finish()))?;
        self.send(Chunk::End)
    }
}

struct Progress {
    bars: MultiProgress,
    style: ProgressStyle,
}

impl Progress {
    fn new() -> Progress {
        // Hidden by itself when stderr is not a terminal.
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>30} [{bar:30}] {bytes:>9}/{total_bytes:<9} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        Progress { bars, style }
    }

    fn bar(&self, name: String, size: u64) -> Bar {
        let bar = self.bars.add(ProgressBar::new(size));
        bar.set_style(self.style.clone());
        bar.set_prefix(name);
        Bar {
            bar,
            started: Instant::now(),
        }
    }
}

struct Bar {
    bar: ProgressBar,
    started: Instant,
}

impl Bar {
    /// Cheap enough to call per row: draws every 65536 rows.
    fn tick(&self, reader: &Reader<File>, rows: u64, rejected: u64, force: bool) {
        if !rows.is_multiple_of(65536) && !force {
            return;
        }
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(reader.bytes_consumed());
        self.bar.set_message(format!(
            "{rows} rows, {rate:.0} rows/s, {rejected} rejected"
        ));
        if force {
            self.bar.finish();
        }
    }
}

/// The parsing thread: checks the files in order and streams the other tables to `other`; once
/// the photos are known it starts the thread that streams the reviews to `reviews`.
pub(super) fn parse_all(
    inputs: Inputs,
    mut rejects: Rejects,
    reviews: mpsc::Sender<Chunk>,
    other: mpsc::Sender<Chunk>,
    with_product_ids: bool,
) -> anyhow::Result<Parsed> {
    let progress = Progress::new();
    let other = Sender { tx: other };
    let [chars, reviews_in, photos, values]: [Input; 4] = inputs
        .try_into()
        .map_err(|_| anyhow::anyhow!("four input files expected"))?;
    let mut state = State::new(with_product_ids);
    let mut phases = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, phases: &mut Vec<(String, Instant, Instant)>| {
        let now = Instant::now();
        phases.push((format!("parse: {name}"), clock, now));
        clock = now;
    };

    let (chars_report, _) = check_file(chars, &mut state, &mut rejects, &progress, &other)?;
    lap(
        &format!("check {}", CsvFile::Characteristics.name()),
        &mut phases,
    );
    // First reading of reviews.csv: checks only, nothing is sent.
    let reviews_size = reviews_in.size;
    let mut reviews_again = reviews_in.file.try_clone()?;
    let (reviews_report, accepted) =
        check_file(reviews_in, &mut state, &mut rejects, &progress, &other)?;
    lap(&format!("check {}", CsvFile::Reviews.name()), &mut phases);
    let photos_file = photos.file.try_clone()?;
    let (photos_report, _) = check_file(photos, &mut state, &mut rejects, &progress, &other)?;
    let mut photos_by_review = std::mem::take(&mut state.photos_by_review);
    photos_by_review.sort_unstable_by_key(|p| (p.review, p.id));
    lap(&format!("check {}", CsvFile::Photos.name()), &mut phases);

    // Second reading, on its own thread and connection, while this thread checks the values.
    let bar = progress.bar(format!("{} (copy)", CsvFile::Reviews.name()), reviews_size);
    let sender = std::thread::Builder::new()
        .name("load-reviews".into())
        .spawn(move || -> anyhow::Result<(u64, Instant, Instant)> {
            let started = Instant::now();
            // The handle shares the file position of the first reading, which is at the end.
            reviews_again.rewind()?;
            let mut reader = Reader::new(reviews_again);
            reader.next_record()?; // the header, checked already
            let sent = send_reviews(
                reader,
                &accepted,
                &photos_by_review,
                &mut Window::new(photos_file),
                &Sender { tx: reviews },
                &bar,
            )?;
            Ok((sent, started, Instant::now()))
        })?;

    let (values_report, _) = check_file(values, &mut state, &mut rejects, &progress, &other)?;
    rejects.finish()?;
    lap(
        &format!("check {}", CsvFile::CharacteristicReviews.name()),
        &mut phases,
    );
    send_meta(&state, &other)?;
    lap("send product_meta", &mut phases);
    let (sent, start, end) = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the reviews thread panicked"))??;
    phases.push((
        format!("parse: send {} (2nd reading)", CsvFile::Reviews.name()),
        start,
        end,
    ));
    anyhow::ensure!(
        sent == reviews_report.loaded,
        "{}: {} rows checked but {sent} sent",
        CsvFile::Reviews.name(),
        reviews_report.loaded
    );
    if !progress.bars.is_hidden() {
        // The bars leave the cursor on their last line; the summary starts below them.
        eprintln!();
    }
    Ok(Parsed {
        files: vec![chars_report, reviews_report, photos_report, values_report],
        phases,
    })
}

/// What the parsing threads report: per file counts, and how long each of their steps took
/// (each ends when PostgreSQL has taken its last chunk, as the channels are bounded).
pub(super) struct Parsed {
    pub(super) files: Vec<FileReport>,
    pub(super) phases: Vec<(String, Instant, Instant)>,
}

/// Checks every row of one file. Good rows of characteristics, photos and values are sent to
/// `other`; of reviews.csv only the record numbers of the good rows are kept (returned), for the
/// second reading.
fn check_file(
    input: Input,
    state: &mut State,
    rejects: &mut Rejects,
    progress: &Progress,
    other: &Sender,
) -> anyhow::Result<(FileReport, Bits)> {
    let Input {
        kind,
        size,
        mut reader,
        ..
    } = input;
    let sends = kind != CsvFile::Reviews;
    let label = if sends {
        kind.name().to_string()
    } else {
        format!("{} (check)", kind.name())
    };
    let bar = progress.bar(label, size);
    let mut out = CopyEncoder::new();
    let mut accepted = Bits::default();
    let mut report = FileReport {
        file: kind.name(),
        loaded: 0,
        rejected: 0,
    };
    let expected = kind.columns().len();
    let mut ordinal = 0usize;
    loop {
        let record = reader
            .next_record()
            .with_context(|| format!("cannot read {}", kind.name()))?;
        let Some(record) = record else { break };
        match check_shape(&record, expected)
            .and_then(|()| check_row(kind, &record, state, &mut out))
        {
            Ok(()) => {
                report.loaded += 1;
                if !sends {
                    accepted.set(ordinal);
                }
            }
            Err(reason) => {
                report.rejected += 1;
                rejects.write(kind.name(), record.line(), &reason, record.raw())?;
            }
        }
        ordinal += 1;
        if sends {
            other.flush(&mut out)?;
        }
        bar.tick(
            &reader,
            report.loaded + report.rejected,
            report.rejected,
            false,
        );
    }
    if sends {
        other.finish(out)?;
    }
    bar.tick(
        &reader,
        report.loaded + report.rejected,
        report.rejected,
        true,
    );
    Ok((report, accepted))
}

/// The second reading of reviews.csv: the rows the first reading accepted, each with its photos.
/// Returns the number of rows sent.
fn send_reviews(
    mut reader: Reader<File>,
    accepted: &Bits,
    photos: &[PhotoRef],
    photos_file: &mut Window,
    to: &Sender,
    bar: &Bar,
) -> anyhow::Result<u64> {
    let mut out = CopyEncoder::new();
    let mut json = Vec::with_capacity(1024);
    let mut url = Vec::with_capacity(256);
    let mut ordinal = 0usize;
    let mut sent = 0u64;
    while let Some(r) = reader
        .next_record()
        .with_context(|| format!("cannot read {}", CsvFile::Reviews.name()))?
    {
        let take = accepted.get(ordinal);
        ordinal += 1;
        if !take {
            continue;
        }
        let review = parse_review(&r).map_err(|reason| {
            anyhow::anyhow!(
                "{} changed while loading: line {} now fails: {reason}",
                CsvFile::Reviews.name(),
                r.line()
            )
        })?;
        photos_json(review.id, photos, photos_file, &mut json, &mut url)?;
        out.tuple(13);
        out.int4(review.id);
        out.int4(review.product_id);
        out.int2(review.rating);
        out.int8(review.date_ms);
        out.text(r.field(4));
        out.text(r.field(5));
        out.bool(review.recommend);
        out.bool(review.reported);
        out.text(r.field(8));
        out.text(r.field(9));
        // The bare token null is an absent response; the quoted "null" is text.
        if !r.quoted(10) && r.field(10) == b"null" {
            out.null();
        } else {
            out.text(r.field(10));
        }
        out.int4(review.helpfulness);
        out.text(&json);
        sent += 1;
        to.flush(&mut out)?;
        bar.tick(&reader, sent, 0, false);
    }
    to.finish(out)?;
    bar.tick(&reader, sent, 0, true);
    Ok(sent)
}

/// The review's photos as its document embeds them: `[{"id":1,"url":"..."},...]` by photo id,
/// no spaces, the URL escaped exactly as PostgreSQL's to_json escapes text; `[]` without photos.
/// The URLs are read back from reviews_photos.csv by offset.
fn photos_json(
    review_id: i32,
    photos: &[PhotoRef],
    photos_file: &mut Window,
    json: &mut Vec<u8>,
    url: &mut Vec<u8>,
) -> anyhow::Result<()> {
    json.clear();
    json.push(b'[');
    let review = review_id as u32;
    let first = photos.partition_point(|p| p.review < review);
    for (n, photo) in photos[first..]
        .iter()
        .take_while(|p| p.review == review)
        .enumerate()
    {
        let raw = photos_file
            .read(photo.offset, photo.len as usize)
            .with_context(|| format!("cannot read {} again", CsvFile::Photos.name()))?;
        let value: &[u8] = if photo.doubled {
            url.clear();
            csv::unescape(raw, url);
            url
        } else {
            raw
        };
        if n > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"id\":");
        write!(json, "{}", photo.id)?;
        json.extend_from_slice(b",\"url\":");
        let value = std::str::from_utf8(value).with_context(|| {
            format!(
                "{} changed while loading: photo {} is no longer UTF-8",
                CsvFile::Photos.name(),
                photo.id
            )
        })?;
        json_string(value, json);
        json.push(b'}');
    }
    json.push(b']');
    Ok(())
}

/// `text` as a JSON string, byte for byte as PostgreSQL's escape_json writes it (to_json(text)).
/// serde_json escapes exactly the same bytes the same way: the two-character escapes for " \
/// \b \f \n \r \t, `\u00xx` in lowercase hex for the other control characters below 0x20, and
/// everything else (`/`, DEL, non-ASCII UTF-8) as it is. The test below pins that.
fn json_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(out, text).expect("writing JSON to a Vec cannot fail");
}

/// product_meta, one row per product that has characteristics or reviews, in product id order,
/// from the counters kept while checking: reported reviews count nowhere.
fn send_meta(state: &State, to: &Sender) -> anyhow::Result<()> {
    let mut chars: Vec<u32> = (0..state.chars.len() as u32).collect();
    chars.sort_unstable_by_key(|&c| {
        let c = &state.chars[c as usize];
        (c.product, c.id)
    });
    let mut products: Vec<u32> = (0..state.products.len() as u32).collect();
    products.sort_unstable_by_key(|&p| state.products[p as usize].id);
    let mut out = CopyEncoder::new();
    let mut next_char = 0;
    for p in products {
        let product = &state.products[p as usize];
        let end = next_char
            + chars[next_char..]
                .iter()
                .take_while(|&&c| state.chars[c as usize].product == product.id)
                .count();
        let own: Vec<&Char> = chars[next_char..end]
            .iter()
            .map(|&c| &state.chars[c as usize])
            .collect();
        next_char = end;
        out.tuple(7);
        out.int4(product.id as i32);
        out.int4_array(product.ratings.iter().map(|&n| n as i32));
        out.int4_array(product.recommended.iter().map(|&n| n as i32));
        out.int4_array(own.iter().map(|c| c.id as i32));
        out.text_array(own.iter().map(|c| state.names.get(c.name)));
        out.int8_array(own.iter().map(|c| c.sum as i64));
        out.int4_array(own.iter().map(|c| c.count as i32));
        to.flush(&mut out)?;
    }
    anyhow::ensure!(
        next_char == chars.len(),
        "every characteristic's product has a meta row"
    );
    to.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_like_postgresql() {
        let mut out = Vec::new();
        json_string("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}/é😀\u{7f}", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/é😀\u{7f}\""
        );
        // Every ASCII character as PostgreSQL 15's to_json(chr(i)) writes it (escape_json in
        // src/backend/utils/adt/json.c), compared one by one.
        for c in 1u8..=127 {
            let expected = match c {
                b'"' => "\\\"".to_string(),
                b'\\' => "\\\\".to_string(),
                0x08 => "\\b".to_string(),
                0x0c => "\\f".to_string(),
                b'\n' => "\\n".to_string(),
                b'\r' => "\\r".to_string(),
                b'\t' => "\\t".to_string(),
                c if c < 0x20 => format!("\\u{:04x}", c),
                c => char::from(c).to_string(),
            };
            let mut out = Vec::new();
            json_string(&char::from(c).to_string(), &mut out);
            assert_eq!(out, format!("\"{expected}\"").into_bytes(), "byte {c:#04x}");
        }
    }
}
